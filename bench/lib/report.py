#!/usr/bin/env python3
"""bench/run's table: medians of the raw runs, ratios, and the targets, as Markdown.

usage: report.py META RAW_TSV   (RAW_TSV lines: mode impl workload run metric value)
"""
import statistics
import sys
from collections import defaultdict

meta = dict(l.rstrip("\n").split("=", 1) for l in open(sys.argv[1]) if "=" in l)
vals = defaultdict(list)   # (mode, impl, workload, metric) -> [values]
flags = defaultdict(set)   # (mode, impl, workload) -> {"errors", "failed", "unsupported"}
for line in open(sys.argv[2]):
    mode, impl, wl, run, metric, value = line.rstrip("\n").split("\t")
    if metric in ("failed", "unsupported"):
        flags[(mode, impl, wl)].add(metric)
        continue
    v = float(value)
    if metric == "errors" and v > 0:
        flags[(mode, impl, wl)].add("errors")
    vals[(mode, impl, wl, metric)].append(v)


def med(mode, impl, wl, metric, scale=1.0):
    v = vals.get((mode, impl, wl, metric))
    return statistics.median(v) * scale if v else None


# (label, workload, metric, scale, lower_is_better)
ROWS = [
    ("hello, keep-alive, 32 conns: req/s", "hello_ka_32", "rps", 1, False),
    ("hello, keep-alive, 32 conns: p50 ms", "hello_ka_32", "p50_ms", 1, True),
    ("hello, keep-alive, 32 conns: p99 ms", "hello_ka_32", "p99_ms", 1, True),
    ("hello, keep-alive, 1 conn: req/s", "hello_ka_1", "rps", 1, False),
    ("hello, keep-alive, 1 conn: p50 ms", "hello_ka_1", "p50_ms", 1, True),
    ("hello, keep-alive, 1 conn: p99 ms", "hello_ka_1", "p99_ms", 1, True),
    ("hello, Connection: close, 32 conns: req/s", "hello_close_32", "rps", 1, False),
    ("hello, Connection: close, 32 conns: p50 ms", "hello_close_32", "p50_ms", 1, True),
    ("hello, Connection: close, 32 conns: p99 ms", "hello_close_32", "p99_ms", 1, True),
    ("hello, Connection: close, 1 conn: req/s", "hello_close_1", "rps", 1, False),
    ("hello, Connection: close, 1 conn: p50 ms", "hello_close_1", "p50_ms", 1, True),
    ("hello, Connection: close, 1 conn: p99 ms", "hello_close_1", "p99_ms", 1, True),
    ("1 MB POST echoed (rook.input), 4 conns: MB/s", "echo_1m", "rps", 1, False),
    ("10 MB raw body, 4 conns: MB/s", "big_10m", "rps", 10, False),
    ("64 KB static file, 32 conns: req/s", "static_64k", "rps", 1, False),
    ("WS echo 32 B, 16 clients: msg/s", "ws32_16", "msgs", 1, False),
    ("WS echo 32 B, 16 clients: p50 ms", "ws32_16", "p50_ms", 1, True),
    ("WS echo 32 B, 16 clients: p99 ms", "ws32_16", "p99_ms", 1, True),
    ("WS echo 32 B, 1 client: msg/s", "ws32_1", "msgs", 1, False),
    ("WS echo 32 B, 1 client: p50 ms", "ws32_1", "p50_ms", 1, True),
    ("WS echo 32 B, 1 client: p99 ms", "ws32_1", "p99_ms", 1, True),
    ("WS echo 1 MB, 16 clients: msg/s", "ws1m_16", "msgs", 1, False),
    ("WS echo 1 MB, 1 client: msg/s", "ws1m_1", "msgs", 1, False),
    ("WS echo 1 MB, 1 client: p50 ms", "ws1m_1", "p50_ms", 1, True),
    ("main-thread CPU per hello request (keep-alive, 32 conns): µs", "hello_ka_32", "main_cpu_us_per_req", 1, True),
    ("whole-process CPU per hello request (keep-alive, 32 conns): µs", "hello_ka_32", "proc_cpu_us_per_req", 1, True),
    ("main-thread CPU per hello request (Connection: close, 32 conns): µs", "hello_close_32", "main_cpu_us_per_req", 1, True),
]
MEM_ROWS = [
    ("RSS added by {n} idle keep-alive connections: MB", "idle_http", "rss_delta_mb", "idle_http"),
    ("RSS added by {n} idle WebSockets: MB", "idle_ws", "rss_delta_mb", "idle_ws"),
    ("RSS before (idle server, after warm-up): MB", "idle_http", "rss_base_mb", None),
]


def fmt(v):
    if v is None:
        return "–"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}×"


