//! A running server's table as both threads see it: the host's thread replaces it whole
//! (`setStaticPath()` and friends), I/O threads take a copy per request. The lock is
//! private and held only to clone or swap an `Arc`, never across an await or host code,
//! so neither side can block the other for longer than that (a crossing of the host
//! seam: see the Door's rules).
use std::sync::{Arc, PoisonError, RwLock};

use super::StaticPaths;

/// Cheap to clone: every clone names the same server's table.
#[derive(Clone, Default)]
pub struct StaticPathsHandle {
    table: Arc<RwLock<StaticPaths>>,
}

impl StaticPathsHandle {
    pub(crate) fn new(table: StaticPaths) -> StaticPathsHandle {
        StaticPathsHandle { table: Arc::new(RwLock::new(table)) }
    }

    /// The table now. A poisoned lock only means a panic elsewhere while it was held; the
    /// table inside is still a whole value (it is replaced, never edited), so use it.
    pub fn get(&self) -> StaticPaths {
        self.table.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Swap in a new table. Requests already being served keep the table they copied.
    /// Only one thread (the host's) writes, so reading, deriving and storing cannot lose
    /// a concurrent update.
    pub fn replace(&self, table: StaticPaths) {
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = table;
    }
}
