# A slow client never costs a worker: the front reads a request's body (at the pace and
# within the limits a plain server enforces) before a worker is involved, and
# worker_timeout runs from when the body has been handed to the worker.

slow_upload <- function() {
  p <- edge_pool(workers = 1, worker_timeout = 5)
  before <- p$workers()$pid
  out <- py_run(paste0(py_raw_request, '
import time
port = int(sys.argv[1])
s = socket.socket(); s.settimeout(30); s.connect(("127.0.0.1", port))
s.sendall(b"POST /upload HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 30000\\r\\n\\r\\n")
try:
    for i in range(10):
        s.sendall(b"a" * 3000)
        time.sleep(1)
except OSError as e:
    print("send failed:", e)   # the front answered early and closed
buf = b""
while b"\\r\\n\\r\\n" not in buf or not buf.split(b"\\r\\n\\r\\n", 1)[1]:
    c = s.recv(65536)
    if not c: break
    buf += c
print(buf.decode("utf-8", "replace"))
'), p$getPort(), timeout = 40)
  expect_match(out[1], "^HTTP/1.1 200")
  body <- edge_fields(out[length(out)])
  expect_equal(body$bytes, "30000")
  expect_equal(as.integer(body$pid), before)
  expect_equal(p$workers()$pid, before)
  expect_equal(p$stats()$workers_replaced, 0)
  expect_equal(p$stats()$bad_gateway, 0)
}

test_that("a 30 KB POST sent at 3 KB/s is served, and the worker is not replaced", {
  skip_if_no_python()
  slow_upload()
})

test_that("the same slow upload with every core busy", {
  skip_if_no_python()
  with_busy_cores(slow_upload())
})

test_that("the front enforces body_timeout (408) and max_body_bytes (413) before any worker", {
  skip_if_no_python()
  p <- edge_pool(workers = 1, worker_timeout = 5,
                 options = rookdOptions(body_timeout = 1, max_body_bytes = 1000))
  before <- p$workers()$pid
  out <- py_run(paste0(py_raw_request, '
port = int(sys.argv[1])
# A body that stalls after 10 bytes.
print(request(port, b"POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 500\\r\\n\\r\\n0123456789", timeout=15).split("\\r\\n")[0])
# Declared too large; and chunked, too large as it arrives.
print(request(port, b"POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 5000\\r\\n\\r\\n").split("\\r\\n")[0])
print(request(port, b"POST / HTTP/1.1\\r\\nHost: x\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n7d0\\r\\n" + b"b" * 2000 + b"\\r\\n0\\r\\n\\r\\n").split("\\r\\n")[0])
'), p$getPort(), timeout = 40)
  expect_match(out[1], "^HTTP/1.1 408")
  expect_match(out[2], "^HTTP/1.1 413")
  expect_match(out[3], "^HTTP/1.1 413")
  expect_equal(p$workers()$pid, before)
  expect_equal(p$workers()$served, 0)
  expect_equal(p$stats()$workers_replaced, 0)
})

test_that("an upgrade request that says it has a body gets 400 at the front; the worker is untouched", {
  skip_if_no_python()
  # Before: the front forwarded the handshake without the body but with its
  # Content-Length; the worker waited for the bytes, worker_timeout ran out, and the
  # healthy worker was replaced (502). Any client could do that to every worker.
  p <- edge_pool(workers = 1, worker_timeout = 3)
  before <- p$workers()$pid
  out <- py_run(paste0(py_raw_request, '
port = int(sys.argv[1])
s = socket.socket(); s.settimeout(10); s.connect(("127.0.0.1", port))
s.sendall(b"GET /ws HTTP/1.1\\r\\nHost: x\\r\\nConnection: Upgrade\\r\\nUpgrade: websocket\\r\\n"
          b"Sec-WebSocket-Version: 13\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n"
          b"Content-Length: 10\\r\\n\\r\\n")
buf = b""
try:
    while True:
        c = s.recv(65536)
        if not c: break
        buf += c
except socket.timeout:
    pass
print(buf.decode("utf-8", "replace").split("\\r\\n")[0])
'), p$getPort(), timeout = 30)
  expect_match(out[1], "^HTTP/1.1 400")
  Sys.sleep(3.5)
  expect_equal(p$workers()$pid, before)
  expect_equal(p$stats()$workers_replaced, 0)
  expect_equal(p$stats()$bad_gateway, 0)
})
