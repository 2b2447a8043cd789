#!/usr/bin/env python3
"""Soak driver (tests/soak/run.sh): >= TARGET mixed HTTP requests and WebSocket messages,
with random disconnects, against an R-hosted rookd on 127.0.0.1; samples the R process's
RSS and open fds at start, after warm-up and at the end.

    python3 soak.py INFO_FILE [--target N] [--max-secs S] [--warmup-secs S]

The warm-up (90 s by default, a few hundred thousand requests) is what it takes R's heap
and the allocator's arenas to reach their working size under this mix; growth is judged
from there, with both samples taken idle, after R's gc().

HTTP volume comes from wrk (tests/soak/mixed.lua); WebSocket sessions and raw HTTP with
random disconnects from the threads here (stdlib only). Every loop is bounded in count and
time. Fails if RSS grows by more than 10 % after warm-up, if fds grow, if an echo comes back
wrong, or if fewer than TARGET requests + messages were done.
"""
import argparse
import base64
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

HOST = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))


def proc_sample(pid):
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                rss = int(ln.split()[1]) * 1024
    return {"rss": rss, "fds": len(os.listdir("/proc/%d/fd" % pid)),
            "threads": len(os.listdir("/proc/%d/task" % pid))}


def fmt(s):
    out = "RSS %.1f MB, fds %d, threads %d" % (s["rss"] / 2**20, s["fds"], s["threads"])
    if "r_heap_mb" in s:
        out += ", R heap in use %.1f MB" % s["r_heap_mb"]
    return out


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}

    def add(self, k, n=1):
        with self.lock:
            self.c[k] = self.c.get(k, 0) + n


def mask_payload(payload, key):
    n = len(payload)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def frame(opcode, payload, fin=True):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, 0x80 | 127, n)
    key = os.urandom(4)
    return hdr + key + mask_payload(payload, key)


class Conn:
    def __init__(self, port, timeout=10):
        self.s = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""

    def fill(self):
        d = self.s.recv(262144)
        if not d:
            raise EOFError("closed by server")
        self.buf += d

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            self.fill()
            if len(self.buf) > 65536:
                raise ValueError("response head too long")
        h, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = h.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        hs = {}
        for ln in lines[1:]:
            k, v = ln.split(b":", 1)
            hs[k.strip().lower()] = v.strip()
        return status, hs

    def response(self, is_head=False):
        status, hs = self.head()
        if is_head:
            return status, hs, b""
        if hs.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = b""
            for _ in range(100000):
                while b"\r\n" not in self.buf:
                    self.fill()
                ln, self.buf = self.buf.split(b"\r\n", 1)
                n = int(ln.split(b";")[0], 16)
                if n == 0:
                    self.take(2)
                    break
                body += self.take(n)
                self.take(2)
            return status, hs, body
        return status, hs, self.take(int(hs.get(b"content-length", b"0")))

    def ws_read(self):
        h = self.take(2)
        op, n = h[0] & 0x0F, h[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.take(8))[0]
        return op, self.take(n)

    def rst(self):
        try:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.s.close()

    def close(self):
        self.s.close()


