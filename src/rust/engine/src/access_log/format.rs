//! One access-log line from one [`Record`]: Common and Combined Log Format (Apache's,
//! as nginx writes them) and JSON lines. Everything a client controls (path, user agent,
//! referer) is escaped, so no request can forge a line or a field: CLF escapes `"`, `\`
//! and control bytes as `\xHH`; JSON escapes per RFC 8259 and turns invalid UTF-8 into
//! U+FFFD.
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Record;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Common,
    Combined,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "common" => Some(Format::Common),
            "combined" => Some(Format::Combined),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Append `r` as one line (with its `\n`) to `out`.
pub fn line(out: &mut String, r: &Record, format: Format) {
    match format {
        Format::Common | Format::Combined => clf(out, r, format == Format::Combined),
        Format::Json => json(out, r),
    }
    out.push('\n');
}

/// `127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /a.gif HTTP/1.1" 200 2326`, then for
/// Combined ` "referer" "user agent"`, then rookd's own fields: total seconds, seconds
/// queued for R, seconds in R (`-` when not measured), request id.
fn clf(out: &mut String, r: &Record, combined: bool) {
    out.push_str(r.client.as_deref().unwrap_or("-"));
    out.push_str(" - - [");
    clf_time(out, r.time);
    out.push_str("] \"");
    clf_escape(out, r.method.as_bytes());
    out.push(' ');
    clf_escape(out, &r.target);
    out.push(' ');
    out.push_str(r.protocol);
    let _ = write!(out, "\" {} ", r.status);
    if r.bytes == 0 {
        out.push('-');
    } else {
        let _ = write!(out, "{}", r.bytes);
    }
    if combined {
        for v in [&r.referer, &r.user_agent] {
            out.push_str(" \"");
            match v {
                Some(v) => clf_escape(out, v),
                None => out.push('-'),
            }
            out.push('"');
        }
    }
    out.push(' ');
    secs(out, Some(r.total));
    out.push(' ');
    secs(out, r.queued);
    out.push(' ');
    secs(out, r.in_r);
    out.push(' ');
    match r.request_id {
        Some(id) => {
            let _ = write!(out, "{id}");
        }
        None => out.push('-'),
    }
}

fn secs(out: &mut String, d: Option<Duration>) {
    match d {
        Some(d) => {
            let _ = write!(out, "{:.6}", d.as_secs_f64());
        }
        None => out.push('-'),
    }
}

