#!/usr/bin/env python3
"""Hostile clients against a running rookd (started by tests/hostile/run.sh).

    python3 tests/hostile/hostile.py INFO_FILE [-k SUBSTRING]

INFO_FILE is the JSON that tests/hostile/app.R writes: the R process's pid and the ports
of its servers. Every case speaks raw bytes over 127.0.0.1, asserts the exact status (and
key headers), then checks that the server still answers a normal request. Every socket
has a timeout and every loop a bound. The last line printed is "N passed, N failed".
Stdlib only.
"""
import base64
import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))
INFO = {}


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


# --- raw HTTP ------------------------------------------------------------------------------

def connect(port, timeout=5.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.settimeout(timeout)
    return s


class Resp:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status, self.reason, self.headers, self.body, self.raw_head = status, reason, headers, body, raw_head

    def h(self, name):
        vals = [v for n, v in self.headers if n.lower() == name.lower()]
        return vals[0] if vals else None

    def all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def text(self):
        return self.body.decode("latin-1")

    def field(self, name):
        """A 'name=value' line of /echo's answer."""
        m = re.search(r"^" + re.escape(name) + r"=(.*)$", self.text(), re.M)
        return m.group(1) if m else None

    def __repr__(self):
        return "<%s %s %r>" % (self.status, self.headers, self.body[:200])


class Reader:
    """Reads responses off one socket (keep-alive / pipelining aware)."""

    def __init__(self, sock):
        self.sock, self.buf, self.eof = sock, b"", False

    def _fill(self):
        if self.eof:
            return False
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def _take(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise Fail("connection closed %d bytes into a %d-byte body" % (len(self.buf), n))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise Fail("connection closed in the middle of a line: %r" % self.buf[:200])
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def response(self, head_request=False):
        """The next response, or None if the connection closed first (cleanly)."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                if self.buf:
                    raise Fail("connection closed inside a response head: %r" % self.buf[:300])
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3}) ?(.*)$", lines[0])
        check(m, "bad status line %r" % lines[0])
        status = int(m.group(1))
        headers = []
        for ln in lines[1:]:
            check(b":" in ln, "bad response header line %r" % ln)
            n, v = ln.split(b":", 1)
            headers.append((n.decode("latin-1"), v.strip().decode("latin-1")))
        r = Resp(status, m.group(2).decode("latin-1"), headers, b"", head)
        if head_request or status in (204, 304) or 100 <= status < 200:
            return r
        te = (r.h("transfer-encoding") or "").lower()
        if "chunked" in te:
            body = b""
            for _ in range(1_000_000):
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line() != b"":
                        pass
                    break
                body += self._take(size)
                check(self._take(2) == b"\r\n", "bad chunk end")
            r.body = body
        elif r.h("content-length") is not None:
            r.body = self._take(int(r.h("content-length")))
        else:
            while self._fill():
                pass
            r.body, self.buf = self.buf, b""
        return r

    def closed_after(self, timeout):
        """True if the peer closes (EOF or reset) within `timeout` with nothing more sent."""
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if d:
            self.buf += d
            return False
        return True


def exchange(port, data, timeout=5.0, head_request=False):
    """Send raw bytes, read one response (None if closed without one)."""
    s = connect(port, timeout)
    try:
        s.sendall(data)
        return Reader(s).response(head_request)
    finally:
        s.close()


def exchange_close(port, data, timeout=5.0):
    """Send raw bytes; read one response, then require the server to close."""
    s = connect(port, timeout)
    try:
        s.sendall(data)
        rd = Reader(s)
        r = rd.response()
        closed = rd.closed_after(timeout)
        return r, closed
    finally:
        s.close()


def get(port, path, headers=None, method="GET", body=b"", timeout=10.0):
    hs = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
    if body:
        hs += "Content-Length: %d\r\n" % len(body)
    req = ("%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n" % (method, path, hs)).encode() + body
    r = exchange(port, req, timeout)
    check(r is not None, "%s %s: closed without a response" % (method, path))
    return r


def note(msg):
    print("    note: " + msg, flush=True)


def main_port():
    return INFO["main"]


def healthy(port=None):
    r = get(port or main_port(), "/echo?tag=health")
    check(r.status == 200 and r.field("path") == "/echo", "health check failed: %r" % r)


def healthy_when_not_busy(port=None, within=8.0):
    """A normal request is served, honouring 503 + Retry-After: while clients that stall
    mid-body hold every queue slot of a server (max_queued_requests) until body_timeout
    cuts them, the server is right to say it is busy and when to come back."""
    deadline = time.time() + within
    while True:
        r = get(port or main_port(), "/echo?tag=health")
        if r.status == 503 and r.h("retry-after") and time.time() < deadline:
            time.sleep(float(r.h("retry-after")))
            continue
        check(r.status == 200 and r.field("path") == "/echo", "health check failed: %r" % r)
        return


def calls():
    return get(main_port(), "/calls?tag=calls").text().split("\n")


def expect_status(data, status, close=True, port=None, timeout=5.0):
    r, closed = exchange_close(port or main_port(), data, timeout)
    check(r is not None, "no response at all (silent drop); expected %d" % status)
    check(r.status == status, "expected %d, got %d %r" % (status, r.status, r.body[:100]))
    if close:
        check(closed, "expected the connection to be closed after %d" % status)
    return r


def proc(pid, what):
    if what == "rss":
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1]) * 1024
    if what == "fds":
        return len(os.listdir("/proc/%d/fd" % pid))
    if what == "threads":
        return len(os.listdir("/proc/%d/task" % pid))
    raise ValueError(what)


# --- cases -----------------------------------------------------------------------------------

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


@case
def head_too_big_431():
    # request line + headers over max_header_bytes (4096): one long header
    r = expect_status(b"GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 6000 + b"\r\n\r\n", 431)
    healthy()
    # a long request line alone
    expect_status(b"GET /echo?" + b"q" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 431)
    # just under the limit is fine
    r = get(main_port(), "/echo", {"X-Fits": "a" * 3500})
    check(r.status == 200, "a 3.6 KB head should pass: %r" % r)
    # far over (1 MB) without ever ending the head: 431 once the buffer is full
    s = connect(main_port())
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        sent = 0
        try:
            for _ in range(1024):
                s.sendall(b"X-Pad: " + b"p" * 1015 + b"\r\n")
                sent += 1024
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = Reader(s).response()
        check(r is not None and r.status == 431, "endless head: expected 431, got %r" % r)
    except (ConnectionResetError, BrokenPipeError):
        raise Fail("endless head: reset without a 431")
    finally:
        s.close()
    healthy()


@case
def too_many_headers_431():
    hs = b"".join(b"X-H%d: v\r\n" % i for i in range(30))
    expect_status(b"GET /echo HTTP/1.1\r\nHost: t\r\n" + hs + b"\r\n", 431)
    hs = b"".join(b"X-H%d: v\r\n" % i for i in range(18))  # 19 with Host, limit 20
    r = exchange(main_port(), b"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + hs + b"\r\n")
    check(r is not None and r.status == 200, "20 headers should pass: %r" % r)
    healthy()


@case
def body_over_max_content_length_413_before_body():
    # Content-Length over max_body_bytes (64 KiB): 413 at once, without sending any body
    t0 = time.time()
    s = connect(main_port())
    try:
        s.sendall(b"POST /echo?tag=cl413 HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n")
        r = Reader(s).response()
        check(r is not None and r.status == 413, "expected 413 before the body, got %r" % r)
        check(time.time() - t0 < 1.5, "413 took %.1f s (body awaited?)" % (time.time() - t0))
    finally:
        s.close()
    # with Expect: 100-continue, no 100 is sent, the 413 comes straight away
    s = connect(main_port())
    try:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 70000\r\n\r\n")
        r = Reader(s).response()
        check(r is not None and r.status == 413, "Expect: expected a final 413, got %r" % r)
    finally:
        s.close()
    check("cl413" not in calls(), "the app was called for a 413 request")
    # exactly the limit is accepted
    r = get(main_port(), "/echo", method="POST", body=b"z" * 65536)
    check(r.status == 200 and r.field("bodylen") == "65536", "64 KiB body should pass: %r" % r)
    healthy()


@case
def chunked_body_over_max_413():
    s = connect(main_port())
    try:
        s.sendall(b"POST /echo?tag=chunk413 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        r = None
        try:
            for _ in range(40):  # 40 x 4 KiB = 160 KiB > 64 KiB
                s.sendall(b"1000\r\n" + b"c" * 4096 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = Reader(s).response()
        check(r is not None and r.status == 413, "expected 413, got %r" % r)
    finally:
        s.close()
    check("chunk413" not in calls(), "the app was called for a 413 chunked request")
    healthy()


@case
def slowloris_header_trickle_408():
    # header_timeout = 2 s: a head trickling in a byte every 0.2 s is cut off
    s = connect(main_port(), timeout=8)
    t0 = time.time()
    got = b""
    closed_at = None
    try:
        s.sendall(b"GET /echo HTTP/1.1\r\n")
        for i in range(60):  # bounded: 12 s at most
            try:
                s.sendall(b"X-Slow: v\r\n"[i % 12:i % 12 + 1])  # one byte of a header line
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.time()
                break
            s.settimeout(0.2)
            try:
                d = s.recv(4096)
                if not d:
                    closed_at = time.time()
                    break
                got += d
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed_at = time.time()
                break
    finally:
        s.close()
    check(closed_at is not None, "slowloris connection still open after 12 s")
    el = closed_at - t0
    check(1.5 <= el <= 3.5, "closed after %.2f s, expected ~2 s (header_timeout)" % el)
    check(got.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), "expected a 408 before the close, got %r" % got[:100])
    healthy()


@case
def slow_body_408():
    s = connect(main_port(), timeout=8)
    t0 = time.time()
    try:
        s.sendall(b"POST /echo?tag=slowbody HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
        rd = Reader(s)
        r = None
        for _ in range(40):  # 10 bytes every 0.2 s would take 20 s; body_timeout is 2 s
            try:
                s.sendall(b"0123456789")
            except (BrokenPipeError, ConnectionResetError):
                break
            s.settimeout(0.2)
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            rd.buf += d
            if not d or b"\r\n\r\n" in rd.buf:
                break
        s.settimeout(5)
        r = rd.response()
        el = time.time() - t0
        check(r is not None and r.status == 408, "expected 408, got %r" % r)
        check(1.5 <= el <= 3.5, "408 after %.2f s, expected ~2 s" % el)
        check((r.h("connection") or "").lower() == "close", "408 without Connection: close")
        check(rd.closed_after(3), "connection not closed after 408")
    finally:
        s.close()
    check("slowbody" not in calls(), "the app was called for a timed-out body")
    healthy()


@case
def idle_keepalive_closed():
    s = connect(main_port(), timeout=8)
    try:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        rd = Reader(s)
        r = rd.response()
        check(r.status == 200, "first request: %r" % r)
        t0 = time.time()
        check(rd.closed_after(6), "idle keep-alive connection still open after 6 s")
        el = time.time() - t0
        check(1.5 <= el <= 3.5, "idle connection closed after %.2f s, expected ~2 s" % el)
        check(rd.buf == b"", "bytes sent on an idle connection: %r" % rd.buf[:100])
    finally:
        s.close()
    healthy()


MALFORMED = [
    ("garbage request line", b"GARBAGE\r\n\r\n", 400),
    ("request line with extra token", b"GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n", 400),
    ("missing target", b"GET HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("lower-case version", b"GET / http/1.1\r\nHost: t\r\n\r\n", 400),
    ("control char in target", b"GET /a\x01b HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("space in target", b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("method with separator", b"GE(T / HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("header without colon", b"GET / HTTP/1.1\r\nHost t\r\n\r\n", 400),
    ("space before colon", b"GET / HTTP/1.1\r\nHost: t\r\nX-A : b\r\n\r\n", 400),
    ("space in header name", b"GET / HTTP/1.1\r\nHost: t\r\nX A: b\r\n\r\n", 400),
    ("empty header name", b"GET / HTTP/1.1\r\nHost: t\r\n: b\r\n\r\n", 400),
    ("obs-fold continuation", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  folded\r\n\r\n", 400),
    ("NUL in header value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n", 400),
    ("bare CR in header value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rX-B: b\r\n\r\n", 400),
    ("bare CR ends request line", b"GET / HTTP/1.1\rHost: t\r\n\r\n", 400),
    ("Content-Length not a number", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400),
    ("Content-Length negative", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400),
    ("Content-Length with plus", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello", 400),
    ("Content-Length list", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 2\r\n\r\nab", 400),
    ("two different Content-Lengths",
     b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    ("Content-Length overflows u64",
     b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
    ("Transfer-Encoding not chunked", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    ("chunked not last", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    ("Transfer-Encoding in HTTP/1.0",
     b"POST / HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("HTTP/2.0 request line", b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 400),
    ("HTTP/3.0 request line", b"GET / HTTP/3.0\r\nHost: t\r\n\r\n", 400),
    ("HTTP/1.2 request line", b"GET / HTTP/1.2\r\nHost: t\r\n\r\n", 400),
    ("HTTP/0.9 request line", b"GET /\r\n\r\n", 400),
    ("HTTP/12.1 request line", b"GET / HTTP/12.1\r\nHost: t\r\n\r\n", 400),
]


@case
def malformed_requests_4xx_and_close():
    before = len(calls())
    bad = []
    for name, data, status in MALFORMED:
        try:
            expect_status(data, status)
        except Fail as e:
            bad.append("%s: %s" % (name, e))
        except OSError as e:
            bad.append("%s: %r" % (name, e))
    check(not bad, "; ".join(bad))
    # none of them reached the app (the /calls request itself is the only new call)
    check(len(calls()) == before + 1, "a malformed request reached the app")
    healthy()


@case
def bad_chunk_sizes_400():
    bodies = [
        ("non-hex size", b"zz\r\nhello\r\n0\r\n\r\n"),
        ("size overflows u64", b"fffffffffffffffffffff\r\nx\r\n0\r\n\r\n"),
        ("negative size", b"-5\r\nhello\r\n0\r\n\r\n"),
        ("chunk longer than its size", b"2\r\nhello\r\n0\r\n\r\n"),
        ("missing CRLF after data", b"5\r\nhelloXX0\r\n\r\n"),
        ("bare LF in size line", b"5\nhello\r\n0\r\n\r\n"),
        ("size with space inside", b"1 0\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n"),
    ]
    bad = []
    for name, body in bodies:
        data = b"POST /echo?tag=badchunk HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body
        try:
            expect_status(data, 400)
        except Fail as e:
            bad.append("%s: %s" % (name, e))
    check(not bad, "; ".join(bad))
    check("badchunk" not in calls(), "the app was called for a broken chunked body")
    # a valid chunked body with extensions and trailers passes
    r = exchange(main_port(), b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n")
    check(r.status == 200 and r.field("body") == "hello world", "valid chunked body: %r" % r)
    healthy()


@case
def smuggling_cl_and_te():
    # Content-Length and Transfer-Encoding together: RFC 9112 6.1 lets a server reject it
    # or read it as chunked and close; either way the smuggled request must never run.
    for order in ("cl-first", "te-first"):
        cl, te = b"Content-Length: 4\r\n", b"Transfer-Encoding: chunked\r\n"
        hs = cl + te if order == "cl-first" else te + cl
        data = (b"POST /echo?tag=smuggle-outer HTTP/1.1\r\nHost: t\r\n" + hs + b"\r\n0\r\n\r\n"
                b"GET /echo?tag=smuggled HTTP/1.1\r\nHost: t\r\n\r\n")
        s = connect(main_port())
        try:
            s.sendall(data)
            rd = Reader(s)
            r = rd.response()
            check(r is not None, "%s: no response" % order)
            check(r.status in (200, 400), "%s: status %d" % (order, r.status))
            if r.status == 200:
                check(r.field("bodylen") == "0", "%s: body read by Content-Length, not chunked: %r" % (order, r))
                check((r.h("connection") or "").lower() == "close", "%s: no Connection: close" % order)
            check(rd.closed_after(3), "%s: connection kept open" % order)
            note("CL+TE (%s): %d, Connection: %s, then closed" % (order, r.status, r.h("connection")))
            check(rd.buf == b"", "%s: a second response was sent: %r" % (order, rd.buf[:100]))
        finally:
            s.close()
    time.sleep(0.3)
    check("smuggled" not in calls(), "the smuggled request reached the app")
    # a second Transfer-Encoding header with a non-chunked coding last
    expect_status(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                  b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400)
    healthy()


@case
def bare_lf_line_endings():
    # RFC 9112 2.2: a recipient MAY accept a bare LF as a line terminator. Whatever is
    # done, the headers must be split the same way as with CRLF (no header smuggling).
    r = exchange(main_port(), b"GET /echo?tag=barelf HTTP/1.1\nHost: lf.example\nConnection: close\n\n")
    check(r is not None and r.status in (200, 400), "bare LF: %r" % r)
    note("bare-LF request: %d" % r.status)
    if r.status == 200:
        check(r.field("host") == "lf.example", "bare LF: Host parsed as %r" % r.field("host"))
    healthy()


@case
def h2_preface_then_garbage():
    # An HTTP/2 prior-knowledge client (h2c, served since rookdOptions(http2 = TRUE)) whose
    # preface and empty SETTINGS are followed by garbage: the server answers with its own
    # SETTINGS frame, then ends the connection (GOAWAY or close) promptly; others are served.
    s = connect(main_port())
    try:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        s.sendall(b"\xff" * 64)
        rd = Reader(s)
        deadline = time.time() + 5
        closed = False
        while not closed and time.time() < deadline:
            closed = rd.closed_after(max(0.1, deadline - time.time()))
        note("h2 preface + garbage: %s, %r" % ("closed" if closed else "still open", rd.buf[:12]))
        check(rd.buf[3:4] == b"\x04", "h2 preface: the first frame is not SETTINGS: %r" % rd.buf[:12])
        check(closed, "h2 preface + garbage: the connection was not ended")
    finally:
        s.close()
    healthy()


@case
def absolute_form_target():
    r = get(main_port(), "http://other.example:8080/abs/path?x=1&tag=abs")
    check(r.status == 200, "absolute form: %r" % r)
    check(r.field("path") == "/abs/path", "PATH_INFO %r, expected /abs/path" % r.field("path"))
    check(r.field("query") == "x=1&tag=abs", "QUERY_STRING %r" % r.field("query"))
    r = get(main_port(), "http://other.example")
    check(r.status == 200 or r.status == 404, "absolute form without a path: %r" % r)
    r2 = get(main_port(), "/calls?tag=c")
    check("GET /" in r2.text().split("\n"), "absolute form without a path: PATH_INFO was not /: %r" % r2.text()[-200:])
    healthy()


@case
def options_star():
    r = get(main_port(), "*", method="OPTIONS")
    check(r.status == 200, "OPTIONS *: %r" % r)
    check(r.field("method") == "OPTIONS" and r.field("path") == "*", "OPTIONS * reached the app as %r" % r.text())
    healthy()


@case
def unknown_methods_reach_app():
    for m in ("PURGE", "PROPFIND", "X-CUSTOM-VERB"):
        r = get(main_port(), "/echo?tag=m-" + m, method=m)
        check(r.status == 200 and r.field("method") == m, "%s: %r" % (m, r))
    # a body on an unknown method is read too
    r = get(main_port(), "/echo", method="PURGE", body=b"purge-body")
    check(r.field("bodylen") == "10", "PURGE body: %r" % r)
    # CONNECT (authority form): an origin server is no proxy: 501 and close, app not called
    s = connect(main_port(), timeout=5)
    try:
        s.sendall(b"CONNECT other.example:443 HTTP/1.1\r\nHost: other.example:443\r\n\r\n")
        rd = Reader(s)
        try:
            r = rd.response()
        except Fail:
            r = None
        check(r is not None and r.status == 501, "CONNECT: expected 501, got %r" % r)
        check(rd.closed_after(3), "CONNECT: connection not closed after the 501")
    finally:
        s.close()
    healthy()


@case
def disconnect_mid_request_and_mid_response():
    port = main_port()
    socks = []
    try:
        # 10 clients leave half-way through their head, 10 half-way through their body
        for i in range(10):
            s = connect(port)
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\nX-Half")
            socks.append(s)
        for i in range(10):
            s = connect(port)
            s.sendall(b"POST /echo?tag=halfbody HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nabc")
            socks.append(s)
        # 5 clients take a big response and leave after 64 KiB; 3 with RST (SO_LINGER 0)
        for i in range(5):
            s = connect(port)
            s.sendall(b"GET /big?mb=16&tag=bigleave HTTP/1.1\r\nHost: t\r\n\r\n")
            n = 0
            while n < 65536:
                d = s.recv(65536)
                if not d:
                    break
                n += len(d)
            if i < 3:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        # meanwhile others are served normally (the half-body clients may hold all of
        # main's 4 queue slots until body_timeout: then 503 + Retry-After, and served after)
        for i in range(5):
            healthy_when_not_busy()
        for s in socks[:10]:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        for s in socks:
            s.close()
    check("halfbody" not in calls(), "the app was called for a body that never completed")
    # pipelined requests on one connection, then an abrupt close mid-second-response
    s = connect(port)
    try:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\nGET /big?mb=4 HTTP/1.1\r\nHost: t\r\n\r\n")
        rd = Reader(s)
        r = rd.response()
        check(r.status == 200, "pipelined first: %r" % r)
        s.recv(1000)
    finally:
        s.close()
    healthy()


@case
def app_not_called_for_client_that_left_while_queued():
    port = main_port()
    t = threading.Thread(target=lambda: get(port, "/slow?s=1.5&tag=blocker", timeout=10))
    t.start()
    time.sleep(0.3)  # R is now busy in /slow
    # max_queued_requests = 4 counts requests until R drops them, including those whose
    # client has gone: blocker + left0 + leftpost + stayed = 4 fit.
    left = []
    for i in range(1):
        s = connect(port)
        s.sendall(b"GET /echo?tag=left%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
        left.append(s)
    time.sleep(0.3)
    for s in left:
        s.close()
    # a graceful close (FIN) and a reset (RST) of a POST whose body was complete
    s = connect(port)
    s.sendall(b"POST /echo?tag=leftpost HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
    time.sleep(0.2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    stay = get(port, "/echo?tag=stayed", timeout=10)  # queued too; waits its turn
    t.join(10)
    check(stay.status == 200, "the client that stayed: %r" % stay)
    c = calls()
    check("blocker" in c and "stayed" in c, "calls: %r" % c[-10:])
    gone = [x for x in c if x.startswith("left")]
    check(not gone, "the app was called for clients that had left: %r" % gone)
    healthy()


def rss_during(port, path, read_first, secs):
    """Request `path`, read `read_first` bytes, stop reading for `secs`; RSS samples."""
    pid = INFO["pid"]
    s = connect(port, timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode())
        n = 0
        while n < read_first:
            d = s.recv(65536)
            check(d, "closed early")
            n += len(d)
        samples = []
        for _ in range(int(secs / 0.25)):
            time.sleep(0.25)
            samples.append(proc(pid, "rss"))
        return samples
    finally:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


@case
def stalled_reader_memory_bounded():
    # a streamed body (256 MiB, generated per chunk) and a 64 MiB file body: a client
    # that stops reading must not make the server buffer the rest
    pid = INFO["pid"]
    healthy()
    base = proc(pid, "rss")
    res = {}
    for path in ("/stream?mb=256", "/file"):
        samples = rss_during(main_port(), path, 1 << 20, 3.0)
        growth = max(samples) - base
        res[path] = growth
        check(growth < 24 << 20, "%s: RSS grew by %.1f MB with a stalled reader" % (path, growth / 2**20))
        check(samples[-1] - samples[len(samples) // 2] < 4 << 20,
              "%s: RSS still growing while stalled: %r" % (path, samples))
    # four stalled readers at once
    threads = [threading.Thread(target=rss_during, args=(main_port(), "/stream?mb=256", 1 << 20, 2.0))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    growth = proc(pid, "rss") - base
    check(growth < 48 << 20, "4 stalled readers: RSS grew by %.1f MB" % (growth / 2**20))
    healthy()
    print("    stalled readers: RSS growth %s" % {k: "%.1f MB" % (v / 2**20) for k, v in res.items()})


@case
def busy_r_queue_503_retry_after():
    port = main_port()
    results = []
    lock = threading.Lock()

    def one(tag, path):
        try:
            r = get(port, path + ("&" if "?" in path else "?") + "tag=" + tag, timeout=15)
            with lock:
                results.append((tag, r.status, r.h("retry-after")))
        except Exception as e:  # noqa: BLE001
            with lock:
                results.append((tag, "error %r" % e, None))

    blocker = threading.Thread(target=one, args=("q-blocker", "/slow?s=2"))
    blocker.start()
    time.sleep(0.4)
    # max_queued_requests = 4: the blocker holds one slot, so 3 of these 8 wait, 5 get 503
    ts = []
    for i in range(8):
        t = threading.Thread(target=one, args=("q%d" % i, "/echo"))
        t.start()
        ts.append(t)
        time.sleep(0.05)
    for t in ts + [blocker]:
        t.join(20)
    st = sorted(str(s) for _, s, _ in results)
    n503 = sum(1 for _, s, _ in results if s == 503)
    n200 = sum(1 for _, s, _ in results if s == 200)
    check(n503 == 5 and n200 == 4, "statuses %r" % st)
    check(all(ra == "1" for _, s, ra in results if s == 503), "503 without Retry-After: 1: %r" % results)
    served = [x for x in calls() if re.match(r"q\d", x)]
    check(len(served) == 3, "the app served %r" % served)
    healthy()


@case
def max_connections_wait_in_backlog():
    port = INFO["narrow"]  # max_connections = 2
    pid = INFO["pid"]
    held = []
    try:
        for i in range(2):
            s = connect(port)
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
            rd = Reader(s)
            check(rd.response().status == 200, "held connection %d" % i)
            held.append((s, rd))
        # the third connects (kernel backlog) but is not served while two are open
        s3 = connect(port, timeout=10)
        s3.sendall(b"GET /echo?tag=third HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        rd3 = Reader(s3)
        s3.settimeout(1.0)
        try:
            d = s3.recv(100)
            raise Fail("third connection served while 2 were open: %r" % d)
        except socket.timeout:
            pass
        # 200 more waiting connections cost the R process (nearly) nothing
        rss0, fds0 = proc(pid, "rss"), proc(pid, "fds")
        extra = [connect(port) for _ in range(200)]
        time.sleep(0.5)
        rss1, fds1 = proc(pid, "rss"), proc(pid, "fds")
        check(fds1 - fds0 <= 2, "waiting connections took fds: %d -> %d" % (fds0, fds1))
        check(rss1 - rss0 < 8 << 20, "waiting connections took %.1f MB" % ((rss1 - rss0) / 2**20))
        for e in extra:
            e.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            e.close()
        # freeing one slot lets the third in
        held[0][0].close()
        s3.settimeout(10)
        r = rd3.response()
        check(r is not None and r.status == 200, "third after a slot freed: %r" % r)
        s3.close()
    finally:
        for s, _ in held:
            s.close()
    time.sleep(0.3)
    healthy(port)
    healthy()


def short_connections(port, n, nthreads=4):
    def run(k):
        for i in range(k):
            s = connect(port)
            try:
                s.sendall(b"GET /echo?tag=short HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                while s.recv(65536):
                    pass
            finally:
                s.close()
    ts = [threading.Thread(target=run, args=(n // nthreads,)) for _ in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)


@case
def short_connections_leave_nothing_behind():
    # One request per connection (Connection: close), 16,000 times: the server must not
    # keep anything per finished connection (it once kept ~1.1 KB each).
    port, pid = INFO["selfish"], INFO["pid"]
    short_connections(port, 4000)  # warm-up
    time.sleep(0.5)
    rss0, fds0 = proc(pid, "rss"), proc(pid, "fds")
    t0 = time.time()
    short_connections(port, 16000)
    took = time.time() - t0
    time.sleep(0.5)
    rss1, fds1 = proc(pid, "rss"), proc(pid, "fds")
    note("16,000 connections in %.1f s: RSS %+.1f MB, fds %d -> %d" % (took, (rss1 - rss0) / 2**20, fds0, fds1))
    check(fds1 <= fds0, "fds grew: %d -> %d" % (fds0, fds1))
    check(rss1 - rss0 < 6 << 20, "RSS grew by %.1f MB over 16,000 short connections" % ((rss1 - rss0) / 2**20))
    healthy()


@case
def failing_and_garbage_apps_survived():
    for i in range(20):
        r = get(main_port(), "/error")
        check(r.status == 500, "/error: %r" % r)
        check(b"on purpose" not in r.body, "the R error message leaked to the client")
    bad = []
    for kind in range(1, 20):
        try:
            r = get(main_port(), "/garbage?kind=%d" % kind)
            ok = r.status == 500
            if kind in (16, 17):  # NA_character_ body ("NA"), c(file=, file=): either is fine
                ok = r.status in (200, 500)
            if kind in (4, 18, 19):  # a broken generator: 200 then a cut-short body, or 500
                ok = r.status in (200, 500)
            if not ok:
                bad.append("kind %d: %d %r" % (kind, r.status, r.body[:80]))
        except Fail as e:
            if kind in (4, 18, 19) and "closed" in str(e):
                continue  # the body was cut short so the client can tell: fine
            bad.append("kind %d: %s" % (kind, e))
    check(not bad, "; ".join(bad))
    healthy()


@case
def app_output_cannot_inject_headers():
    kinds = ["value-crlf", "value-lf", "value-cr", "value-nul", "name-crlf", "name-colon",
             "name-space", "name-empty", "cookie-crlf", "ctype-crlf", "location-crlf",
             "content-length", "transfer-encoding"]
    bad = []
    for k in kinds:
        s = connect(main_port())
        try:
            s.sendall(("GET /inject?kind=%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % k).encode())
            raw = b""
            for _ in range(1000):
                d = s.recv(65536)
                if not d:
                    break
                raw += d
        finally:
            s.close()
        head = raw.split(b"\r\n\r\n", 1)[0]
        lines = head.split(b"\r\n")
        if not re.match(rb"HTTP/1\.1 (200|500) ", lines[0]):
            bad.append("%s: status line %r" % (k, lines[0]))
        if any(ln.lower().startswith(b"x-injected") for ln in lines) or b"<html>injected" in raw:
            bad.append("%s: injected: %r" % (k, head))
        if any(b"\r" in ln or b"\n" in ln or b"\x00" in ln for ln in lines):
            bad.append("%s: control bytes in head %r" % (k, head))
        if k in ("content-length", "transfer-encoding"):
            r = exchange(main_port(), ("GET /inject?kind=%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                                       % k).encode())
            if r.status == 200 and r.body != b"safe body":
                bad.append("%s: framing taken from the app: %r" % (k, r))
    check(not bad, "; ".join(bad))
    healthy()


@case
def stop_servers_from_inside_a_request():
    victim = INFO["victim"]
    r = get(victim, "/x")
    check(r.status == 200 and r.text() == "alive /x\n", "victim: %r" % r)
    r = get(main_port(), "/stopother")
    check(r.status == 200 and "victim running: FALSE" in r.text(), "/stopother: %r" % r)
    try:
        connect(victim, timeout=2).close()
        raise Fail("the stopped victim server still accepts connections")
    except ConnectionRefusedError:
        pass
    selfish = INFO["selfish"]
    r = get(selfish, "/stopself")
    check(r.status == 200 and r.text() == "stopped myself\n", "/stopself: %r" % r)
    time.sleep(0.2)
    try:
        connect(selfish, timeout=2).close()
        raise Fail("the self-stopped server still accepts connections")
    except ConnectionRefusedError:
        pass
    healthy()


def ws_connect(port, origin, extra=b""):
    s = connect(port)
    key = base64.b64encode(os.urandom(16))
    req = (b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n")
    if origin is not None:
        req += b"Origin: " + origin + b"\r\n"
    s.sendall(req + extra + b"\r\n")
    rd = Reader(s)
    r = rd.response(head_request=True)
    return s, rd, r, key


def ws_frame(opcode, payload, mask=True, fin=True):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return hdr + payload
    m = os.urandom(4)
    return hdr + m + bytes(c ^ m[i % 4] for i, c in enumerate(payload))


def ws_read(rd):
    head = rd._take(2)
    op, ln = head[0] & 0x0F, head[1] & 0x7F
    if ln == 126:
        ln = struct.unpack("!H", rd._take(2))[0]
    elif ln == 127:
        ln = struct.unpack("!Q", rd._take(8))[0]
    return op, rd._take(ln)


@case
def websocket_origin_restriction():
    port = main_port()
    for origin in (b"http://evil.example", b"null", b"http://good.example.evil.example", None):
        s, rd, r, _ = ws_connect(port, origin)
        s.close()
        check(r is not None and r.status == 403, "Origin %r: expected 403, got %r" % (origin, r))
    s, rd, r, key = ws_connect(port, b"http://good.example")
    try:
        check(r.status == 101, "allowed Origin: %r" % r)
        acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()
        check(r.h("sec-websocket-accept") == acc, "bad Sec-WebSocket-Accept")
        s.sendall(ws_frame(1, b"hello"))
        check(ws_read(rd) == (1, b"hello"), "echo")
        # an unmasked client frame is a protocol error: close 1002
        s.sendall(ws_frame(1, b"nomask", mask=False))
        op, payload = ws_read(rd)
        check(op == 8 and struct.unpack("!H", payload[:2])[0] == 1002, "unmasked: %r %r" % (op, payload))
    finally:
        s.close()
    # over ws_max_message_bytes (64 KiB): close 1009; invalid UTF-8 text: 1007
    for payload, op, code in ((b"x" * 70000, 2, 1009), (b"\xff\xfe", 1, 1007)):
        s, rd, r, _ = ws_connect(port, b"http://good.example")
        try:
            check(r.status == 101, "ws: %r" % r)
            s.sendall(ws_frame(op, payload))
            got_op, got = ws_read(rd)
            check(got_op == 8 and struct.unpack("!H", got[:2])[0] == code, "expected close %d, got %r %r"
                  % (code, got_op, got[:20]))
        finally:
            s.close()
    healthy()


@case
def start_stop_1000_servers_leaves_nothing():
    out = subprocess.run(["Rscript", os.path.join(HERE, "churn.R"), "1000", os.environ.get("ROOKD_LIB", "")], capture_output=True,
                         text=True, timeout=120)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    check(out.returncode == 0 and line, "churn.R failed: %s %s" % (out.stdout[-500:], out.stderr[-1500:]))
    d = json.loads(line[-1])
    print("    churn: %s" % line[-1])
    check(d["served"] == d["probes"], "churn: only %d of %d probe requests answered" % (d["served"], d["probes"]))
    check(d["threads_after"] <= d["threads_before"], "threads %d -> %d" % (d["threads_before"], d["threads_after"]))
    check(d["fds_after"] <= d["fds_before"], "fds %d -> %d" % (d["fds_before"], d["fds_after"]))
    check(d["running"] == 0, "servers still running: %d" % d["running"])
    check(d["rss_after"] - d["rss_before"] < 4 << 20, "RSS grew by %.1f MB"
          % ((d["rss_after"] - d["rss_before"]) / 2**20))


@case
def fork_does_not_break_parent_and_child_does_not_serve():
    port = main_port()
    ppid = get(port, "/pid").text()
    check(ppid == str(INFO["pid"]), "pid %r" % ppid)
    r = get(port, "/fork")
    check(r.status == 200, "/fork: %r" % r)
    child = r.text().strip()
    # while the child runs service() for 1.5 s, every request is served by the parent
    pids = set()
    t_end = time.time() + 1.5
    n = 0
    while time.time() < t_end and n < 200:
        rr = get(port, "/pid")
        check(rr.status == 200, "during fork: %r" % rr)
        pids.add(rr.text())
        n += 1
    check(pids == {ppid}, "answers came from %r (parent %s, child %s)" % (pids, ppid, child))
    r = get(port, "/forkcollect", timeout=15)
    check(r.status == 200 and ("pid=%s" % child) in r.text() and "served=0" in r.text(),
          "child: %r" % r.text())
    r = get(port, "/mclapply", timeout=15)
    check(r.status == 200 and ppid not in r.text().split(","), "/mclapply: %r" % r)
    for _ in range(20):
        healthy()
    check(get(port, "/pid").text() == ppid, "pid changed")


# --- runner ----------------------------------------------------------------------------------

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
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