def ws_session(port, rng, st):
    c = Conn(port)
    key = base64.b64encode(os.urandom(16))
    c.s.sendall(b"GET /ws HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    status, _ = c.head()
    if status != 101:
        raise ValueError("ws handshake: %d" % status)
    st.add("ws_sessions")
    n = rng.randint(1, 300)
    ending = rng.random()
    unread = 0
    for i in range(n):
        binary = rng.random() < 0.5
        size = rng.choice((0, 1, 10, 100, 1000, rng.randint(0, 16384)))
        payload = os.urandom(size) if binary else ("m%d " % i + "x" * size).encode()
        op = 2 if binary else 1
        if size > 2000 and rng.random() < 0.3:  # fragmented
            a, b = payload[: size // 2], payload[size // 2:]
            c.s.sendall(frame(op, a, fin=False) + frame(9, b"p") + frame(0, b, fin=True))
            expect_pong = True
        else:
            c.s.sendall(frame(op, payload))
            expect_pong = False
        st.add("ws_msgs")
        if ending > 0.85 and i > n // 2:
            unread += 1  # stop reading: the server's outgoing queue holds the echoes
            continue
        got_op, got = c.ws_read()
        if expect_pong:
            if got_op != 10:
                raise ValueError("expected a pong, got opcode %d" % got_op)
            got_op, got = c.ws_read()
        if got_op != op or got != payload:
            st.add("ws_mismatch")
            raise ValueError("ws echo mismatch (op %d/%d, %d/%d bytes)" % (got_op, op, len(got), len(payload)))
    if ending < 0.5:
        c.s.sendall(frame(8, struct.pack("!H", 1000) + b"bye"))
        for _ in range(1000):
            op, _ = c.ws_read()
            if op == 8:
                break
        st.add("ws_close_clean")
        c.close()
    elif ending < 0.65:
        c.close()
        st.add("ws_close_fin")
    elif ending < 0.75:
        c.rst()
        st.add("ws_close_rst")
    elif ending < 0.85:
        c.s.sendall(frame(1, b"half a frame")[:5])  # leave in the middle of a frame
        c.rst()
        st.add("ws_close_midframe")
    else:
        c.rst()
        st.add("ws_close_unread")


def http_session(port, rng, st):
    c = Conn(port)
    n = rng.randint(1, 50)
    for i in range(n):
        kind = rng.random()
        if kind < 0.3:
            c.s.sendall(b"HEAD /hello HTTP/1.1\r\nHost: soak\r\n\r\n")
            status, hs, _ = c.response(is_head=True)
            ok = status == 200 and hs.get(b"content-length") == b"5"
        elif kind < 0.6:
            body = os.urandom(rng.randint(0, 20000))
            c.s.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            status, hs, got = c.response()
            ok = status == 200 and got == body
        elif kind < 0.75:
            body = os.urandom(rng.randint(1, 20000))
            chunks = b"".join(b"%x\r\n" % len(body[j:j + 4096]) + body[j:j + 4096] + b"\r\n"
                              for j in range(0, len(body), 4096))
            c.s.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
            status, hs, got = c.response()
            ok = status == 200 and got == body
        else:
            c.s.sendall(b"GET /json?i=%d HTTP/1.1\r\nHost: soak\r\n\r\n" % i)
            status, hs, got = c.response()
            ok = status == 200 and got.startswith(b'{"n": ')
        st.add("py_http")
        if not ok:
            st.add("http_mismatch")
            raise ValueError("http: bad answer %d" % status)
    # then leave in a random way
    r = rng.random()
    if r < 0.4:
        c.close()
    elif r < 0.55:
        c.s.sendall(b"GET /hello HTTP/1.1\r\nHost: so")  # mid-head
        c.rst()
        st.add("http_left_midhead")
    elif r < 0.7:
        c.s.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 10000\r\n\r\nabc")  # mid-body
        c.rst()
        st.add("http_left_midbody")
    elif r < 0.85:
        c.s.sendall(b"GET /blob HTTP/1.1\r\nHost: soak\r\n\r\n")  # mid-response
        c.take(rng.randint(1, 30000))
        c.rst()
        st.add("http_left_midresponse")
    else:
        c.s.sendall(b"GET /hello HTTP/1.1\r\nHost: soak\r\n\r\n")  # before the response
        c.rst()
        st.add("http_left_before_response")


def attack_session(port, rng, st):
    """10 to 40 R-side attacks (issue 12) on the attack server, one connection each: a leak
    or a stuck drain in any of them shows as RSS growth, a failed answer, or /rstats not
    back to 0 at the end."""
    for _ in range(rng.randint(10, 40)):
        one_attack(port, rng, st)


def one_attack(port, rng, st):
    kind = rng.randrange(7)
    c = Conn(port)
    if kind == 0:  # refused upgrade after onHeaders kept the env (bad Origin or version)
        key = base64.b64encode(os.urandom(16))
        bad = rng.random() < 0.5
        c.s.sendall(b"GET /ws HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: " + (b"8" if bad else b"13") +
                    b"\r\nOrigin: " + (b"http://good.example" if bad else b"http://evil.example") + b"\r\n\r\n")
        status, _ = c.head()
        if status not in (403, 426):
            raise ValueError("refused upgrade answered %d" % status)
        st.add("attack_refused_upgrade")
    elif kind == 1:  # leave before a late streamed body or owned file is ready
        c.s.sendall(b"GET /late-%s HTTP/1.1\r\nHost: soak\r\n\r\n" % rng.choice((b"stream", b"file")))
        time.sleep(0.02)
        st.add("attack_left_before_late_answer")
    elif kind == 2:  # a header name past R's symbol limit; names with '_'
        name = b"X" + b"n" * 10_000 if rng.random() < 0.5 else b"X_Forwarded_For"
        c.s.sendall(b"GET /env HTTP/1.1\r\nHost: soak\r\n" + name + b": 6.6.6.6\r\n\r\n")
        status, _, got = c.response()
        if status != 200 or b"xff=<unset>" not in got:
            raise ValueError("odd header name: %d %r" % (status, got[:80]))
        st.add("attack_odd_header_name")
    elif kind == 3:  # a never-seen header name: served with it, or 431 past the bound
        c.s.sendall(b"GET /env HTTP/1.1\r\nHost: soak\r\nX-Soak-%d: 1\r\n\r\n" % rng.getrandbits(48))
        status, _, _ = c.response()
        if status not in (200, 431):
            raise ValueError("new header name answered %d" % status)
        st.add("attack_new_header_name_%d" % status)
    elif kind in (4, 5):  # WebSocket text with U+0000 (close 1003), close reason with U+0000
        key = base64.b64encode(os.urandom(16))
        c.s.sendall(b"GET /ws HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n"
                    b"Origin: http://good.example\r\n\r\n")
        status, _ = c.head()
        if status != 101:
            raise ValueError("ws handshake: %d" % status)
        if kind == 4:
            c.s.sendall(frame(1, b"text\x00more"))
            want = 1003
        else:
            c.s.sendall(frame(8, struct.pack("!H", 1000) + b"bye\x00x"))
            want = 1000
        for _ in range(100):
            op, data = c.ws_read()
            if op == 8:
                break
        code = struct.unpack("!H", data[:2])[0] if op == 8 and len(data) >= 2 else None
        if code != want:
            raise ValueError("ws close: wanted %d, got %r" % (want, code))
        st.add("attack_ws_nul")
    else:  # abandoned after onHeaders: leave mid-body
        c.s.sendall(b"POST /env HTTP/1.1\r\nHost: soak\r\nContent-Length: 100\r\n\r\nab")
        st.add("attack_left_midbody")
    c.rst()


def worker(port, seed, stop, st, attack_port=None):
    rng = random.Random(seed)
    for _ in range(10_000_000):
        if stop.is_set():
            return
        try:
            r = rng.random()
            if attack_port and r < 0.1:
                attack_session(attack_port, rng, st)
            elif r < 0.73:
                ws_session(port, rng, st)
            else:
                http_session(port, rng, st)
        except (ValueError, EOFError, OSError) as e:
            st.add("errors")
            st.add("error: " + re.sub(r"\d+", "N", str(e))[:60])
            time.sleep(0.05)


def run_wrk(port, secs, conns=32):
    out = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % secs, "--timeout", "10s",
                          "-s", os.path.join(HERE, "mixed.lua"), "http://%s:%d/" % (HOST, port)],
                         capture_output=True, text=True, timeout=secs + 60)
    m = re.search(r"WRK_RESULT (.*)", out.stdout)
    if not m:
        raise RuntimeError("wrk failed: %s %s" % (out.stdout[-500:], out.stderr[-500:]))
    return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def phase(port, secs, nthreads, st, wrk_totals, seed, attack_port=None):
    stop = threading.Event()
    ths = [threading.Thread(target=worker, args=(port, seed * 100 + i, stop, st, attack_port), daemon=True)
           for i in range(nthreads)]
    for t in ths:
        t.start()
    try:
        w = run_wrk(port, secs)
    finally:
        stop.set()
        for t in ths:
            t.join(30)
    for k, v in w.items():
        wrk_totals[k] = wrk_totals.get(k, 0) + v