/// Printable ASCII except `"` and `\` as is; everything else `\xHH` (as Apache does).
fn clf_escape(out: &mut String, v: &[u8]) {
    for &b in v {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

struct Utc {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    min: u64,
    sec: u64,
    millis: u32,
}

fn utc(t: SystemTime) -> Utc {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let s = d.as_secs();
    let (year, month, day) = civil((s / 86_400) as i64);
    let rem = s % 86_400;
    Utc { year, month, day, hour: rem / 3600, min: rem % 3600 / 60, sec: rem % 60, millis: d.subsec_millis() }
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

fn clf_time(out: &mut String, t: SystemTime) {
    let u = utc(t);
    let _ = write!(
        out,
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        u.day,
        MONTHS[(u.month - 1) as usize],
        u.year,
        u.hour,
        u.min,
        u.sec
    );
}

fn json(out: &mut String, r: &Record) {
    let u = utc(r.time);
    let _ = write!(
        out,
        "{{\"time\":\"{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\"client\":",
        u.year, u.month, u.day, u.hour, u.min, u.sec, u.millis
    );
    json_opt(out, r.client.as_deref().map(str::as_bytes));
    out.push_str(",\"method\":");
    json_str(out, r.method.as_bytes());
    out.push_str(",\"path\":");
    json_str(out, &r.target);
    let _ = write!(out, ",\"protocol\":\"{}\",\"status\":{},\"bytes\":{},\"total_s\":", r.protocol, r.status, r.bytes);
    json_secs(out, Some(r.total));
    out.push_str(",\"queued_s\":");
    json_secs(out, r.queued);
    out.push_str(",\"r_s\":");
    json_secs(out, r.in_r);
    out.push_str(",\"user_agent\":");
    json_opt(out, r.user_agent.as_deref());
    out.push_str(",\"referer\":");
    json_opt(out, r.referer.as_deref());
    out.push_str(",\"request_id\":");
    match r.request_id {
        Some(id) => {
            let _ = write!(out, "{id}");
        }
        None => out.push_str("null"),
    }
    out.push('}');
}

fn json_secs(out: &mut String, d: Option<Duration>) {
    match d {
        Some(d) => {
            let _ = write!(out, "{:.6}", d.as_secs_f64());
        }
        None => out.push_str("null"),
    }
}

fn json_opt(out: &mut String, v: Option<&[u8]>) {
    match v {
        Some(v) => json_str(out, v),
        None => out.push_str("null"),
    }
}

/// A JSON string: invalid UTF-8 becomes U+FFFD, control characters `\u00XX`, and `"`,
/// `\` escaped; U+2028/2029 escaped too (a log line is often embedded in JavaScript).
fn json_str(out: &mut String, v: &[u8]) {
    out.push('"');
    for c in String::from_utf8_lossy(v).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            // 2000-10-10 13:55:36.250 UTC
            time: UNIX_EPOCH + Duration::from_millis(971_186_136_250),
            client: Some("127.0.0.1".into()),
            method: "GET".into(),
            target: b"/apache_pb.gif?x=1".to_vec(),
            protocol: "HTTP/1.1",
            status: 200,
            bytes: 2326,
            total: Duration::from_micros(1500),
            queued: None,
            in_r: None,
            user_agent: Some(b"Mozilla/4.08".to_vec()),
            referer: Some(b"http://www.example.com/start.html".to_vec()),
            request_id: Some(42),
        }
    }

    fn one(r: &Record, f: Format) -> String {
        let mut s = String::new();
        line(&mut s, r, f);
        s
    }

    #[test]
    fn common_and_combined() {
        let r = record();
        assert_eq!(
            one(&r, Format::Common),
            "127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"GET /apache_pb.gif?x=1 HTTP/1.1\" 200 2326 0.001500 - - 42\n"
        );
        assert_eq!(
            one(&r, Format::Combined),
            "127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"GET /apache_pb.gif?x=1 HTTP/1.1\" 200 2326 \
             \"http://www.example.com/start.html\" \"Mozilla/4.08\" 0.001500 - - 42\n"
        );
        let r = Record { bytes: 0, user_agent: None, referer: None, client: None, request_id: None, ..record() };
        assert!(one(&r, Format::Combined)
            .starts_with("- - - [10/Oct/2000:13:55:36 +0000] \"GET /apache_pb.gif?x=1 HTTP/1.1\" 200 - \"-\" \"-\" "));
    }

    #[test]
    fn no_log_injection() {
        let r = Record {
            target: b"/a\"b\\c\n127.0.0.1 - - [x] \"GET / HTTP/1.1\" 200 1\r\x00\xff".to_vec(),
            user_agent: Some(b"ua\" \"x\x1b[31m".to_vec()),
            ..record()
        };
        let s = one(&r, Format::Combined);
        assert_eq!(s.matches('\n').count(), 1);
        assert!(s.ends_with('\n'));
        assert!(
            s.contains(r#""GET /a\x22b\x5cc\x0a127.0.0.1 - - [x] \x22GET / HTTP/1.1\x22 200 1\x0d\x00\xff HTTP/1.1""#),
            "{s}"
        );
        assert!(s.contains(r#""ua\x22 \x22x\x1b[31m""#), "{s}");
        // Every field stays where it is: 6 quotes around request, referer, user agent.
        assert_eq!(s.matches('"').count(), 6);
    }

    #[test]
    fn json_lines() {
        let s = one(&record(), Format::Json);
        assert_eq!(
            s,
            "{\"time\":\"2000-10-10T13:55:36.250Z\",\"client\":\"127.0.0.1\",\"method\":\"GET\",\
             \"path\":\"/apache_pb.gif?x=1\",\"protocol\":\"HTTP/1.1\",\"status\":200,\"bytes\":2326,\
             \"total_s\":0.001500,\"queued_s\":null,\"r_s\":null,\"user_agent\":\"Mozilla/4.08\",\
             \"referer\":\"http://www.example.com/start.html\",\"request_id\":42}\n"
        );
        let r = Record { target: b"/\"q\\\n\t\x01\x7f\xff\xfe\xe2\x80\xa8".to_vec(), user_agent: None, ..record() };
        let s = one(&r, Format::Json);
        assert!(
            s.contains(r#""path":"/\"q\\\n\t\u0001\u007f\ufffd\ufffd\u2028""#)
                || s.contains("\"path\":\"/\\\"q\\\\\\n\\t\\u0001\\u007f\u{fffd}\u{fffd}\\u2028\""),
            "{s}"
        );
        assert!(s.contains("\"user_agent\":null"));
        assert_eq!(s.matches('\n').count(), 1);
    }

    #[test]
    fn dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
        assert_eq!(civil(20_789), (2026, 12, 2));
        let mut s = String::new();
        clf_time(&mut s, UNIX_EPOCH + Duration::from_secs(1_709_164_800)); // 2024-02-29
        assert_eq!(s, "29/Feb/2024:00:00:00 +0000");
    }
}
