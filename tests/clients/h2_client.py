"""HTTP/2 (h2c, prior knowledge) test client for test-http2.R, built on python3-h2.

usage: h2_client.py MODE PORT [ARG]; prints one JSON object on stdout (and, in mode
goaway, a line "ready" first). Every wait is bounded by socket timeouts.
"""
import json
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack

TIMEOUT = 15


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    return s, c


def req_headers(port, path, method="GET", extra=()):
    return [(":method", method), (":path", path), (":scheme", "http"),
            (":authority", "127.0.0.1:%d" % port)] + list(extra)


def pump(s, c, on_event, until):
    """Read frames and hand events to on_event until until() or the connection ends.
    Returns 'done', 'closed' or 'timeout'. Frames are fed to h2 one at a time: h2 raises
    on a frame after GOAWAY (the PING of a graceful shutdown), which would lose the
    GOAWAY's own event if they came in one read."""
    deadline = time.time() + TIMEOUT
    pending = b""
    while not until():
        if time.time() > deadline:
            return "timeout"
        try:
            data = s.recv(65536)
        except socket.timeout:
            return "timeout"
        except (ConnectionResetError, BrokenPipeError):
            return "closed"
        if not data:
            return "closed"
        pending += data
        while len(pending) >= 9:
            n = 9 + int.from_bytes(pending[:3], "big")
            if len(pending) < n:
                break
            one, pending = pending[:n], pending[n:]
            try:
                events = c.receive_data(one)
            except h2.exceptions.ProtocolError:
                # h2 takes nothing after GOAWAY; the streams still open are answered
                # all the same: read their frames here.
                events = raw_events(c, one)
            for e in events:
                on_event(e)
        out = c.data_to_send()
        if out:
            try:
                s.sendall(out)
            except (ConnectionResetError, BrokenPipeError):
                return "closed"
    return "done"


def raw_events(c, one):
    kind, flags, sid = one[3], one[4], int.from_bytes(one[5:9], "big") & 0x7FFFFFFF
    payload = one[9:]
    events = []
    if kind == 1 and not flags & 0x28:  # HEADERS without padding or priority
        e = h2.events.ResponseReceived()
        e.stream_id = sid
        e.headers = [(k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
                     for k, v in c.decoder.decode(payload)]
        events.append(e)
    elif kind == 0 and not flags & 0x8:
        e = h2.events.DataReceived()
        e.stream_id, e.data, e.flow_controlled_length = sid, payload, 0
        events.append(e)
    if kind in (0, 1) and flags & 0x1:
        e = h2.events.StreamEnded()
        e.stream_id = sid
        events.append(e)
    return events


class Responses:
    def __init__(self, c):
        self.c = c
        self.status = {}
        self.body = {}
        self.done = []
        self.reset = []
        self.goaway = None

    def __call__(self, e):
        if isinstance(e, h2.events.ResponseReceived):
            self.status[e.stream_id] = dict(e.headers).get(":status")
        elif isinstance(e, h2.events.DataReceived):
            self.body[e.stream_id] = self.body.get(e.stream_id, b"") + e.data
            if e.flow_controlled_length:
                self.c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        elif isinstance(e, h2.events.StreamEnded):
            self.done.append(e.stream_id)
        elif isinstance(e, h2.events.StreamReset):
            self.reset.append(e.stream_id)
        elif isinstance(e, h2.events.ConnectionTerminated) and self.goaway is None:
            self.goaway = {"code": int(e.error_code), "last_stream": e.last_stream_id}


def get(port, path="/"):
    """One GET on a fresh connection: its status, or None."""
    try:
        s, c = connect(port)
        c.send_headers(1, req_headers(port, path), end_stream=True)
        s.sendall(c.data_to_send())
        r = Responses(c)
        pump(s, c, r, lambda: 1 in r.done or 1 in r.reset)
        s.close()
        return r.status.get(1)
    except OSError:
        return None


def concurrent(port, n):
    """Stream 1 asks for /slow, then n-1 streams for /fast/<i>: order of completion."""
    s, c = connect(port)
    r = Responses(c)
    ids = []
    for i in range(n):
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, req_headers(port, "/slow" if i == 0 else "/fast/%d" % i), end_stream=True)
        ids.append(sid)
    s.sendall(c.data_to_send())
    end = pump(s, c, r, lambda: len(r.done) + len(r.reset) >= n)
    s.close()
    statuses = [r.status.get(i) for i in ids]
    return {"end": end, "n": n, "ok": sum(1 for x in statuses if x == "200"),
            "slow_position": r.done.index(ids[0]) if ids[0] in r.done else None,
            "server_max_streams": c.remote_settings.max_concurrent_streams}


def rapid_reset(port, rounds):
    """HEADERS then RST_STREAM, over and over (CVE-2023-44487)."""
    s, c = connect(port)
    r = Responses(c)
    sent = 0
    end = "open"
    try:
        for _ in range(rounds):
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, req_headers(port, "/fast/r"), end_stream=True)
            c.reset_stream(sid)
            s.sendall(c.data_to_send())
            sent += 1
    except (OSError, h2.exceptions.ProtocolError):
        end = "closed while sending"
    if end == "open":
        end = pump(s, c, r, lambda: r.goaway is not None)
    s.close()
    return {"sent": sent, "end": end, "goaway": r.goaway, "other_connection": get(port, "/fast/after")}


