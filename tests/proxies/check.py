"""Checks of rookd behind real nginx and HAProxy (tests/proxies/run.sh): curl for HTTP,
python3-websockets for WebSockets. The client binds 127.0.0.2 (an untrusted address;
rookd trusts only 127.0.0.1, the proxies), so REMOTE_ADDR must come out as 127.0.0.2.

    python3 check.py PORTS_JSON
Last line: "N passed, N failed"."""
import asyncio
import json
import subprocess
import sys
import time

import websockets

P = json.load(open(sys.argv[1]))
CLIENT = "127.0.0.2"
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail), flush=True)


def curl(url, *args, data=None):
    cmd = ["curl", "-sS", "--max-time", "30", "--interface", CLIENT, *args, url]
    r = subprocess.run(cmd, input=data, capture_output=True, timeout=40)
    return r.returncode, r.stdout


def env_via(port, *headers, host=None):
    args = []
    for h in headers:
        args += ["-H", h]
    if host:
        args += ["-H", "Host: " + host]
    rc, out = curl("http://127.0.0.1:%d/env" % port, *args)
    return out.decode(errors="replace").split("|") if rc == 0 else ["curl rc %d" % rc]


async def ws_echo(port):
    async with websockets.connect("ws://127.0.0.1:%d/ws" % port, local_addr=(CLIENT, 0),
                                  open_timeout=10) as ws:
        await ws.send("hello")
        return await asyncio.wait_for(ws.recv(), 10)


def ws_check(name, port, want):
    try:
        got = asyncio.run(ws_echo(port))
    except Exception as e:  # noqa: BLE001 (report any failure as the check's)
        got = repr(e)
    check(name, got == want, "got %r, want %r" % (got, want))


# --- nginx: X-Forwarded-For/-Proto/-Host --------------------------------------------------
n = P["nginx"]
e = env_via(n, host="app.example.org")
check("nginx: REMOTE_ADDR is the client", e[0] == CLIENT, repr(e))
check("nginx: url_scheme http", e[1:2] == ["http"], repr(e))
check("nginx: HTTP_HOST/SERVER_NAME/SERVER_PORT from X-Forwarded-Host",
      e[2:5] == ["app.example.org", "app.example.org", "80"], repr(e))
e = env_via(n, host="app.example.org:8443")
check("nginx: a Host with a port gives SERVER_PORT", e[2:5] == ["app.example.org:8443", "app.example.org", "8443"], repr(e))
e = env_via(n, "X-Forwarded-For: 6.6.6.6", "X-Forwarded-Proto: https")
check("nginx: a spoofed X-Forwarded-For is passed over (rightmost untrusted)", e[0] == CLIENT, repr(e))
check("nginx: a client's X-Forwarded-Proto is overwritten by nginx", e[1:2] == ["http"], repr(e))
e = env_via(P["plain"], "X-Forwarded-For: 6.6.6.6")
check("direct from an untrusted client: X-Forwarded-For ignored", e[0] == CLIENT, repr(e))
ws_check("nginx: WebSocket upgrade and echo", n, "hello|%s|http" % CLIENT)

# Large upload (20 MiB, streamed on with proxy_request_buffering off).
blob = bytes((i * 7 + 3) % 256 for i in range(256)) * (20 * 4096)
want = "%d %d" % (len(blob), sum(blob) % 1000003)
rc, out = curl("http://127.0.0.1:%d/upload" % n, "-X", "POST", "-H", "Content-Type: application/octet-stream",
               "--data-binary", "@-", data=blob)
check("nginx: 20 MiB upload arrives whole", rc == 0 and out.decode() == want, "rc %d, %r (want %r)" % (rc, out[:80], want))
rc, out = curl("http://127.0.0.1:%d/upload" % n, "-X", "POST", "-H", "Transfer-Encoding: chunked",
               "--data-binary", "@-", data=blob)
check("nginx: 20 MiB chunked upload arrives whole", rc == 0 and out.decode() == want, "rc %d, %r" % (rc, out[:80]))

