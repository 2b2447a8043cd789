"""Hostile clients for the test-net-*.R files (HTTP/2 with python3-h2, raw sockets).

usage: net_client.py MODE PORT [ARGS...]; prints one JSON object on stdout (its last line).
Every wait is bounded.

modes:
  cookies PORT PATH [PREFIX_HEX]   one h2c GET with three `cookie` fields; the body. With
                                   PREFIX_HEX, those bytes (a PROXY header) go first, in
                                   the same write as the preface and SETTINGS.
  h2stall PORT N PATH OTHER WAIT   N streams asking PATH on a connection whose flow-control
                                   window is 0 (never a WINDOW_UPDATE); meanwhile a second
                                   connection asks OTHER; how long until the server closed.
  h1stall PORT PATH WAIT           a raw HTTP/1.1 GET of PATH that is never read (a small
                                   receive buffer); after it ends (or WAIT s), reads what
                                   came and says whether the connection was cut short.
  host PORT PATH HOST...           one h2c GET with these Host header fields; status, body.
  h1slow PORT PATH BYTES_PER_S     a raw HTTP/1.1 GET of PATH read slowly but steadily (a
                                   small receive buffer); whether the whole body came.
  wsstall PORT WAIT                a WebSocket handshake, then nothing read for WAIT s.
  flood PORT KIND WAIT             h2c PING (KIND ping) or SETTINGS (settings) frames sent
                                   as fast as the server takes them, nothing read: how long
                                   until the server closed (null: not within WAIT s).
"""
import struct
import json
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

TIMEOUT = 15


def h2conn(port, window=None, prefix=b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    # Outbound headers unchecked: the hostile ones (two Host fields) are the point.
    c = h2.connection.H2Connection(config=h2.config.H2Configuration(
        client_side=True, header_encoding="utf-8", validate_outbound_headers=False))
    if window is not None:
        c.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    c.initiate_connection()
    s.sendall(prefix + c.data_to_send())
    return s, c


def headers(port, path, extra=()):
    return [(":method", "GET"), (":path", path), (":scheme", "http"),
            (":authority", "127.0.0.1:%d" % port)] + list(extra)


def get(port, path, extra=(), prefix=b""):
    """One h2 GET: (status, body)."""
    s, c = h2conn(port, prefix=prefix)
    c.send_headers(1, headers(port, path, extra), end_stream=True)
    s.sendall(c.data_to_send())
    status, body, done = None, b"", False
    deadline = time.time() + TIMEOUT
    while not done and time.time() < deadline:
        data = s.recv(65536)
        if not data:
            break
        for e in c.receive_data(data):
            if isinstance(e, h2.events.ResponseReceived):
                status = dict(e.headers).get(":status")
            elif isinstance(e, h2.events.DataReceived):
                body += e.data
                c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        s.sendall(c.data_to_send())
    s.close()
    return status, body.decode(errors="replace")


def cookies(port, path, prefix_hex=""):
    extra = [("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2"), ("cookie", "c=3; d=4")]
    status, body = get(port, path, extra, prefix=bytes.fromhex(prefix_hex))
    return {"status": status, "body": body}


def h2stall(port, n, path, other, wait):
    s, c = h2conn(port, window=0)
    for i in range(n):
        c.send_headers(1 + 2 * i, headers(port, path), end_stream=True)
    s.sendall(c.data_to_send())
    start = time.time()
    heads, data, closed, other_status = 0, 0, None, None
    s.settimeout(0.2)
    while time.time() - start < wait:
        if other_status is None and time.time() - start > 0.5:
            try:
                other_status, _ = get(port, other)
            except OSError as e:
                other_status = repr(e)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            closed = time.time() - start
            break
        if not chunk:
            closed = time.time() - start
            break
        try:
            events = c.receive_data(chunk)
        except h2.exceptions.ProtocolError:
            events = []
        for e in events:
            if isinstance(e, h2.events.ResponseReceived):
                heads += 1
            elif isinstance(e, h2.events.DataReceived):
                data += len(e.data)  # never acknowledged: the window stays shut
        # Only what h2 must say (SETTINGS ACK, PING ACK); no WINDOW_UPDATE is ever sent.
        out = c.data_to_send()
        if out:
            s.sendall(out)
    s.close()
    return {"closed_after": closed, "heads": heads, "data": data, "other": other_status}


def h1stall(port, path, wait):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(TIMEOUT)
    s.connect(("127.0.0.1", port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    time.sleep(wait)  # read nothing meanwhile
    got, ended = 0, "timeout"
    head = b""
    length = None
    s.settimeout(5)
    while True:
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            ended = "timeout"
            break
        except OSError:
            ended = "reset"
            break
        if not chunk:
            ended = "eof"
            break
        if length is None:
            head += chunk
            if b"\r\n\r\n" in head:
                h, _, rest = head.partition(b"\r\n\r\n")
                for line in h.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                got += len(rest)
        else:
            got += len(chunk)
        if length is not None and got >= length:
            ended = "complete"
            break
    s.close()
    return {"length": length, "got": got, "ended": ended}


def flood(port, kind, wait):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    def frame(t, payload):
        return struct.pack(">I", len(payload))[1:] + bytes([t, 0]) + struct.pack(">I", 0) + payload

    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, b""))
    one = frame(6, b"12345678") if kind == "ping" else frame(4, b"\x00\x03\x00\x00\x00\x64")
    batch = one * 1000
    start, sent, closed = time.time(), 0, None
    s.settimeout(0.5)
    while time.time() - start < wait:
        try:
            s.send(batch)
            sent += 1000
        except socket.timeout:
            continue
        except OSError:
            closed = time.time() - start
            break
    s.close()
    return {"closed_after": closed, "frames": sent}


def h1slow(port, path, rate):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.settimeout(TIMEOUT)
    s.connect(("127.0.0.1", port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    step = 0.05
    per = max(1, int(rate * step))
    head, length, got, ended = b"", None, 0, "timeout"
    start = time.time()
    while time.time() - start < 60:
        try:
            chunk = s.recv(per)
        except OSError:
            ended = "reset"
            break
        if not chunk:
            ended = "eof"
            break
        if length is None:
            head += chunk
            if b"\r\n\r\n" in head:
                h, _, rest = head.partition(b"\r\n\r\n")
                for line in h.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                got += len(rest)
        else:
            got += len(chunk)
        if length is not None and got >= length:
            ended = "complete"
            break
        time.sleep(step)
    s.close()
    return {"length": length, "got": got, "ended": ended, "secs": time.time() - start}


def wsstall(port, wait):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(TIMEOUT)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    time.sleep(wait)
    s.close()
    return {"slept": wait}


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    a = sys.argv[3:]
    if mode == "cookies":
        out = cookies(port, a[0], a[1] if len(a) > 1 else "")
    elif mode == "h2stall":
        out = h2stall(port, int(a[0]), a[1], a[2], float(a[3]))
    elif mode == "host":
        status, body = get(port, a[0], [("host", h) for h in a[1:]])
        out = {"status": status, "body": body}
    elif mode == "h1slow":
        out = h1slow(port, a[0], float(a[1]))
    elif mode == "wsstall":
        out = wsstall(port, float(a[0]))
    elif mode == "flood":
        out = flood(port, a[0], float(a[1]))
    elif mode == "h1stall":
        out = h1stall(port, a[0], float(a[1]))
    else:
        raise SystemExit("unknown mode " + mode)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
