//! httpuv's `validation` option: a request must carry a header with an exact value, or it
//! gets 403. httpuv accepts one rule written as R source, `'"Name" == "value"'`, and
//! stores it parsed as `c("==", "Name", "value")`; both forms are accepted here. Several
//! rules (an extension) are written as several source strings and must all hold.
use http::{HeaderMap, HeaderName};

use super::error::StaticError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    name: HeaderName,
    value: Vec<u8>,
}

impl Rule {
    /// The header (name case-insensitive) must have exactly this value (case-sensitive).
    /// The comparison takes the same time wherever the values differ, as the value is
    /// often a shared secret.
    pub fn check(&self, headers: &HeaderMap) -> bool {
        headers.get_all(&self.name).iter().any(|v| constant_time_eq(v.as_bytes(), &self.value))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parse the option's value. `[]` and `[""]` mean no validation.
pub(crate) fn parse_rules(v: &[String]) -> Result<Vec<Rule>, StaticError> {
    if v.len() == 3 && v[0] == "==" {
        return Ok(vec![rule(&v[1], &v[2], &v.join(" "))?]);
    }
    v.iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let (name, value) =
                parse_source(s).map_err(|reason| StaticError::InvalidValidation { rule: s.clone(), reason })?;
            rule(&name, &value, s)
        })
        .collect()
}

fn rule(name: &str, value: &str, src: &str) -> Result<Rule, StaticError> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| StaticError::InvalidValidation {
        rule: src.to_string(),
        reason: format!("{name:?} is not a valid header name"),
    })?;
    Ok(Rule { name, value: value.as_bytes().to_vec() })
}

/// `"a" == "b"` with R's string literal rules (either quote, backslash escapes).
fn parse_source(s: &str) -> Result<(String, String), String> {
    let mut p = s.trim_start();
    let name = literal(&mut p)?;
    p = p.trim_start();
    p = p.strip_prefix("==").ok_or("expected `==` after the header name")?;
    p = p.trim_start();
    let value = literal(&mut p)?;
    if !p.trim().is_empty() {
        return Err(format!("unexpected text after the value: {:?}", p.trim()));
    }
    Ok((name, value))
}

fn literal(p: &mut &str) -> Result<String, String> {
    let mut chars = p.char_indices();
    let quote = match chars.next() {
        Some((_, q @ ('"' | '\''))) => q,
        _ => return Err("expected a quoted string".into()),
    };
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => {
                *p = &p[i + c.len_utf8()..];
                return Ok(out);
            }
            '\\' => {
                let (_, e) = chars.next().ok_or("unterminated escape")?;
                out.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '0' => return Err("NUL is not allowed".into()),
                    '\\' | '"' | '\'' | ' ' => e,
                    other => return Err(format!("unsupported escape \\{other}")),
                });
            }
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(*n, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn parses_both_httpuv_forms() {
        let a = parse_rules(&s(&["\"X-Key\" == \"s3cret\""])).unwrap();
        let b = parse_rules(&s(&["==", "X-Key", "s3cret"])).unwrap();
        assert_eq!(a, b);
        assert_eq!(parse_rules(&s(&["'abc'=='x\\'y'"])).unwrap()[0].value, b"x'y");
        assert!(parse_rules(&s(&[])).unwrap().is_empty());
        assert!(parse_rules(&s(&[""])).unwrap().is_empty());
        assert_eq!(parse_rules(&s(&["\"a\" == \"1\"", "\"b\" == \"2\""])).unwrap().len(), 2);
    }

    #[test]
    fn rejects_malformed_rules() {
        for bad in [
            "abc == \"x\"",
            "\"abc\" = \"x\"",
            "\"abc\" != \"x\"",
            "\"abc\" == \"x\" && TRUE",
            "\"abc\" == x",
            "\"abc\" == \"x",
            "\"bad name\" == \"x\"",
            "\"a\" == \"\\q\"",
        ] {
            assert!(matches!(parse_rules(&s(&[bad])), Err(StaticError::InvalidValidation { .. })), "{bad}");
        }
    }

    #[test]
    fn checks_name_insensitively_value_exactly() {
        let r = &parse_rules(&s(&["\"X-Key\" == \"s3cret\""])).unwrap()[0];
        assert!(r.check(&headers(&[("x-key", "s3cret")])));
        assert!(!r.check(&headers(&[("x-key", "S3CRET")])));
        assert!(!r.check(&headers(&[("x-key", "s3cret ")])));
        assert!(!r.check(&headers(&[("x-other", "s3cret")])));
        assert!(!r.check(&headers(&[])));
        assert!(r.check(&headers(&[("x-key", "nope"), ("x-key", "s3cret")])));
    }
}
