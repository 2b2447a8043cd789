//! From a sanitised relative path to an open file, on a blocking thread: directory index
//! handling, and the guarantee that what is opened lies inside the static root (after
//! symlinks are resolved) unless the options allow links out of it.
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::error::StaticError;

/// A static path's local side, canonical (symlinks resolved) when the table was built.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    pub path: PathBuf,
    pub is_file: bool,
    /// The path as configured; for a single file its name gives the media type.
    pub given: PathBuf,
}

impl Root {
    /// Main thread, at configuration time: the path must exist (httpuv's `staticPath()`
    /// calls `normalizePath(mustWork = TRUE)`) and be a directory or a regular file.
    pub fn new(prefix: &str, path: &Path) -> Result<Root, StaticError> {
        if path.as_os_str().is_empty() {
            return Err(StaticError::EmptyPath { prefix: prefix.into() });
        }
        let err = |source| StaticError::Path {
            prefix: prefix.into(),
            path: path.into(),
            source,
        };
        let canonical = std::fs::canonicalize(path).map_err(err)?;
        let meta = std::fs::metadata(&canonical).map_err(err)?;
        if !meta.is_dir() && !meta.is_file() {
            return Err(StaticError::NotServable {
                prefix: prefix.into(),
                path: path.into(),
            });
        }
        Ok(Root {
            path: canonical,
            is_file: meta.is_file(),
            given: path.to_path_buf(),
        })
    }
}

pub(crate) struct Opened {
    pub file: File,
    pub meta: Metadata,
    /// Canonical path of what was opened (the gzip cache's key).
    pub path: PathBuf,
    /// The path as asked for, before symlinks: its name gives the media type (a link
    /// `app.js -> build/3f2a` is still JavaScript) and its `.gz` sibling is the one used.
    pub requested: PathBuf,
}

/// Why there is no file to send.
#[derive(Debug)]
pub(crate) enum Miss {
    /// A directory asked for without its trailing slash, and it has an index to serve.
    Redirect,
    NotFound,
    Forbidden,
    Failed(io::Error),
}

fn classify(e: io::Error) -> Miss {
    use io::ErrorKind::*;
    match e.kind() {
        PermissionDenied => Miss::Forbidden,
        NotFound | NotADirectory | InvalidInput | InvalidFilename => Miss::NotFound,
        // ELOOP (a symlink cycle, or a link swapped in under O_NOFOLLOW) and ENAMETOOLONG.
        _ if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENAMETOOLONG)) => Miss::NotFound,
        _ => Miss::Failed(e),
    }
}

/// Resolve symlinks and refuse anything that ends up outside the root.
fn contained(root: &Root, candidate: &Path, follow_outside: bool) -> Result<PathBuf, Miss> {
    let canonical = std::fs::canonicalize(candidate).map_err(classify)?;
    let inside = if root.is_file {
        canonical == root.path
    } else {
        canonical.starts_with(&root.path)
    };
    if inside || follow_outside {
        Ok(canonical)
    } else {
        Err(Miss::NotFound)
    }
}

/// Open a canonical path as a regular file. O_NONBLOCK so that a FIFO swapped in after
/// the checks cannot park a blocking thread forever (it has no effect on regular files);
/// O_NOFOLLOW so a symlink swapped in is not followed.
fn open_regular(path: PathBuf, requested: PathBuf) -> Result<Opened, Miss> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&path)
        .map_err(classify)?;
    let meta = file.metadata().map_err(classify)?;
    if !meta.is_file() {
        return Err(Miss::NotFound);
    }
    Ok(Opened {
        file,
        meta,
        path,
        requested,
    })
}

/// Blocking: find and open what `rel` (already sanitised) names under `root`.
pub(crate) fn resolve(
    root: &Root,
    rel: &Path,
    trailing_slash: bool,
    indexhtml: bool,
    follow_outside: bool,
) -> Result<Opened, Miss> {
    if root.is_file {
        // A single-file static path has nothing below it.
        if !rel.as_os_str().is_empty() {
            return Err(Miss::NotFound);
        }
        let canonical = contained(root, &root.path, follow_outside)?;
        return open_regular(canonical, root.given.clone());
    }
    let requested = root.path.join(rel);
    let canonical = contained(root, &requested, follow_outside)?;
    let meta = std::fs::metadata(&canonical).map_err(classify)?;
    if meta.is_dir() {
        if !indexhtml {
            return Err(Miss::NotFound);
        }
        let requested = requested.join("index.html");
        let index = contained(root, &requested, follow_outside)?;
        let opened = open_regular(index, requested)?;
        if !trailing_slash {
            // Relative links in the index only work from the slash form.
            return Err(Miss::Redirect);
        }
        return Ok(opened);
    }
    open_regular(canonical, requested)
}

