//! Gzipped copies of small compressible files, so a busy page's scripts and styles are
//! compressed once per version rather than once per request. Keyed by canonical path and
//! ETag (a changed file misses); bounded in bytes (when full it starts over, which is
//! crude but cannot grow and needs no bookkeeping on the hot path).
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;

/// Total compressed bytes kept.
const CAPACITY: usize = 32 * 1024 * 1024;

#[derive(Default)]
pub(crate) struct GzCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// `None`: this version does not get smaller when gzipped; send it as it is.
    map: HashMap<PathBuf, (String, Option<Bytes>)>,
    bytes: usize,
}

impl GzCache {
    /// `Some(entry)` when this version of the file was compressed before.
    pub fn get(&self, path: &Path, etag: &str) -> Option<Option<Bytes>> {
        let inner = self.inner.lock().ok()?;
        match inner.map.get(path) {
            Some((tag, gz)) if tag == etag => Some(gz.clone()),
            _ => None,
        }
    }

    pub fn put(&self, path: &Path, etag: &str, gz: Option<Bytes>) {
        let Ok(mut inner) = self.inner.lock() else { return };
        let size = gz.as_ref().map_or(0, Bytes::len);
        if size > CAPACITY / 4 {
            return;
        }
        if inner.bytes + size > CAPACITY {
            inner.map.clear();
            inner.bytes = 0;
        }
        if let Some((_, Some(old))) = inner.map.insert(path.to_path_buf(), (etag.to_string(), gz)) {
            inner.bytes -= old.len();
        }
        inner.bytes += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_by_version_and_bounded() {
        let c = GzCache::default();
        let p = Path::new("/x/a.js");
        assert!(c.get(p, "\"1\"").is_none());
        c.put(p, "\"1\"", Some(Bytes::from_static(b"gz")));
        assert_eq!(c.get(p, "\"1\"").unwrap().unwrap(), "gz");
        assert!(c.get(p, "\"2\"").is_none(), "a new version misses");
        c.put(p, "\"2\"", None);
        assert_eq!(c.get(p, "\"2\""), Some(None));
        assert_eq!(c.inner.lock().unwrap().bytes, 0);
        let big = Bytes::from(vec![0u8; CAPACITY / 4]);
        for i in 0..10 {
            c.put(&PathBuf::from(format!("/x/{i}")), "t", Some(big.clone()));
        }
        assert!(c.inner.lock().unwrap().bytes <= CAPACITY);
    }
}