def get_json(port, path):
    with urllib.request.urlopen("http://%s:%d%s" % (HOST, port, path), timeout=10) as r:
        return json.loads(r.read())


def idle_sample(pid, port, secs):
    """Let connections close (header_timeout 3 s, ws_idle_timeout 10 s), run R's garbage
    collector (so R's heap is measured the same way each time), then sample."""
    time.sleep(secs)
    r_heap = get_json(port, "/gc")["r_heap_mb"]
    time.sleep(0.5)
    s = proc_sample(pid)
    s["r_heap_mb"] = r_heap
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("info")
    ap.add_argument("--target", type=int, default=1_000_000)
    ap.add_argument("--max-secs", type=int, default=540)
    ap.add_argument("--warmup-secs", type=int, default=90)
    ap.add_argument("--chunk-secs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    info = json.load(open(a.info))
    pid, port = info["pid"], info["port"]
    attack_port = info.get("attack_port")
    t0 = time.time()
    st = Stats()
    wrk = {}

    start = idle_sample(pid, port, 0)
    print("start:   " + fmt(start), flush=True)
    phase(port, a.warmup_secs, a.threads, st, wrk, 1, attack_port)
    warm = idle_sample(pid, port, 12)
    done = wrk.get("requests", 0) + st.c.get("ws_msgs", 0) + st.c.get("py_http", 0)
    print("warm-up: " + fmt(warm) + "  (after %d requests + messages, %.0f s)" % (done, time.time() - t0),
          flush=True)
    samples = []
    for i in range(1000):
        done = wrk.get("requests", 0) + st.c.get("ws_msgs", 0) + st.c.get("py_http", 0)
        if done >= a.target or time.time() - t0 > a.max_secs - a.chunk_secs - 20:
            break
        phase(port, a.chunk_secs, a.threads, st, wrk, i + 2, attack_port)
        s = proc_sample(pid)
        samples.append(s)
        done = wrk.get("requests", 0) + st.c.get("ws_msgs", 0) + st.c.get("py_http", 0)
        print("  chunk %d: %s, %d done, %.0f s" % (i + 1, fmt(s), done, time.time() - t0), flush=True)
    end = idle_sample(pid, port, 12)
    stats = get_json(port, "/stats")
    rstats = get_json(attack_port, "/rstats") if attack_port else {}
    done = wrk.get("requests", 0) + st.c.get("ws_msgs", 0) + st.c.get("py_http", 0)
    elapsed = time.time() - t0
    print("end:     " + fmt(end), flush=True)
    print("wrk:     %s" % json.dumps(wrk))
    print("python:  %s" % json.dumps(dict(sorted(st.c.items()))))
    print("server:  %s" % json.dumps(stats))
    if rstats:
        print("attacks: %s (idle: all must be 0)" % json.dumps(rstats))
    print("total:   %d requests + messages in %.0f s (%.0f/s): wrk %d HTTP, python %d HTTP + %d WS messages"
          % (done, elapsed, done / elapsed, wrk.get("requests", 0), st.c.get("py_http", 0), st.c.get("ws_msgs", 0)))
    growth = (end["rss"] - warm["rss"]) / warm["rss"]
    print("RSS after warm-up -> end: %.1f MB -> %.1f MB (%+.1f %%); fds %d -> %d -> %d (start, warm-up, end)"
          % (warm["rss"] / 2**20, end["rss"] / 2**20, 100 * growth, start["fds"], warm["fds"], end["fds"]))
    failures = []
    if done < a.target:
        failures.append("only %d of %d requests + messages" % (done, a.target))
    if growth > 0.10:
        failures.append("RSS grew %.1f %% after warm-up" % (100 * growth))
    if end["fds"] > warm["fds"] or end["fds"] > start["fds"]:
        failures.append("fds grew: %d -> %d -> %d" % (start["fds"], warm["fds"], end["fds"]))
    if end["threads"] > warm["threads"]:
        failures.append("threads grew: %d -> %d" % (warm["threads"], end["threads"]))
    if st.c.get("ws_mismatch", 0) or st.c.get("http_mismatch", 0):
        failures.append("wrong answers: %d ws, %d http" % (st.c.get("ws_mismatch", 0), st.c.get("http_mismatch", 0)))
    errs = st.c.get("errors", 0) + wrk.get("timeout", 0) + wrk.get("connect", 0)
    if errs > 0.001 * done:
        failures.append("%d client errors/timeouts" % errs)
    if stats["ws_open"] != stats["ws_closed"]:
        failures.append("server saw %d WebSocket opens but %d closes" % (stats["ws_open"], stats["ws_closed"]))
    left = {k: v for k, v in rstats.items() if v}
    if left:
        failures.append("after the R-side attacks, left over once idle: %s" % json.dumps(left))
    for f in failures:
        print("FAIL: " + f)
    print("%d passed, %d failed" % (1 if not failures else 0, 1 if failures else 0))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