/// Blocking: a precompressed `name.gz` beside `orig`, if it is inside the root, a regular
/// file, and not older than the original (a stale one is ignored).
pub(crate) fn gz_sibling(root: &Root, orig: &Opened, follow_outside: bool) -> Option<Opened> {
    let mut name = orig.requested.file_name()?.to_os_string();
    name.push(".gz");
    let candidate = orig.requested.with_file_name(name);
    // A single-file root has no siblings inside it; only look when links out are allowed.
    let canonical = if root.is_file {
        if !follow_outside {
            return None;
        }
        std::fs::canonicalize(&candidate).ok()?
    } else {
        contained(root, &candidate, follow_outside).ok()?
    };
    let gz = open_regular(canonical, candidate).ok()?;
    let fresh = match (gz.meta.modified(), orig.meta.modified()) {
        (Ok(g), Ok(o)) => g >= o,
        _ => false,
    };
    fresh.then_some(gz)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tmp(PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tmp(name: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("rookd-resolve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("root/sub")).unwrap();
        std::fs::write(p.join("root/a.txt"), "a").unwrap();
        std::fs::write(p.join("root/sub/index.html"), "<p>").unwrap();
        std::fs::write(p.join("secret.txt"), "s").unwrap();
        Tmp(p)
    }

    fn kind(r: &Result<Opened, Miss>) -> &'static str {
        match r {
            Ok(_) => "file",
            Err(Miss::Redirect) => "redirect",
            Err(Miss::NotFound) => "404",
            Err(Miss::Forbidden) => "403",
            Err(Miss::Failed(_)) => "500",
        }
    }

    #[test]
    fn files_directories_and_index() {
        let t = tmp("basic");
        let root = Root::new("/", &t.0.join("root")).unwrap();
        assert!(!root.is_file);
        assert_eq!(kind(&resolve(&root, Path::new("a.txt"), false, true, false)), "file");
        assert_eq!(kind(&resolve(&root, Path::new("nope"), false, true, false)), "404");
        assert_eq!(kind(&resolve(&root, Path::new("a.txt/x"), false, true, false)), "404");
        assert_eq!(kind(&resolve(&root, Path::new("sub"), false, true, false)), "redirect");
        assert_eq!(kind(&resolve(&root, Path::new("sub"), true, true, false)), "file");
        assert_eq!(kind(&resolve(&root, Path::new("sub"), true, false, false)), "404");
        assert_eq!(
            kind(&resolve(&root, Path::new(""), true, true, false)),
            "404",
            "root has no index"
        );
        let single = Root::new("/f", &t.0.join("root/a.txt")).unwrap();
        assert!(single.is_file);
        assert_eq!(kind(&resolve(&single, Path::new(""), false, true, false)), "file");
        assert_eq!(kind(&resolve(&single, Path::new("x"), false, true, false)), "404");
        assert!(Root::new("/x", &t.0.join("missing")).is_err());
        assert!(Root::new("/x", Path::new("")).is_err());
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused_unless_allowed() {
        let t = tmp("links");
        std::os::unix::fs::symlink(t.0.join("secret.txt"), t.0.join("root/out.txt")).unwrap();
        std::os::unix::fs::symlink(&t.0, t.0.join("root/updir")).unwrap();
        std::os::unix::fs::symlink(t.0.join("root/a.txt"), t.0.join("root/in.txt")).unwrap();
        let root = Root::new("/", &t.0.join("root")).unwrap();
        assert_eq!(kind(&resolve(&root, Path::new("out.txt"), false, true, false)), "404");
        assert_eq!(
            kind(&resolve(&root, Path::new("updir/secret.txt"), false, true, false)),
            "404"
        );
        assert_eq!(kind(&resolve(&root, Path::new("in.txt"), false, true, false)), "file");
        assert_eq!(kind(&resolve(&root, Path::new("out.txt"), false, true, true)), "file");
    }

    #[test]
    fn fifo_is_not_served() {
        let t = tmp("fifo");
        let p = t.0.join("root/pipe");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo only reads the NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let root = Root::new("/", &t.0.join("root")).unwrap();
        assert_eq!(kind(&resolve(&root, Path::new("pipe"), false, true, false)), "404");
    }

    #[test]
    fn gz_sibling_must_be_fresh() {
        let t = tmp("gz");
        let root = Root::new("/", &t.0.join("root")).unwrap();
        std::fs::write(t.0.join("root/a.txt.gz"), "gz").unwrap();
        let orig = resolve(&root, Path::new("a.txt"), false, true, false).unwrap();
        assert!(gz_sibling(&root, &orig, false).is_some());
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        File::options()
            .write(true)
            .open(t.0.join("root/a.txt.gz"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(gz_sibling(&root, &orig, false).is_none(), "stale");
    }
}
