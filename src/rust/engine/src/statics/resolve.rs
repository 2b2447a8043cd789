//! From a sanitised relative path to an open file, on a blocking thread: directory index
//! handling, and the `symlinks` option: "follow" (the default, as httpuv) opens what a
//! link points to wherever it is; "inside" requires the resolved path to lie inside the
//! static root; "refuse" admits no symlink at all below the root. The request path itself
//! can never climb out (`path::sanitize` has already refused `..`, separators and NUL).
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::error::StaticError;
use super::options::Symlinks;

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
        let err = |source| StaticError::Path { prefix: prefix.into(), path: path.into(), source };
        let canonical = std::fs::canonicalize(path).map_err(err)?;
        let meta = std::fs::metadata(&canonical).map_err(err)?;
        if !meta.is_dir() && !meta.is_file() {
            return Err(StaticError::NotServable { prefix: prefix.into(), path: path.into() });
        }
        Ok(Root { path: canonical, is_file: meta.is_file(), given: path.to_path_buf() })
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

/// Resolve symlinks in `requested` (the root joined with sanitised names) and apply the
/// `symlinks` mode. A dangling link or a loop is a 404 (`classify`).
fn admit(root: &Root, requested: &Path, mode: Symlinks) -> Result<PathBuf, Miss> {
    let canonical = std::fs::canonicalize(requested).map_err(classify)?;
    let ok = match mode {
        Symlinks::Follow => true,
        Symlinks::Inside if root.is_file => canonical == root.path,
        Symlinks::Inside => canonical.starts_with(&root.path),
        // `root.path` is canonical and below it there are only plain names (no ".", "..",
        // no doubled separators), so the canonical form equals the lexical join exactly
        // when no component below the root is a symlink.
        Symlinks::Refuse => canonical == requested,
    };
    if ok {
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
    Ok(Opened { file, meta, path, requested })
}

/// Blocking: find and open what `rel` (already sanitised) names under `root`.
pub(crate) fn resolve(
    root: &Root,
    rel: &Path,
    trailing_slash: bool,
    indexhtml: bool,
    symlinks: Symlinks,
) -> Result<Opened, Miss> {
    if root.is_file {
        // A single-file static path has nothing below it.
        if !rel.as_os_str().is_empty() {
            return Err(Miss::NotFound);
        }
        let canonical = admit(root, &root.path, symlinks)?;
        return open_regular(canonical, root.given.clone());
    }
    let requested = root.path.join(rel);
    let canonical = admit(root, &requested, symlinks)?;
    let meta = std::fs::metadata(&canonical).map_err(classify)?;
    if meta.is_dir() {
        if !indexhtml {
            return Err(Miss::NotFound);
        }
        let requested = requested.join("index.html");
        let index = admit(root, &requested, symlinks)?;
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
pub(crate) fn gz_sibling(root: &Root, orig: &Opened, symlinks: Symlinks) -> Option<Opened> {
    let mut name = orig.requested.file_name()?.to_os_string();
    name.push(".gz");
    let candidate = orig.requested.with_file_name(name);
    // A single-file root has nothing else inside it; its sibling is only looked at when
    // links may go anywhere.
    let canonical = if root.is_file {
        if symlinks != Symlinks::Follow {
            return None;
        }
        std::fs::canonicalize(&candidate).ok()?
    } else {
        admit(root, &candidate, symlinks).ok()?
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
        assert_eq!(kind(&resolve(&root, Path::new("a.txt"), false, true, Symlinks::Follow)), "file");
        assert_eq!(kind(&resolve(&root, Path::new("nope"), false, true, Symlinks::Follow)), "404");
        assert_eq!(kind(&resolve(&root, Path::new("a.txt/x"), false, true, Symlinks::Follow)), "404");
        assert_eq!(kind(&resolve(&root, Path::new("sub"), false, true, Symlinks::Follow)), "redirect");
        assert_eq!(kind(&resolve(&root, Path::new("sub"), true, true, Symlinks::Follow)), "file");
        assert_eq!(kind(&resolve(&root, Path::new("sub"), true, false, Symlinks::Follow)), "404");
        assert_eq!(kind(&resolve(&root, Path::new(""), true, true, Symlinks::Follow)), "404", "root has no index");
        let single = Root::new("/f", &t.0.join("root/a.txt")).unwrap();
        assert!(single.is_file);
        assert_eq!(kind(&resolve(&single, Path::new(""), false, true, Symlinks::Follow)), "file");
        assert_eq!(kind(&resolve(&single, Path::new("x"), false, true, Symlinks::Follow)), "404");
        assert!(Root::new("/x", &t.0.join("missing")).is_err());
        assert!(Root::new("/x", Path::new("")).is_err());
    }

    #[test]
    fn symlink_modes() {
        use std::os::unix::fs::symlink;
        use Symlinks::*;
        let t = tmp("links");
        std::fs::create_dir_all(t.0.join("outdir")).unwrap();
        std::fs::write(t.0.join("outdir/o.txt"), "o").unwrap();
        symlink(t.0.join("root/a.txt"), t.0.join("root/in.txt")).unwrap();
        symlink(t.0.join("secret.txt"), t.0.join("root/out.txt")).unwrap();
        symlink(t.0.join("root/sub"), t.0.join("root/indir")).unwrap();
        symlink(t.0.join("outdir"), t.0.join("root/outlink")).unwrap();
        symlink(t.0.join("root/loop1"), t.0.join("root/loop2")).unwrap();
        symlink(t.0.join("root/loop2"), t.0.join("root/loop1")).unwrap();
        symlink(t.0.join("root/gone"), t.0.join("root/dangling")).unwrap();
        let root = Root::new("/", &t.0.join("root")).unwrap();
        let at = |p: &str, m| kind(&resolve(&root, Path::new(p), true, true, m));
        // (path, follow, inside, refuse)
        let cases = [
            ("a.txt", "file", "file", "file"),
            ("in.txt", "file", "file", "404"),
            ("out.txt", "file", "404", "404"),
            ("indir/index.html", "file", "file", "404"),
            ("indir", "file", "file", "404"),
            ("outlink/o.txt", "file", "404", "404"),
            ("loop1", "404", "404", "404"),
            ("dangling", "404", "404", "404"),
        ];
        for (p, f, i, r) in cases {
            assert_eq!([at(p, Follow), at(p, Inside), at(p, Refuse)], [f, i, r], "{p}");
        }
        // A link keeps its own name for the media type and the gzip sibling.
        let o = resolve(&root, Path::new("out.txt"), false, true, Follow).unwrap();
        assert_eq!(o.requested, root.path.join("out.txt"));
        assert_eq!(o.path, std::fs::canonicalize(t.0.join("secret.txt")).unwrap());
        // A root given through a link is resolved once, at configuration: every mode serves it.
        symlink(t.0.join("root"), t.0.join("rootlink")).unwrap();
        let via = Root::new("/", &t.0.join("rootlink")).unwrap();
        assert_eq!(kind(&resolve(&via, Path::new("a.txt"), true, true, Refuse)), "file");
    }

    #[test]
    fn fifo_is_not_served() {
        let t = tmp("fifo");
        let p = t.0.join("root/pipe");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo only reads the NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let root = Root::new("/", &t.0.join("root")).unwrap();
        assert_eq!(kind(&resolve(&root, Path::new("pipe"), false, true, Symlinks::Follow)), "404");
    }

    #[test]
    fn gz_sibling_must_be_fresh() {
        let t = tmp("gz");
        let root = Root::new("/", &t.0.join("root")).unwrap();
        std::fs::write(t.0.join("root/a.txt.gz"), "gz").unwrap();
        let orig = resolve(&root, Path::new("a.txt"), false, true, Symlinks::Follow).unwrap();
        assert!(gz_sibling(&root, &orig, Symlinks::Follow).is_some());
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        File::options().write(true).open(t.0.join("root/a.txt.gz")).unwrap().set_modified(old).unwrap();
        assert!(gz_sibling(&root, &orig, Symlinks::Follow).is_none(), "stale");
    }
}
