//! A server's operational paths, resolved once at start. A leaf (→ `config` and
//! `ops::allow` only), so `shared` can hold it without importing the `ops` answerer.
use super::allow::AllowList;

/// The operational endpoints of one server, resolved at start.
#[derive(Debug, Default)]
pub(crate) struct OpsPaths {
    pub(super) health: Option<String>,
    pub(super) ready: Option<String>,
    pub(super) metrics: Option<String>,
    pub(super) status: Option<String>,
    pub(super) allow: AllowList,
    pub(super) any: bool,
}

fn path(p: &str) -> Option<String> {
    (!p.is_empty()).then(|| p.to_string())
}

impl OpsPaths {
    pub(crate) fn new(cfg: &crate::config::ServerConfig) -> OpsPaths {
        let o = &cfg.ops;
        let p = OpsPaths {
            health: path(&o.health_path),
            ready: path(&o.ready_path),
            metrics: path(&o.metrics_path),
            status: path(&o.status_path),
            // Checked by the host before start (`AllowList::parse`); a bad list here
            // allows loopback only.
            allow: AllowList::parse(&o.metrics_allow).unwrap_or_default(),
            any: false,
        };
        OpsPaths { any: p.health.is_some() || p.ready.is_some() || p.metrics.is_some() || p.status.is_some(), ..p }
    }
}
