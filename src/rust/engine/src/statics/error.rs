//! Why a static-path table could not be built. Every error names the prefix or value the
//! user gave, so the R side can pass the message on unchanged.
use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    #[error("static path prefix {prefix:?} is not valid: {reason}")]
    InvalidPrefix { prefix: String, reason: &'static str },
    #[error("static path {prefix:?}: the local path must not be empty")]
    EmptyPath { prefix: String },
    #[error("static path {prefix:?}: cannot serve {path:?}: {source}")]
    Path { prefix: String, path: PathBuf, source: io::Error },
    #[error("static path {prefix:?}: {path:?} is neither a directory nor a regular file")]
    NotServable { prefix: String, path: PathBuf },
    #[error("`validation` must be a string of the form '\"xxx\" == \"yyy\"' (got {rule:?}: {reason})")]
    InvalidValidation { rule: String, reason: String },
    #[error("static path header {name:?}: {reason}")]
    InvalidHeader { name: String, reason: &'static str },
    #[error("`html_charset` {0:?} cannot be used in a Content-Type header")]
    InvalidCharset(String),
    #[error("`symlinks` must be \"follow\", \"inside\" or \"refuse\" (got {0:?})")]
    InvalidSymlinks(String),
}