def cell(mode, impl, wl, metric, scale):
    f = flags.get((mode, impl, wl), set())
    if "unsupported" in f:
        return "n/a (not yet)", None
    v = med(mode, impl, wl, metric, scale)
    if "failed" in f and v is None:
        return "failed", None
    mark = " ⚠" if ("errors" in f or "failed" in f) else ""
    return fmt(v) + mark, v


out = []
p = out.append
p(f"# rookd vs httpuv — bench/run{' --quick' if meta.get('quick') == '1' else ''}")
p("")
p(f"- date: {meta.get('date')}; wall time {int(meta.get('elapsed', 0)) // 60} min {int(meta.get('elapsed', 0)) % 60} s")
p(f"- machine: {meta.get('nproc')} cores ({meta.get('cpu')}), {meta.get('mem')} RAM, "
  f"kernel {meta.get('kernel')}; load average at start {meta.get('load')}")
p(f"- {meta.get('versions')}; rookd commit {meta.get('commit')}; wrk {meta.get('wrk')}")
p(f"- every figure: median of {meta.get('runs')} runs of {meta.get('duration')} s, runs interleaved "
  "httpuv/rookd/ceiling; wrk -t1 (one load thread), loopback; WebSocket load: "
  "`ws_load` (Rust, tokio-tungstenite, one thread, one message in flight per client)")
p("- no-R ceiling: `bench_no_r`, the same engine and defaults answering from a plain Rust "
  "loop draining the Door (interactive rows compare with the same ceiling)")
p("- MB = 2^20 bytes. ⚠ = some run had socket errors or non-2xx answers (see latest.tsv). "
  "Ratios are rookd/httpuv and rookd/ceiling as measured: above 1 is better for rates, "
  "below 1 is better for ms, µs and MB")
p("")

MODES = [("script", "Script mode (Rscript looping `service()` / `httpuv::service()`)"),
         ("interactive", "Interactive-idle mode (R at the prompt under tmux, `startDaemonizedServer`)")]
for mode, title in MODES:
    if not any(k[0] == mode for k in vals) and not any(k[0] == mode for k in flags):
        continue
    p(f"## {title}")
    p("")
    p("| workload | httpuv | rookd | rookd/httpuv | no-R ceiling | rookd/ceiling |")
    p("|---|---:|---:|---:|---:|---:|")
    for label, wl, metric, scale, _lower in ROWS:
        have = any(k[0] == mode and k[2] == wl for k in vals) or any(k[0] == mode and k[2] == wl for k in flags)
        if not have:
            continue
        ch, h = cell(mode, "httpuv", wl, metric, scale)
        cr, r = cell(mode, "rookd", wl, metric, scale)
        cc, c = cell("script", "ceiling", wl, metric, scale)
        p(f"| {label} | {ch} | {cr} | {fmt_ratio(ratio(r, h))} | {cc} | {fmt_ratio(ratio(r, c))} |")
    p("")
    # Was the load generator the bottleneck? (wrk -t1 / ws_load use at most one core.)
    seen, parts = set(), []
    for _label, wl, *_ in ROWS:
        if wl in seen:
            continue
        seen.add(wl)
        if not any(k[0] == mode and k[2] == wl for k in vals):
            continue
        cells = [med(m, i, wl, "client_cpu_pct") for m, i in ((mode, "httpuv"), (mode, "rookd"), ("script", "ceiling"))]
        if any(x is not None for x in cells):
            parts.append(f"{wl} {'/'.join('–' if x is None else f'{x:.0f}' for x in cells)}")
    if parts:
        p("Load-client CPU, % of one core (httpuv/rookd/ceiling; near 100 means the client, "
          "not the server, was the limit): " + "; ".join(parts))
        p("")

if any(k[2].startswith("idle_") for k in vals):
    p("## Memory (RSS of the server process; fresh server per row, script mode)")
    p("")
    p("| workload | httpuv | rookd | rookd/httpuv | no-R ceiling | rookd/ceiling |")
    p("|---|---:|---:|---:|---:|---:|")
    for label, wl, metric, n in MEM_ROWS:
        label = label.format(n=f"{int(meta.get(n, 0)):,}" if n else "")
        row = [med("script", i, wl, metric) for i in ("httpuv", "rookd", "ceiling")]
        opened = [med("script", i, wl, "open") for i in ("httpuv", "rookd", "ceiling")]
        cells = []
        for v, o in zip(row, opened):
            c = fmt(v)
            if n and o is not None and o < int(meta.get(n, 0)):
                c += f" (only {int(o)} open)"
            cells.append(c)
        p(f"| {label} | {cells[0]} | {cells[1]} | {fmt_ratio(ratio(row[1], row[0]))} | {cells[2]} | "
          f"{fmt_ratio(ratio(row[1], row[2]))} |")
    p("")

