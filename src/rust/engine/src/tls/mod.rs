//! TLS (HTTPS and WSS): certificate and key loading with a clear error per failure
//! (`config`), the server's swappable current configuration and the handshake with its
//! timeout (`acceptor`), the facts about a TLS connection the host shows the app
//! (`info`), and a throwaway local CA for development (`selfsigned`).
//!
//! `config`, `info` and `selfsigned` are leaves; `acceptor` is used only by `server`.
pub(crate) mod acceptor;
pub mod config;
pub mod info;
pub mod selfsigned;

pub use acceptor::TlsReloadError;
pub use config::{ClientAuth, TlsError, TlsSettings};
pub use info::{ClientCertInfo, TlsInfo};
