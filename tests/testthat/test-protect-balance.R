# R's PROTECT stack stays balanced across every kind of Door event.
#
# Anything run on R's main thread that leaves one object on the PROTECT stack (the
# drain, a .Call into the bridge) does so for good; after ~50,000 of them R stops with
# "protect(): protection stack overflow", so a client repeating a request could bring R
# down. R reports each imbalance as it happens ("Warning: stack imbalance in '.Call', N
# then N+1"), so a child R serving many events of every kind must print none, and still
# serve afterwards.

balance_client_py <- r"---(
import base64, hashlib, http.client, json, os, socket, struct, sys, time

PORT = int(sys.argv[1]); N = int(sys.argv[2])
HOST = "127.0.0.1"
out = {}

def count(kind, ok):
    out.setdefault(kind, 0)
    if ok: out[kind] += 1

def get(conn, path, method="GET", body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    return r.status, r.read()

conn = http.client.HTTPConnection(HOST, PORT, timeout=10)
for i in range(N):
    count("sync", get(conn, "/sync") == (200, b"sync"))
    count("resolved", get(conn, "/resolved") == (200, b"resolved"))
    count("rejected", get(conn, "/rejected")[0] == 500)
    count("error", get(conn, "/error")[0] == 500)
    count("stream", get(conn, "/stream") == (200, b"abc"))
    count("stream_promise", get(conn, "/stream-promise") == (200, b"xy"))
    count("stream_error", True)
    try:
        get(conn, "/stream-error")
    except Exception:
        conn.close(); conn = http.client.HTTPConnection(HOST, PORT, timeout=10)
    count("post", get(conn, "/post", "POST", b"line1\nline2\n" * 10) == (200, b"120"))
    count("headers_refused", get(conn, "/refuse")[0] == 403)
    count("server_cycle", get(conn, "/cycle") == (200, b"cycled"))

    # Abandoned: headers pass onHeaders, the client leaves before the body.
    s = socket.create_connection((HOST, PORT), timeout=10)
    s.sendall(b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    time.sleep(0.002)
    s.close()
    count("abandoned", True)

    # A request whose client leaves while its promise is pending.
    s = socket.create_connection((HOST, PORT), timeout=10)
    s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    s.close()
    count("left_early", True)

    # WebSocket: open, one text and one binary echo, close.
    s = socket.create_connection((HOST, PORT), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    f = s.makefile("rb")
    status = f.readline()
    while f.readline() not in (b"\r\n", b""):
        pass
    def send(op, payload):
        mask = os.urandom(4)
        body = bytes(b ^ mask[j % 4] for j, b in enumerate(payload))
        s.sendall(bytes([0x80 | op, 0x80 | len(payload)]) + mask + body)
    def recv():
        h = f.read(2)
        n = h[1] & 0x7f
        return h[0] & 0x0f, f.read(n)
    send(1, b"hello")
    t = recv()
    send(2, b"\x00\x01")
    b = recv()
    send(8, struct.pack("!H", 1000))
    c = recv()
    s.close()
    count("ws", status.startswith(b"HTTP/1.1 101") and t == (1, b"hello") and b == (2, b"\x00\x01") and c[0] == 8)

print(json.dumps(out))
)---"

balance_child <- function(port) {
  library(rookd)
  app <- list(
    call = function(req) {
      ok <- function(body) list(status = 200L, headers = list("Content-Type" = "text/plain"), body = body)
      switch(req$PATH_INFO,
        "/sync" = ok("sync"),
        "/resolved" = promises::promise(function(resolve, reject) {
          later::later(function() resolve(ok("resolved")), 0)
        }),
        "/rejected" = promises::promise_reject(simpleError("nope")),
        "/slow" = promises::promise(function(resolve, reject) {
          later::later(function() resolve(ok("slow")), 0.05)
        }),
        "/error" = stop("an app error"),
        # A server started and stopped: its ServerClosed event reaches the drain.
        "/cycle" = {
          s2 <- startServer("127.0.0.1", 0L, function(req) NULL)
          s2$stop()
          ok("cycled")
        },
        "/stream" = {
          chunks <- list("a", charToRaw("b"), "c")
          i <- 0
          ok(function() { i <<- i + 1; if (i > length(chunks)) NULL else chunks[[i]] })
        },
        "/stream-promise" = {
          i <- 0
          ok(function() {
            i <<- i + 1
            if (i > 2) return(NULL)
            v <- c("x", "y")[i]
            promises::promise(function(resolve, reject) later::later(function() resolve(v), 0))
          })
        },
        "/stream-error" = {
          i <- 0
          ok(function() { i <<- i + 1; if (i > 1) stop("generator fails") else "first" })
        },
        "/post" = {
          inp <- req$rook.input
          lines <- inp$read_lines()
          inp$rewind()
          n <- length(inp$read())
          inp$rewind()
          while (length(inp$read(7))) NULL
          ok(as.character(n))
        },
        ok("other"))
    },
    onHeaders = function(req) {
      if (req$PATH_INFO == "/refuse") {
        return(list(status = 403L, headers = list(), body = "refused"))
      }
      NULL
    },
    onWSOpen = function(ws) {
      ws$onMessage(function(binary, message) ws$send(message))
      ws$onClose(function() NULL)
    }
  )
  s <- startServer("127.0.0.1", port, app)
  repeat later::run_now(1)
}

test_that("no PROTECT-stack imbalance over 200 events of every kind, and R still serves", {
  skip_if_not_installed("promises")
  skip_if_no_python()
  skip_if_not_installed("callr")
  errfile <- tempfile("child-stderr")
  withr::defer(unlink(errfile))
  port <- randomPort()
  child <- callr::r_bg(balance_child, args = list(port = port), supervise = TRUE,
                       stderr = errfile, stdout = errfile)
  withr::defer(if (child$is_alive()) child$kill())
  wait_until(function() port_accepts(port) || !child$is_alive(), timeout = 30,
             what = "the child server")
  expect_true(child$is_alive())

  script <- tempfile(fileext = ".py")
  writeLines(balance_client_py, script)
  withr::defer(unlink(script))
  n <- 200L
  res <- processx::run("python3", c(script, port, n), timeout = 240, error_on_status = FALSE)
  expect_identical(res$status, 0L, info = res$stderr)
  counts <- jsonlite::fromJSON(res$stdout)
  for (kind in names(counts)) expect_identical(as.integer(counts[[kind]]), n, info = kind)
  expect_setequal(names(counts), c("sync", "resolved", "rejected", "error", "stream",
                                   "stream_promise", "stream_error", "post",
                                   "headers_refused", "server_cycle", "abandoned", "left_early", "ws"))

  # Still serving, and the process is alive.
  r <- fetch_blocking(sprintf("http://127.0.0.1:%d/sync", port), timeout = 10)
  expect_identical(r$status_code, 200L)
  expect_true(child$is_alive())
  child$kill()
  err <- paste(readLines(errfile, warn = FALSE), collapse = "\n")
  # The events ran (their expected messages are there)...
  expect_match(err, "error in the app's promise: nope", fixed = TRUE)
  expect_match(err, "generator fails", fixed = TRUE)
  # ... and none of them unbalanced R's PROTECT stack.
  at <- regexpr("stack imbalance", err, fixed = TRUE)
  expect_false(at > 0, info = substr(err, max(1, at - 300), at + 300))
  expect_false(grepl("protection stack overflow", err, fixed = TRUE))
})

test_that("the imbalance check above does see a leak (Rook 1.2's rawmatch leaks one per match)", {
  # A positive control for the detector, and a record of where the leak seen in
  # test-httpuv-parity.R's Rook test comes from: Rook's own C routine `rawmatch` (used by
  # Rook::Multipart to parse uploads) returns early without UNPROTECT when all = FALSE
  # finds a match. Under httpuv the same happens. Skipped once Rook is fixed.
  skip_if_not_installed("Rook")
  skip_if_not_installed("callr")
  rscript <- file.path(R.home("bin"), "Rscript")
  code <- 'for (i in 1:3) Rook::Utils$raw.match(charToRaw("o"), charToRaw("hello"), all = FALSE)'
  res <- processx::run(rscript, c("-e", code), timeout = 60, error_on_status = FALSE)
  if (!grepl("stack imbalance", res$stderr, fixed = TRUE)) {
    skip("this Rook's rawmatch no longer leaks: nothing to control against")
  }
  expect_match(res$stderr, "stack imbalance in '.Call'", fixed = TRUE)
})

test_that("an app whose C code leaks PROTECTs cannot exhaust R's protect stack", {
  # Rook 1.2's rawmatch (Rook::Multipart's upload parser) leaks one PROTECT per match:
  # under httpuv, enough multipart uploads end in "protection stack overflow". The drain
  # now pops what an event left behind. R runs with the smallest protect stack
  # (--max-ppsize=10000) so that 60 requests leaking 250 each would overflow it.
  skip_if_not_installed("Rook")
  skip_if_not_installed("callr")
  rscript <- file.path(R.home("bin"), "Rscript")
  probe <- processx::run(rscript, c("-e", 'Rook::Utils$raw.match(charToRaw("o"), charToRaw("o"), all = FALSE)'),
                         timeout = 60, error_on_status = FALSE)
  skip_if(!grepl("stack imbalance", probe$stderr, fixed = TRUE), "this Rook's rawmatch does not leak")
  errfile <- tempfile("child-stderr")
  withr::defer(unlink(errfile))
  port <- randomPort()
  child <- callr::r_bg(function(port) {
    library(rookd)
    s <- startServer("127.0.0.1", port, function(req) {
      x <- charToRaw("hello")
      for (i in 1:250) Rook::Utils$raw.match(charToRaw("o"), x, all = FALSE)
      list(status = 200L, headers = list(), body = "parsed")
    })
    repeat later::run_now(1)
  }, args = list(port = port), supervise = TRUE, stderr = errfile, stdout = errfile,
  cmdargs = c("--slave", "--no-save", "--no-restore", "--max-ppsize=10000"))
  withr::defer(if (child$is_alive()) child$kill())
  wait_until(function() port_accepts(port) || !child$is_alive(), timeout = 30,
             what = "the child server")
  statuses <- vapply(1:60, function(i) {
    r <- tryCatch(fetch_blocking(sprintf("http://127.0.0.1:%d/", port), timeout = 10),
                  error = function(e) NULL)
    if (is.null(r)) NA_integer_ else r$status_code
  }, integer(1))
  expect_identical(statuses, rep(200L, 60))
  expect_true(child$is_alive())
  child$kill()
  err <- paste(readLines(errfile, warn = FALSE), collapse = "\n")
  expect_false(grepl("protection stack overflow", err, fixed = TRUE))
  expect_true(grepl("rookd: C code called by the app left 250 object(s) on R's PROTECT stack",
                    err, fixed = TRUE))
})