# Streamed response (proxy_buffering off): every chunk, in order.
rc, out = curl("http://127.0.0.1:%d/stream" % n, "-D", "-")
head, _, body = out.partition(b"\r\n\r\n")
lines = body.decode(errors="replace").splitlines()
ok = rc == 0 and len(lines) == 200 and all(l.startswith("chunk %05d " % (i + 1)) and len(l) == 1012 for i, l in enumerate(lines))
check("nginx: streamed response arrives whole and in order", ok, "rc %d, %d lines" % (rc, len(lines)))

# --- HAProxy: PROXY protocol v2 and v1 ----------------------------------------------------
for label, port in (("haproxy v2", P["haproxy_v2"]), ("haproxy v1", P["haproxy_v1"])):
    e = env_via(port)
    check(label + ": REMOTE_ADDR from the PROXY header", e[0] == CLIENT, repr(e))
    e = env_via(port, "X-Forwarded-For: 6.6.6.6")
    check(label + ": a spoofed X-Forwarded-For from the client is ignored", e[0] == CLIENT, repr(e))
    ws_check(label + ": WebSocket upgrade and echo", port, "hello|%s|http" % CLIENT)

# The health check (option httpchk, over PROXY v2) sees the server up.
for label, port in (("haproxy v2", P["stats_v2"]), ("haproxy v1", P["stats_v1"])):
    for _ in range(100):  # the first check runs within a second of HAProxy's start
        rc, out = curl("http://127.0.0.1:%d/stats;csv" % port)
        rows = [l.split(",") for l in out.decode(errors="replace").splitlines() if l.startswith("rookd,app1,")]
        ok = rc == 0 and len(rows) == 1 and rows[0][17] == "UP" and "L7OK" in rows[0][36]
        if ok:
            break
        time.sleep(0.1)
    check(label + ": httpchk health check passes (UP, L7OK)", ok, repr(rows))

# Metrics and the status page are not forwarded: through a proxy on this host every client
# looks local to rookd (and CLIENT, 127.0.0.2, is a loopback address anyway). Spellings
# that a proxy decodes or merges are tried too; rookd matches the raw path, so whatever
# reaches it spelled otherwise is the app's.
def ops_leak(port, path):
    rc, out = curl("http://127.0.0.1:%d%s" % (port, path), "--path-as-is", "-w", "\n%{http_code}")
    body, _, code = out.decode(errors="replace").rpartition("\n")
    # The app answers other paths with "ok"; a proxy's refusal is its own error page.
    leaked = code == "200" and body != "ok"
    return rc, code, leaked


for label, port in (("nginx", n), ("haproxy v2", P["haproxy_v2"]), ("haproxy v1", P["haproxy_v1"])):
    for path in ("/metrics", "/rookd-status", "/rookd-status?json", "/metrics?x=1", "//metrics",
                 "/%6Detrics", "/./metrics", "/x/../metrics"):
        rc, code, leaked = ops_leak(port, path)
        check("%s: %s is not served" % (label, path), rc == 0 and not leaked,
              "rc %d, status %s, leaked %s" % (rc, code, leaked))
    rc, code, _ = ops_leak(port, "/metrics")
    check("%s: /metrics is refused by the proxy (404)" % label, code == "404", "status %s" % code)
# Direct (loopback), rookd serves them: the checks above test the proxies, not a switched-off path.
rc, code, leaked = ops_leak(P["plain"], "/metrics")
check("direct to rookd from loopback: /metrics served", code == "200" and leaked, "status %s" % code)

# Without a PROXY header, the pp server closes the connection unanswered.
rc, out = curl("http://127.0.0.1:%d/env" % P["pp"])
check("direct to the proxy_protocol server without a header: closed", rc != 0 and out == b"", "rc %d %r" % (rc, out))

passed = sum(results)
print("%d passed, %d failed" % (passed, len(results) - passed))
sys.exit(0 if all(results) else 1)