# ------------------------------------------------------------------ targets
def g(mode, impl, wl, metric, scale=1.0):
    return med(mode, impl, wl, metric, scale)


def target(desc, ok, detail):
    mark = "–" if ok is None else ("met" if ok else "**missed**")
    p(f"| {desc} | {detail} | {mark} |")


def ge(a, b, k):
    return None if a is None or b is None else a >= k * b


def le(a, k):
    return None if a is None else a <= k


p("## Targets")
p("")
p("| target | measured | |")
p("|---|---|---|")
for mode in ("script", "interactive"):
    if not any(k[0] == mode for k in vals):
        continue
    m = f"{mode}: "
    h, r, c = (g(mode, "httpuv", "hello_ka_32", "rps"), g(mode, "rookd", "hello_ka_32", "rps"),
               g("script", "ceiling", "hello_ka_32", "rps"))
    if r is not None:
        target(m + "hello keep-alive 32 conns ≥ 20× httpuv", ge(r, h, 20), f"{fmt_ratio(ratio(r, h))}")
        target(m + "hello keep-alive 32 conns ≥ 50% of no-R ceiling", ge(r, c, 0.5), f"{fmt_ratio(ratio(r, c))}")
    v = g(mode, "rookd", "hello_ka_1", "p50_ms")
    if v is not None:
        target(m + "p50 with 1 connection ≤ 0.2 ms", le(v, 0.2), f"{fmt(v)} ms")
    h, r = g(mode, "httpuv", "hello_close_32", "rps"), g(mode, "rookd", "hello_close_32", "rps")
    if r is not None:
        target(m + "Connection: close (32 conns) ≥ 3× httpuv", ge(r, h, 3), fmt_ratio(ratio(r, h)))
    v = g(mode, "rookd", "hello_ka_32", "main_cpu_us_per_req")
    if v is not None:
        target(m + "R main-thread time per hello request ≤ 10 µs", le(v, 10),
               f"{fmt(v)} µs (httpuv {fmt(g(mode, 'httpuv', 'hello_ka_32', 'main_cpu_us_per_req'))} µs)")
    for wl, k, desc in (("echo_1m", 3, "1 MB echo ≥ 3×"), ("big_10m", 2, "10 MB body ≥ 2×"),
                        ("static_64k", 10, "static 64 KB ≥ 10×")):
        h, r = g(mode, "httpuv", wl, "rps"), g(mode, "rookd", wl, "rps")
        if "unsupported" in flags.get((mode, "rookd", wl), set()):
            target(m + desc, None, "n/a (rookd staticPaths not available yet)")
        elif r is not None:
            target(m + desc, ge(r, h, k), fmt_ratio(ratio(r, h)))
    h, r, c = (g(mode, "httpuv", "ws32_16", "msgs"), g(mode, "rookd", "ws32_16", "msgs"),
               g("script", "ceiling", "ws32_16", "msgs"))
    if r is not None:
        target(m + "WS 32 B echo, 16 clients ≥ 2× httpuv", ge(r, h, 2), fmt_ratio(ratio(r, h)))
        target(m + "WS 32 B echo, 16 clients ≥ 50% of no-R WS echo", ge(r, c, 0.5), fmt_ratio(ratio(r, c)))
    v = g(mode, "rookd", "ws32_1", "p50_ms")
    if v is not None:
        target(m + "WS round trip p50, 1 client ≤ 100 µs", le(v, 0.1), f"{fmt(v * 1000)} µs")
    for wl, desc in (("ws1m_16", "1 MB WS echo, 16 clients ≥ 1.5×"), ("ws1m_1", "1 MB WS echo, 1 client ≥ 1.5×")):
        h, r = g(mode, "httpuv", wl, "msgs"), g(mode, "rookd", wl, "msgs")
        if r is not None:
            target(m + desc, ge(r, h, 1.5), fmt_ratio(ratio(r, h)))
v = g("script", "rookd", "idle_http", "rss_delta_mb")
if v is not None:
    target(f"{int(meta.get('idle_http', 0)):,} idle connections add ≤ 100 MB RSS"
           + ("" if int(meta.get("idle_http", 0)) >= 10000 else " (scaled: fewer connections in this run)"),
           le(v * 10000 / max(1, int(meta.get("idle_http", 1))), 100), f"{fmt(v)} MB")
v = g("script", "rookd", "idle_ws", "rss_delta_mb")
if v is not None:
    target(f"{int(meta.get('idle_ws', 0)):,} idle WebSockets add ≤ 50 MB RSS"
           + ("" if int(meta.get("idle_ws", 0)) >= 2000 else " (scaled: fewer sockets in this run)"),
           le(v * 2000 / max(1, int(meta.get("idle_ws", 1))), 50), f"{fmt(v)} MB")
p("")
print("\n".join(out))
