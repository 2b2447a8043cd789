# WebSocket test helpers: Python clients in a child process, R pumping meanwhile.
#
# ws_py(port, code) runs a Python 3 script (`code` defines `main()`, sync or async, that
# returns a JSON-able value) with the preamble below, while this process runs the later
# event loop so that the app can answer. The preamble offers:
#   * connect(path, headers=None, **kw): a `websockets` client connection (async with),
#     working with websockets 10 (Debian 12's python3-websockets) up to 17;
#   * resp_headers(ws): the handshake response's headers;
#   * recv_close(ws): waits for the server's close frame, returns [code, reason];
#   * Raw(path, headers=[...]): a byte-level client on a plain socket (handshake,
#     masked frames of any opcode/FIN/RSV1, fragmentation, close), for what a library
#     client will not do;
#   * pattern(n): n bytes i % 251 (R: ws_pattern(n)).
# Every wait is bounded; an uncaught Python exception becomes an R error with the
# traceback.

ws_py_preamble <- r"---(
import asyncio, base64, hashlib, json, os, socket, struct, sys, time, traceback, zlib

ARGS = json.load(open(sys.argv[1]))
PORT = int(ARGS["port"])
HOST = "127.0.0.1"
URL = "ws://%s:%d" % (HOST, PORT)

import websockets
from websockets.exceptions import ConnectionClosed
try:
    from websockets.asyncio.client import connect as _connect   # websockets >= 13
    NEW_API = True
except ImportError:
    from websockets.client import connect as _connect           # websockets 10 to 12
    NEW_API = False

def connect(path="/", headers=None, **kw):
    if headers:
        kw["additional_headers" if NEW_API else "extra_headers"] = headers
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 5)
    kw.setdefault("max_size", None)
    return _connect(URL + path, **kw)

def resp_headers(ws):
    return ws.response.headers if NEW_API else ws.response_headers

async def recv_close(ws, timeout=10):
    """Read until the server closes; return [code, reason] of its close frame."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as e:
        return [e.rcvd.code, e.rcvd.reason] if e.rcvd is not None else None

def pattern(n):
    block = bytes(range(251))
    return (block * (n // 251 + 1))[:n]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

class Raw:
    """A byte-level WebSocket client (RFC 6455) on a blocking socket."""
    def __init__(self, path="/", headers=(), timeout=10):
        self.sock = socket.create_connection((HOST, PORT), timeout=timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16))
        req = (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + ("%s:%d" % (HOST, PORT)).encode() +
               b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
               b"\r\nSec-WebSocket-Version: 13\r\n")
        for h in headers:
            req += h.encode() + b"\r\n"
        self.sock.sendall(req + b"\r\n")
        head = self._until(b"\r\n\r\n").decode("latin1").split("\r\n")
        self.status = int(head[0].split()[1])
        self.headers = {}
        for line in head[1:]:
            if line:
                k, v = line.split(":", 1)
                self.headers[k.strip().lower()] = v.strip()
        want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        self.accept_ok = self.headers.get("sec-websocket-accept") == want
        self.body = b""
        if self.status != 101:
            n = int(self.headers.get("content-length", "0"))
            self.body = self._exactly(n)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the TCP connection")
        self.buf += chunk

    def _until(self, sep):
        while sep not in self.buf:
            self._fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, opcode, payload=b"", fin=True, rsv1=False):
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", b0, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", b0, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def read_frame(self):
        """(fin, rsv1, opcode, payload) of the next frame from the server."""
        b0, b1 = self._exactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._exactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._exactly(8))[0]
        if b1 & 0x80:
            raise ValueError("the server masked a frame")
        return bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F, self._exactly(n)

    def recv_message(self):
        """Next data message as (opcode, payload, rsv1); answers pings; a close frame
        comes back as (8, payload, False)."""
        parts, first = [], None
        while True:
            fin, rsv1, op, data = self.read_frame()
            if op == 9:
                self.send_frame(10, data)
                continue
            if op == 10:
                continue
            if op == 8:
                return 8, data, False
            if first is None:
                first = (op, rsv1)
            parts.append(data)
            if fin:
                return first[0], b"".join(parts), first[1]

    def close(self, code=1000, reason=""):
        """Send a close frame and wait for the server's; returns [code, reason]."""
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode()
        self.send_frame(8, payload)
        while True:
            op, data, _ = self.recv_message()
            if op == 8:
                self.sock.close()
                if len(data) >= 2:
                    return [struct.unpack("!H", data[:2])[0], data[2:].decode()]
                return [None, ""]
)---"

ws_py_runner <- r"---(

def _run():
    out = {}
    try:
        r = main()
        if asyncio.iscoroutine(r):
            r = asyncio.run(r)
        out["result"] = r
    except BaseException:
        out["error"] = traceback.format_exc()
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)

_run()
)---"

# A Python 3 that can import websockets: $ROOKD_PYTHON, else python3 on the PATH, else
# /usr/bin/python3 (R's LD_LIBRARY_PATH can break a pyenv python3; Debian's is what CI
# has, with python3-websockets). NA if there is none.
ws_py_probe <- paste("import asyncio, json, socket, ssl, zlib, websockets, websockets.client;",
                     "from websockets.exceptions import ConnectionClosed")