def frame(kind, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def continuation_flood(port, total):
    """HEADERS without END_HEADERS, then CONTINUATION frames of 16 KiB header fields, up
    to `total` bytes: the server must stop it long before."""
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b""))
    enc = hpack.Encoder()
    first = enc.encode(req_headers(port, "/fast/c"))
    s.sendall(frame(1, 0x1, 1, first))  # HEADERS, END_STREAM, no END_HEADERS
    sent = 0
    i = 0
    end = "all sent"
    try:
        while sent < total:
            block = enc.encode([("x-flood-%d" % i, "a" * 16000)])
            s.sendall(frame(9, 0, 1, block))
            sent += len(block)
            i += 1
    except OSError:
        end = "closed while sending"
    got = b""
    s.settimeout(5)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except OSError:
        pass
    s.close()
    # A GOAWAY frame (type 7) from the server?
    goaway = None
    pos = 0
    while pos + 9 <= len(got):
        ln = int.from_bytes(got[pos:pos + 3], "big")
        if got[pos + 3] == 7 and pos + 9 + 8 <= len(got):
            goaway = int.from_bytes(got[pos + 13:pos + 17], "big")
        pos += 9 + ln
    return {"sent": sent, "end": end, "goaway_code": goaway, "other_connection": get(port, "/fast/after")}


def big_headers(port, size):
    """One request whose header list is `size` bytes."""
    s, c = connect(port)
    r = Responses(c)
    c.send_headers(1, req_headers(port, "/fast/big", extra=[("x-big", "b" * size)]), end_stream=True)
    s.sendall(c.data_to_send())
    end = pump(s, c, r, lambda: 1 in r.done or 1 in r.reset or r.goaway is not None)
    s.close()
    return {"end": end, "status": r.status.get(1), "reset": 1 in r.reset, "goaway": r.goaway,
            "other_connection": get(port, "/fast/after")}


def goaway_on_stop(port):
    """Open /slow, say "ready" (the test then stops the server): the server's GOAWAY
    arrives and /slow is still answered."""
    s, c = connect(port)
    r = Responses(c)
    c.send_headers(1, req_headers(port, "/slow"), end_stream=True)
    s.sendall(c.data_to_send())
    print("ready", flush=True)
    end = pump(s, c, r, lambda: (1 in r.done or 1 in r.reset) and r.goaway is not None)
    s.close()
    return {"end": end, "status": r.status.get(1), "body": r.body.get(1, b"").decode(), "goaway": r.goaway}


def idle(port):
    """One request, then silence: the server's GOAWAY after keepalive_timeout."""
    s, c = connect(port)
    r = Responses(c)
    c.send_headers(1, req_headers(port, "/fast/i"), end_stream=True)
    s.sendall(c.data_to_send())
    t0 = time.time()
    end = pump(s, c, r, lambda: r.goaway is not None)
    after = pump(s, c, r, lambda: False) if end == "done" else end
    s.close()
    return {"status": r.status.get(1), "goaway": r.goaway, "then": after, "secs": time.time() - t0}


def body(port, n):
    """POST /echo without content-length: n bytes then the end (n > 0), or 10 bytes and
    then nothing (n == 0: a stalled body). Then a GET on the same connection."""
    s, c = connect(port)
    r = Responses(c)
    c.send_headers(1, req_headers(port, "/echo", method="POST"))
    if n > 0:
        sent = 0
        while sent < n:
            k = min(16384, n - sent, c.local_flow_control_window(1))
            if k == 0:
                break
            c.send_data(1, b"x" * k)
            sent += k
        if sent == n:
            c.end_stream(1)
    else:
        c.send_data(1, b"x" * 10)
    s.sendall(c.data_to_send())
    end = pump(s, c, r, lambda: 1 in r.done or 1 in r.reset or r.goaway is not None)
    status = r.status.get(1)
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, req_headers(port, "/fast/next"), end_stream=True)
    s.sendall(c.data_to_send())
    pump(s, c, r, lambda: sid in r.done or sid in r.reset or r.goaway is not None)
    s.close()
    return {"end": end, "status": status, "next": r.status.get(sid)}


def httpx_get(port):
    import httpx
    with httpx.Client(http1=False, http2=True, timeout=TIMEOUT) as cl:
        resp = cl.get("http://127.0.0.1:%d/env" % port)
        big = cl.post("http://127.0.0.1:%d/echo" % port, content=b"z" * 1000000)
        return {"version": resp.http_version, "status": resp.status_code, "text": resp.text,
                "post_status": big.status_code, "post_len": len(big.content)}


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    arg = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    out = {
        "concurrent": lambda: concurrent(port, arg),
        "rapid_reset": lambda: rapid_reset(port, arg),
        "continuation": lambda: continuation_flood(port, arg),
        "big_headers": lambda: big_headers(port, arg),
        "goaway": lambda: goaway_on_stop(port),
        "idle": lambda: idle(port),
        "httpx": lambda: httpx_get(port),
        "body": lambda: body(port, arg),
        "get": lambda: {"status": get(port, "/fast/g")},
    }[mode]()
    print(json.dumps(out), flush=True)


main()
