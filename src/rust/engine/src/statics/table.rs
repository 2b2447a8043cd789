//! The table itself: building it from plain data, reading it back, deriving changed
//! copies (the server swaps the whole table under its lock), and matching a request to
//! the longest prefix.
use std::sync::Arc;

use super::error::StaticError;
use super::gzcache::GzCache;
use super::options::{Effective, StaticOptions, StaticPathOptionsOverride, StaticPathSpec};
use super::path::{self, RequestPath};
use super::resolve::Root;

pub(crate) struct Entry {
    pub prefix: String,
    pub segments: Vec<Box<[u8]>>,
    pub spec: StaticPathSpec,
    /// `None` only for an excluded prefix.
    pub root: Option<Root>,
    pub eff: Arc<Effective>,
}

#[derive(Default)]
pub(crate) struct Inner {
    /// Most specific (most segments) first, so the first match is the longest prefix.
    pub entries: Vec<Entry>,
    pub options: StaticOptions,
    pub cache: Arc<GzCache>,
}

fn build_entry(
    prefix: String,
    spec: StaticPathSpec,
    server: &StaticOptions,
    old_root: Option<Root>,
) -> Result<Entry, StaticError> {
    let merged = spec.options.apply_to(server);
    let eff = Effective::compile(&merged)?;
    let root = match (eff.exclude, old_root) {
        (true, _) => None,
        (false, Some(r)) => Some(r),
        (false, None) => Some(Root::new(&prefix, &spec.path)?),
    };
    Ok(Entry { segments: path::prefix_segments(&prefix), prefix, spec, root, eff: Arc::new(eff) })
}

impl Inner {
    pub fn build(
        entries: Vec<(String, StaticPathSpec, Option<Root>)>,
        options: StaticOptions,
        cache: Arc<GzCache>,
    ) -> Result<Inner, StaticError> {
        // Server-wide options must be valid on their own, even with no path using them.
        Effective::compile(&options)?;
        let mut built: Vec<Entry> = Vec::with_capacity(entries.len());
        for (prefix, spec, root) in entries {
            built.push(build_entry(prefix, spec, &options, root)?);
        }
        built.sort_by(|a, b| b.segments.len().cmp(&a.segments.len()).then_with(|| a.prefix.cmp(&b.prefix)));
        Ok(Inner { entries: built, options, cache })
    }

    /// The entries as (prefix, spec, root) to rebuild from, with roots kept so unchanged
    /// paths are not looked up again.
    pub fn parts(&self) -> Vec<(String, StaticPathSpec, Option<Root>)> {
        self.entries.iter().map(|e| (e.prefix.clone(), e.spec.clone(), e.root.clone())).collect()
    }

    /// Longest matching prefix.
    pub fn find(&self, req: &RequestPath<'_>) -> Option<&Entry> {
        self.entries.iter().find(|e| req.starts_with(&e.segments))
    }
}

/// Normalise and de-duplicate user entries; like httpuv's constructor (and R's `$`), the
/// first of two equal prefixes wins.
pub(crate) fn normalise_entries(
    entries: Vec<(String, StaticPathSpec)>,
) -> Result<Vec<(String, StaticPathSpec)>, StaticError> {
    let mut out: Vec<(String, StaticPathSpec)> = Vec::with_capacity(entries.len());
    for (prefix, spec) in entries {
        let p = path::normalize_prefix(&prefix)?;
        if !out.iter().any(|(q, _)| *q == p) {
            out.push((p, spec));
        }
    }
    Ok(out)
}

/// Apply a `setStaticPathOptions()`-style update: `None` keeps the current value.
pub(crate) fn update_options(current: &StaticOptions, update: &StaticPathOptionsOverride) -> StaticOptions {
    update.apply_to(current)
}
