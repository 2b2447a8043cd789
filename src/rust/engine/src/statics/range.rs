//! `Range: bytes=...` (RFC 9110 §14): parsing against a known length.
//!
//! A header that does not parse is ignored (the whole file is sent), as the RFC requires.
//! Overlapping or adjacent ranges are merged, and a request with very many ranges is
//! ignored, so a client cannot make the server send the same bytes over and over.

/// More ranges than this in one header: ignore the header (serve the whole file).
pub(crate) const MAX_RANGES: usize = 64;

/// An inclusive byte range within the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No usable Range header: send the whole representation (200).
    Ignore,
    /// One or more satisfiable ranges, sorted and merged (206).
    Ranges(Vec<ByteRange>),
    /// Valid syntax but nothing inside the file (416).
    Unsatisfiable,
}

enum Spec {
    FromTo(u64, Option<u64>),
    Suffix(u64),
}

/// Digits only (no sign, no spaces); values past u64 saturate, which keeps their meaning
/// ("beyond the end") without overflowing.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| n.saturating_mul(10).saturating_add(u64::from(b - b'0'))))
}

fn spec(s: &str) -> Option<Spec> {
    let (a, b) = s.split_once('-')?;
    if a.is_empty() {
        return Some(Spec::Suffix(number(b)?));
    }
    let first = number(a)?;
    if b.is_empty() {
        return Some(Spec::FromTo(first, None));
    }
    let last = number(b)?;
    // "5-3" is invalid syntax, which invalidates the whole header.
    (last >= first).then_some(Spec::FromTo(first, Some(last)))
}

pub(crate) fn parse(header: &str, len: u64) -> RangeRequest {
    let Some((unit, set)) = header.split_once('=') else {
        return RangeRequest::Ignore;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeRequest::Ignore;
    }
    let mut specs = Vec::new();
    // List syntax allows empty elements ("bytes=0-1,,5-6").
    for item in set.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if specs.len() == MAX_RANGES {
            return RangeRequest::Ignore;
        }
        match spec(item) {
            Some(s) => specs.push(s),
            None => return RangeRequest::Ignore,
        }
    }
    if specs.is_empty() {
        return RangeRequest::Ignore;
    }
    let mut ranges: Vec<ByteRange> = specs
        .into_iter()
        .filter_map(|s| match s {
            Spec::FromTo(first, last) if first < len => {
                Some(ByteRange { start: first, end: last.map_or(len - 1, |l| l.min(len - 1)) })
            }
            Spec::FromTo(..) => None,
            Spec::Suffix(n) if n > 0 && len > 0 => Some(ByteRange { start: len - n.min(len), end: len - 1 }),
            Spec::Suffix(_) => None,
        })
        .collect();
    if ranges.is_empty() {
        return RangeRequest::Unsatisfiable;
    }
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(1) => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    RangeRequest::Ranges(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeRequest::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    #[test]
    fn single_forms() {
        assert_eq!(parse("bytes=0-9", 100), Ranges(vec![r(0, 9)]));
        assert_eq!(parse("bytes=-5", 100), Ranges(vec![r(95, 99)]));
        assert_eq!(parse("bytes=5-", 100), Ranges(vec![r(5, 99)]));
        assert_eq!(parse("bytes=90-200", 100), Ranges(vec![r(90, 99)]), "end clamped");
        assert_eq!(parse("bytes=-500", 100), Ranges(vec![r(0, 99)]), "suffix longer than file");
        assert_eq!(parse("bytes=99-99", 100), Ranges(vec![r(99, 99)]));
        assert_eq!(parse("Bytes = 0-0", 100), Ranges(vec![r(0, 0)]));
        assert_eq!(parse("bytes=0-99999999999999999999999", 100), Ranges(vec![r(0, 99)]));
        assert_eq!(r(5, 9).len(), 5);
    }

    #[test]
    fn multiple_and_overlapping() {
        assert_eq!(parse("bytes=0-1, 5-6", 100), Ranges(vec![r(0, 1), r(5, 6)]));
        assert_eq!(parse("bytes=5-6,0-1", 100), Ranges(vec![r(0, 1), r(5, 6)]), "sorted");
        assert_eq!(parse("bytes=0-10,5-20", 100), Ranges(vec![r(0, 20)]), "overlap merged");
        assert_eq!(parse("bytes=0-4,5-9", 100), Ranges(vec![r(0, 9)]), "adjacent merged");
        assert_eq!(parse("bytes=0-0,0-0,0-0", 100), Ranges(vec![r(0, 0)]));
        assert_eq!(parse("bytes=-10,0-4", 100), Ranges(vec![r(0, 4), r(90, 99)]));
        assert_eq!(parse("bytes=0-1,,5-6,", 100), Ranges(vec![r(0, 1), r(5, 6)]));
        assert_eq!(parse("bytes=0-1,200-300", 100), Ranges(vec![r(0, 1)]), "unsatisfiable part dropped");
        let many: Vec<String> = (0..=MAX_RANGES).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
        assert_eq!(parse(&format!("bytes={}", many.join(",")), 1000), Ignore);
    }

    #[test]
    fn invalid_is_ignored() {
        for h in [
            "bytes=",
            "bytes=abc",
            "bytes=5-3",
            "bytes=-",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes= 1 - 2",
            "items=0-1",
            "bytes 0-1",
            "0-1",
            "bytes=0-1,x",
            "bytes=0x1-2",
            "bytes=--1",
        ] {
            assert_eq!(parse(h, 100), Ignore, "{h}");
        }
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(parse("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse("bytes=0-0", 0), Unsatisfiable, "empty file");
        assert_eq!(parse("bytes=-5", 0), Unsatisfiable);
        assert_eq!(parse("bytes=200-300,400-", 100), Unsatisfiable);
    }
}