ws_python <- local({
  found <- NULL
  function() {
    if (is.null(found)) {
      candidates <- unique(c(Sys.getenv("ROOKD_PYTHON"), Sys.which("python3"), "/usr/bin/python3"))
      candidates <- candidates[nzchar(candidates) & file.exists(candidates)]
      ok <- vapply(candidates, function(py) {
        identical(suppressWarnings(system2(py, c("-c", shQuote(ws_py_probe)),
                                           stdout = FALSE, stderr = FALSE)), 0L)
      }, TRUE)
      found <<- if (any(ok)) candidates[ok][[1]] else NA_character_
    }
    found
  }
})

skip_if_no_python_websockets <- function() {
  if (is.na(ws_python())) {
    testthat::skip("no python3 with the websockets package (Debian: python3-websockets)")
  }
}

# Run `code` (Python defining main()) against 127.0.0.1:port, pumping the event loop until
# it finishes. Returns main()'s value (parsed JSON, lists not simplified).
ws_py <- function(port, code, timeout = 30, args = list()) {
  skip_if_no_python_websockets()
  script <- tempfile("wsclient", fileext = ".py")
  spec <- tempfile("wsspec", fileext = ".json")
  out <- tempfile("wsout", fileext = ".json")
  err <- tempfile("wserr", fileext = ".txt")
  on.exit(unlink(c(script, spec, out, err)), add = TRUE)
  writeLines(c(ws_py_preamble, code, ws_py_runner), script)
  jsonlite::write_json(c(list(port = port), args), spec, auto_unbox = TRUE)
  p <- processx::process$new(ws_python(), c(script, spec, out), stdout = NULL, stderr = err,
                             cleanup = TRUE)
  deadline <- Sys.time() + timeout
  while (p$is_alive()) {
    if (Sys.time() > deadline) {
      p$kill()
      stop("ws_py: the Python client did not finish within ", timeout, " s", call. = FALSE)
    }
    later::run_now(0.005)
  }
  if (!file.exists(out)) {
    stop("ws_py: the Python client failed:\n", paste(readLines(err, warn = FALSE), collapse = "\n"),
         call. = FALSE)
  }
  res <- jsonlite::fromJSON(out, simplifyVector = FALSE)
  if (!is.null(res$error)) stop("ws_py: the Python client raised:\n", res$error, call. = FALSE)
  res$result
}

# Start a Python client without waiting (for tests that act in R meanwhile); $result()
# pumps until it finishes.
ws_py_bg <- function(port, code, timeout = 30, args = list()) {
  skip_if_no_python_websockets()
  script <- tempfile("wsclient", fileext = ".py")
  spec <- tempfile("wsspec", fileext = ".json")
  out <- tempfile("wsout", fileext = ".json")
  err <- tempfile("wserr", fileext = ".txt")
  writeLines(c(ws_py_preamble, code, ws_py_runner), script)
  jsonlite::write_json(c(list(port = port), args), spec, auto_unbox = TRUE)
  p <- processx::process$new(ws_python(), c(script, spec, out), stdout = NULL, stderr = err,
                             cleanup = TRUE)
  list(process = p, result = function() {
    on.exit(unlink(c(script, spec, out, err)), add = TRUE)
    wait_until(function() !p$is_alive(), timeout = timeout, what = "the Python client",
               step = 0.005)
    if (!file.exists(out)) {
      stop("ws_py: the Python client failed:\n", paste(readLines(err, warn = FALSE), collapse = "\n"),
           call. = FALSE)
    }
    res <- jsonlite::fromJSON(out, simplifyVector = FALSE)
    if (!is.null(res$error)) stop("ws_py: the Python client raised:\n", res$error, call. = FALSE)
    res$result
  })
}

# n bytes i %% 251, as Python's pattern(n).
ws_pattern <- function(n) rep_len(as.raw(0:250), n)

# An app recording WebSocket events in `store`; every message goes to
# on_message(ws, binary, message) (default: echo it).
ws_record_app <- function(store, on_message = function(ws, binary, message) ws$send(message),
                          on_open = NULL, on_headers = NULL) {
  store$opened <- 0L
  store$open_now <- 0L
  store$max_open <- 0L
  store$messages <- list()
  store$closes <- list()
  store$sockets <- list()
  app <- list(
    call = function(req) {
      list(status = 200L, headers = list("Content-Type" = "text/plain"),
           body = paste0("http ok ", req$PATH_INFO))
    },
    onWSOpen = function(ws) {
      store$opened <- store$opened + 1L
      store$open_now <- store$open_now + 1L
      store$max_open <- max(store$max_open, store$open_now)
      store$sockets[[length(store$sockets) + 1L]] <- ws
      if (!is.null(on_open)) on_open(ws)
      ws$onMessage(function(binary, message) {
        store$messages[[length(store$messages) + 1L]] <- list(binary = binary, message = message)
        on_message(ws, binary, message)
      })
      ws$onClose(function(code, reason) {
        store$open_now <- store$open_now - 1L
        store$closes[[length(store$closes) + 1L]] <- list(code = code, reason = reason)
      })
    }
  )
  if (!is.null(on_headers)) app$onHeaders <- on_headers
  app
}

# Run expr with R's stderr (REprintf, message()) captured; returns list(value, stderr).
with_stderr <- function(expr) {
  value <- NULL
  err <- utils::capture.output(value <- expr, type = "message")
  list(value = value, stderr = paste(err, collapse = "\n"))
}

# `x` (a value or a caught error) is not an error that escaped the event loop.
expect_no_loop_error <- function(x) {
  msg <- if (inherits(x, "error")) conditionMessage(x) else ""
  testthat::expect(!inherits(x, "error"), paste("an error escaped the event loop:", msg))
  invisible(x)
}
