#!/usr/bin/env python3
"""R-side hostile clients against tests/hostile-r/app.R (started by tests/hostile-r/run.sh).

    python3 tests/hostile-r/hostile_r.py INFO_FILE [-k SUBSTRING]

Each case is an attack on the R side of rookd (what reaches R's C API, the env kept for
onHeaders, bodies whose client left) over raw sockets on 127.0.0.1; each is followed by a
normal request that must be answered, and the bursts of 2,000 check R's memory (cells
after gc(), from /stats) and the process's open files (/proc/PID/fd). The last line
printed is "N passed, N failed". Stdlib only.
"""
import base64
import json
import os
import socket
import struct
import sys
import threading
import time

HOST = "127.0.0.1"
INFO = {}


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def note(msg):
    print("    note: " + msg, flush=True)


def connect(timeout=10.0):
    s = socket.create_connection((HOST, INFO["port"]), timeout=timeout)
    s.settimeout(timeout)
    return s


def read_response(s):
    """(status, headers dict, body) of one response with Content-Length or chunked."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise Fail("connection closed before a response head: %r" % buf[:200])
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            d = s.recv(65536)
            if not d:
                break
            rest += d
        return status, headers, rest[:n]
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += s.recv(65536)
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += s.recv(65536)
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                return status, headers, body
    return status, headers, rest


def request(raw, timeout=20.0):
    s = connect(timeout)
    try:
        s.sendall(raw)
        return read_response(s)
    finally:
        s.close()


def get(path, extra=(), timeout=20.0):
    raw = "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" % path
    for h in extra:
        raw += h + "\r\n"
    return request((raw + "\r\n").encode("latin-1"), timeout)


def fields(body):
    out = {}
    for ln in body.decode("utf-8", "replace").split("\n"):
        if "=" in ln:
            k, v = ln.split("=", 1)
            out[k] = v
    return out


def stats():
    st, _, body = get("/stats")
    check(st == 200, "/stats answered %d" % st)
    return {k: int(v) for k, v in fields(body).items()}


def fds():
    return len(os.listdir("/proc/%d/fd" % INFO["pid"]))


def healthy():
    st, _, body = get("/health")
    check(st == 200 and body == b"ok /health\n", "health check failed: %d %r" % (st, body[:100]))


def burst(fn, n=2000, nthreads=4):
    """Run fn(i) n times over a few threads; re-raise the first error."""
    errors = []

    def run(k0):
        for i in range(k0, n, nthreads):
            try:
                fn(i)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
                return
    ts = [threading.Thread(target=run, args=(k,)) for k in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    if errors:
        raise errors[0]


def settle(pred, timeout=10.0):
    """Poll /stats until pred(stats) holds; returns the last stats."""
    deadline = time.time() + timeout
    s = stats()
    while not pred(s) and time.time() < deadline:
        time.sleep(0.2)
        s = stats()
    return s


def memory_flat(before, after, what, n=2000):
    dn = after["ncells"] - before["ncells"]
    dv = after["vcells"] - before["vcells"]
    note("%s: R cells %+d Ncells, %+d Vcells after %d; fds %d -> %d" %
         (what, dn, dv, n, before["fds"], after["fds"]))
    # A leaked env is ~100 Ncells: 2,000 leaks would be ~200,000.
    check(dn < 20000, "%s: Ncells grew by %d over %d" % (what, dn, n))
    check(dv < 200000, "%s: Vcells grew by %d over %d" % (what, dv, n))
    check(after["fds"] <= before["fds"] + 2, "%s: open fds grew %d -> %d" % (what, before["fds"], after["fds"]))


def snapshot():
    s = stats()
    s["fds"] = fds()
    return s


# --- WebSocket --------------------------------------------------------------------------------

class WS:
    def __init__(self, origin="http://good.example", version="13"):
        self.s = connect()
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\nOrigin: %s\r\n\r\n" % (key, version, origin))
        self.s.sendall(req.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                break
            self.buf += d
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1]) if head else 0

    def send(self, opcode, payload):
        n = len(payload)
        if n < 126:
            h = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            h = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            h = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        if n > 1 << 16:
            # Masking a large payload byte by byte is slow: mask with a repeated key.
            import itertools  # noqa: F401
            key = (mask * (n // 4 + 1))[:n]
            masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
        else:
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.s.sendall(h + mask + masked)

    def _exactly(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise Fail("the server closed the TCP connection")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        b0, b1 = self._exactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._exactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._exactly(8))[0]
        return b0 & 0x0F, self._exactly(n)

    def recv_close_code(self):
        while True:
            op, data = self.recv()
            if op == 8:
                return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None

    def close(self):
        self.s.close()


def ws_echo_ok():
    w = WS()
    check(w.status == 101, "upgrade answered %d" % w.status)
    w.send(1, b"still here")
    op, data = w.recv()
    check((op, data) == (1, b"still here"), "echo: %r" % ((op, data),))
    w.send(8, struct.pack("!H", 1000))
    check(w.recv_close_code() == 1000, "no close echo")
    w.close()


# --- cases ------------------------------------------------------------------------------------

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


@case
def env_allocation_failure_answers_500():
    # R cannot allocate the 20 MB header value: an R error inside the env building.
    get("/tighten")
    try:
        st, _, _ = request(b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Big: " +
                           b"a" * 20_000_000 + b"\r\n\r\n", timeout=60)
    finally:
        get("/loosen")
    check(st == 500, "expected 500, got %d" % st)
    healthy()
    s = stats()
    check(s["pending_envs"] == 0, "pending envs left: %d" % s["pending_envs"])


@case
def websocket_allocation_failure_closes_1011():
    w = WS()
    check(w.status == 101, "upgrade answered %d" % w.status)
    get("/tighten")
    try:
        w.send(2, b"\x01" * 30_000_000)
        code = w.recv_close_code()
    finally:
        get("/loosen")
    w.close()
    check(code == 1011, "expected close 1011, got %r" % code)
    ws_echo_ok()
    healthy()


@case
def header_name_over_r_symbol_limit():
    name = "X" + "a" * 10_000
    st, _, body = get("/env", ["%s: 1" % name])
    check(st == 200, "expected 200, got %d" % st)
    f = fields(body)
    check(name.lower() in f["headers"].split(","), "the long name is not in HEADERS")
    check(int(f["longest_var"]) <= 10_000, "a variable longer than R's limit")
    healthy()


@case
def underscore_header_cannot_spoof_dash_header():
    st, _, body = get("/env", ["X_Forwarded_For: 6.6.6.6"])
    f = fields(body)
    check(st == 200 and f["xff"] == "<unset>", "X_Forwarded_For set HTTP_X_FORWARDED_FOR: %r" % f)
    check("x_forwarded_for" in f["headers"].split(","), "x_forwarded_for not in HEADERS")
    for order in (0, 1):
        hs = ["X-Forwarded-For: 10.0.0.1", "X_Forwarded_For: 6.6.6.6"]
        if order:
            hs.reverse()
        st, _, body = get("/env", hs)
        check(fields(body)["xff"] == "10.0.0.1", "spoofed (order %d): %r" % (order, fields(body)))
    healthy()


@case
def distinct_header_names_never_hidden():
    # 2,000 requests, each with a never-seen name, past the (lowered) bound of HTTP_* names:
    # each is either served with its header as HTTP_* or refused with 431; never served
    # with the header missing.
    before = snapshot()
    counts = {}
    lock = threading.Lock()

    def one(i):
        name = "X-Made-Up-%d" % i
        st, _, body = get("/env", ["%s: v" % name])
        with lock:
            counts[st] = counts.get(st, 0) + 1
        if st == 200:
            var = "HTTP_" + name.upper().replace("-", "_")
            check(var in fields(body)["http_vars"].split(","), "%s hidden from the env" % var)
        else:
            check(st == 431, "expected 200 or 431, got %d" % st)
    burst(one)
    note("statuses %r" % counts)
    check(counts.get(431, 0) > 0, "the bound was never reached")
    st, _, body = get("/env", ["X-Made-Up-0: v"])
    check(st == 200 or counts.get(200, 0) == 0, "a known name refused")
    after = snapshot()
    memory_flat(before, after, "new header names")
    healthy()


@case
def websocket_close_reason_with_nul():
    w = WS()
    check(w.status == 101, "upgrade answered %d" % w.status)
    w.send(8, struct.pack("!H", 1000) + b"bye\x00hidden")
    code = w.recv_close_code()
    w.close()
    check(code == 1000, "expected the close echoed with 1000, got %r" % code)
    ws_echo_ok()
    healthy()


@case
def websocket_text_with_nul_closes_1003():
    w = WS()
    check(w.status == 101, "upgrade answered %d" % w.status)
    w.send(1, b"before\x00after")
    code = w.recv_close_code()
    w.close()
    check(code == 1003, "expected close 1003, got %r" % code)
    ws_echo_ok()
    healthy()


@case
def refused_upgrades_release_their_env():
    one = lambda i: WS(origin="http://evil.example" if i % 2 else "http://good.example",
                       version="13" if i % 2 else "8").close()
    burst(one, 200)  # warm-up
    before = settle(lambda s: s["pending_envs"] == 0)
    before["fds"] = fds()
    burst(one)
    after = settle(lambda s: s["pending_envs"] == 0)
    after["fds"] = fds()
    check(after["pending_envs"] == 0, "pending envs left: %d" % after["pending_envs"])
    memory_flat(before, after, "refused upgrades")
    healthy()


@case
def abandoned_requests_release_their_env():
    # onHeaders keeps the env; the client leaves before sending the body it announced.
    def one(i):
        s = connect()
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
        time.sleep(0.01)
        s.close()
    burst(one, 200)
    before = settle(lambda s: s["pending_envs"] == 0)
    before["fds"] = fds()
    burst(one)
    after = settle(lambda s: s["pending_envs"] == 0 and s["requests_in_flight"] == 0)
    after["fds"] = fds()
    check(after["pending_envs"] == 0, "pending envs left: %d" % after["pending_envs"])
    memory_flat(before, after, "abandoned requests")
    healthy()


@case
def abandoned_streamed_and_owned_file_answers_released():
    # The answer (a promise) is ready 0.5 s after the request; the client leaves at 0.05 s.
    def one(i):
        s = connect()
        s.sendall(("GET /later-%s HTTP/1.1\r\nHost: t\r\n\r\n" % ("stream" if i % 2 else "file")).encode())
        time.sleep(0.05)
        s.close()
    burst(one, 200, nthreads=20)
    before = settle(lambda s: s["promises_waiting"] == 0 and s["streams"] == 0 and s["owned_files"] == 0)
    before["fds"] = fds()
    burst(one, 2000, nthreads=20)
    after = settle(lambda s: s["promises_waiting"] == 0 and s["streams"] == 0 and s["owned_files"] == 0,
                   timeout=30)
    after["fds"] = fds()
    check(after["streams"] == 0, "generators left: %d" % after["streams"])
    check(after["owned_files"] == 0, "owned files left: %d" % after["owned_files"])
    memory_flat(before, after, "abandoned promise answers")
    st, _, body = get("/later-stream")
    check(st == 200 and body == b"chunk\n" * 3, "a normal streamed answer: %d %r" % (st, body))
    healthy()


def main():
    global INFO
    INFO = json.load(open(sys.argv[1]))
    only = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "-k" else None
    passed = failed = 0
    for fn in CASES:
        if only and only not in fn.__name__:
            continue
        t0 = time.time()
        try:
            fn()
            passed += 1
            print("ok    %-55s %5.1fs" % (fn.__name__, time.time() - t0), flush=True)
        except Exception as e:  # noqa: BLE001 (any exception is a failed case)
            failed += 1
            kind = "" if isinstance(e, Fail) else type(e).__name__ + ": "
            print("FAIL  %-55s %5.1fs  %s%s" % (fn.__name__, time.time() - t0, kind, e), flush=True)
        try:
            os.kill(INFO["pid"], 0)
        except OSError:
            print("FAIL  the R server process died", flush=True)
            failed += 1
            break
    try:
        get("/quit", timeout=5)
    except Exception:  # noqa: BLE001
        pass
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
