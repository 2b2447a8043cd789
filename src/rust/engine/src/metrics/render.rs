//! A server's counters as text: the Prometheus exposition format (version 0.0.4) for
//! `metrics_path`, and the small JSON document the status page polls.
use std::fmt::Write;

use super::histogram::BOUNDS;
use super::{HistogramSnapshot, HostSnapshot, MetricsSnapshot, METHODS, REJECTS};

/// What the renderers show besides the counters.
pub struct Extra<'a> {
    pub host: HostSnapshot,
    pub draining: bool,
    /// `None` when ready, else why not.
    pub not_ready: Option<&'a str>,
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, help: &str, h: &HistogramSnapshot) {
    head(out, name, "histogram", help);
    let mut cum = 0u64;
    for (i, c) in h.counts.iter().enumerate() {
        cum += c;
        match BOUNDS.get(i) {
            Some(b) => {
                let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cum}");
            }
            None => {
                let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cum}");
            }
        }
    }
    let _ = writeln!(out, "{name}_sum {}\n{name}_count {cum}", h.sum_seconds);
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
    head(out, name, kind, help);
    let _ = writeln!(out, "{name} {v}");
}

/// The Prometheus text format.
pub fn prometheus(m: &MetricsSnapshot, x: &Extra) -> String {
    let mut out = String::with_capacity(4096);
    head(
        &mut out,
        "rookd_http_requests_total",
        "counter",
        "HTTP requests answered (by the app, from static paths, or refused by the engine), by method and status class.",
    );
    for (mi, row) in m.requests.iter().enumerate() {
        for (ci, &n) in row.iter().enumerate() {
            if n > 0 {
                let _ = writeln!(
                    out,
                    "rookd_http_requests_total{{method=\"{}\",code=\"{}\"}} {n}",
                    METHODS[mi], CLASSES[ci]
                );
            }
        }
    }
    histogram(
        &mut out,
        "rookd_http_request_duration_seconds",
        "Time from a request's head to the end of its response.",
        &m.total,
    );
    histogram(
        &mut out,
        "rookd_http_request_r_seconds",
        "Time R spent on a request, from taking it to answering it.",
        &m.in_r,
    );
    histogram(&mut out, "rookd_http_request_queue_seconds", "Time a request waited for R.", &m.queued_for_r);
    single(
        &mut out,
        "rookd_r_queue_requests",
        "gauge",
        "Requests waiting for, or being handled by, R (all servers of the process).",
        x.host.queued_requests,
    );
    single(
        &mut out,
        "rookd_r_queue_events",
        "gauge",
        "Events waiting for R in the Door (all servers of the process).",
        x.host.queued_events,
    );
    single(
        &mut out,
        "rookd_r_busy_seconds_total",
        "counter",
        "Seconds R spent handling events (all servers of the process).",
        x.host.busy_seconds,
    );
    single(&mut out, "rookd_connections_open", "gauge", "Open client connections.", m.connections_open);
    single(&mut out, "rookd_connections_total", "counter", "Client connections accepted.", m.connections_total);
    single(&mut out, "rookd_websockets_open", "gauge", "Open WebSockets.", m.websockets_open);
    single(&mut out, "rookd_websockets_total", "counter", "WebSockets opened.", m.websockets_total);
    single(
        &mut out,
        "rookd_received_bytes_total",
        "counter",
        "Bytes read from clients (heads, bodies, WebSocket frames).",
        m.bytes_in,
    );
    single(&mut out, "rookd_sent_bytes_total", "counter", "Bytes written to clients.", m.bytes_out);
    single(
        &mut out,
        "rookd_static_hits_total",
        "counter",
        "Requests answered from static paths, without R.",
        m.static_hits,
    );
    head(
        &mut out,
        "rookd_rejected_requests_total",
        "counter",
        "Requests the engine refused itself, by status (408, 413, 431, 503).",
    );
    for (i, (_, code)) in REJECTS.iter().enumerate() {
        let _ = writeln!(out, "rookd_rejected_requests_total{{reason=\"{code}\"}} {}", m.rejects[i]);
    }
    single(&mut out, "rookd_drains_total", "counter", "Graceful drains started.", m.drains);
    single(&mut out, "rookd_draining", "gauge", "1 while the server drains.", u8::from(x.draining));
    single(&mut out, "rookd_ready", "gauge", "1 when the readiness check passes.", u8::from(x.not_ready.is_none()));
    single(&mut out, "rookd_uptime_seconds", "gauge", "Seconds since the server started.", m.uptime.as_secs_f64());
    out
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn list<T: std::fmt::Display>(xs: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = xs.into_iter().map(|x| x.to_string()).collect();
    format!("[{}]", v.join(","))
}

/// The status page's JSON: cumulative counters (the page differentiates them).
pub fn json(m: &MetricsSnapshot, x: &Extra) -> String {
    let classes: Vec<u64> = (0..5).map(|c| m.requests.iter().map(|row| row[c]).sum()).collect();
    format!(
        concat!(
            "{{\"uptime\":{},\"requests\":{},\"classes\":{},\"bounds\":{},\"total\":{},\"in_r\":{},",
            "\"queued_requests\":{},\"queued_events\":{},\"busy_seconds\":{},\"stalled\":{},",
            "\"connections\":{},\"websockets\":{},\"bytes_in\":{},\"bytes_out\":{},\"static_hits\":{},",
            "\"rejects\":{},\"draining\":{},\"ready\":{},\"not_ready\":{}}}"
        ),
        m.uptime.as_secs_f64(),
        m.requests_total(),
        list(classes),
        list(BOUNDS),
        list(m.total.counts),
        list(m.in_r.counts),
        x.host.queued_requests,
        x.host.queued_events,
        x.host.busy_seconds,
        x.host.stalled.map_or(0.0, |d| d.as_secs_f64()),
        m.connections_open,
        m.websockets_open,
        m.bytes_in,
        m.bytes_out,
        m.static_hits,
        list(m.rejects),
        x.draining,
        x.not_ready.is_none(),
        x.not_ready.map_or_else(|| "null".to_string(), json_str),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_and_type_and_buckets_are_cumulative() {
        let mut m = MetricsSnapshot::default();
        m.requests[0][1] = 3;
        m.total.counts[0] = 2;
        m.total.counts[14] = 1;
        let x = Extra { host: HostSnapshot::default(), draining: false, not_ready: Some("draining \"now\"") };
        let text = prometheus(&m, &x);
        assert!(text.contains("rookd_http_requests_total{method=\"GET\",code=\"2xx\"} 3\n"));
        assert!(text.contains("rookd_http_request_duration_seconds_bucket{le=\"0.0005\"} 2\n"));
        assert!(text.contains("rookd_http_request_duration_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("rookd_http_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let base = name.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {base} ")) || text.contains(&format!("# TYPE {name} ")), "{line}");
        }
        let j = json(&m, &x);
        assert!(j.contains("\"not_ready\":\"draining \\\"now\\\"\""), "{j}");
        assert!(j.starts_with('{') && j.ends_with('}'));
    }
}
