# A WebSocket through the pool whose client stops reading: the front closes the tunnel
# after send_timeout, as a plain server closes such a connection. Before, the front kept
# the tunnel (its max_connections slot, a descriptor, megabytes of kernel buffers and the
# worker's WebSocket count) for ever, and drain() and reload waited their whole timeout.

tunnel_app_code <- '
big <- as.raw(rep(7L, 1024 * 1024))
app <- list(
  call = function(req) list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "ok"),
  onWSOpen = function(ws) for (i in 1:40) ws$send(big)
)
'

test_that("a WebSocket client that reads nothing through the pool is closed after send_timeout", {
  skip_if_no_python()
  p <- edge_pool(tunnel_app_code, workers = 1, options = rookdOptions(send_timeout = 3))
  client <- tempfile(fileext = ".py")
  writeLines('
import base64, os, socket, sys, time
port = int(sys.argv[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", port))
key = base64.b64encode(os.urandom(16))
s.sendall(b"GET /ws HTTP/1.1\\r\\nHost: x\\r\\nConnection: Upgrade\\r\\nUpgrade: websocket\\r\\n"
          b"Sec-WebSocket-Version: 13\\r\\nSec-WebSocket-Key: " + key + b"\\r\\n\\r\\n")
print("sent", flush=True)
time.sleep(60)
', client)
  proc <- processx::process$new("python3", c(client, p$getPort()), stdout = "|", stderr = "|",
                                cleanup = TRUE)
  on.exit(proc$kill(), add = TRUE)
  # The tunnel opens: the worker counts the WebSocket.
  deadline <- Sys.time() + 20
  while (sum(p$workers()$websockets) < 1 && Sys.time() < deadline) later::run_now(0.1)
  expect_equal(sum(p$workers()$websockets), 1)
  # ... and is closed within send_timeout (3 s) and the watch's tick, plus a margin for a
  # busy machine; the client is still there, reading nothing.
  deadline <- Sys.time() + 20
  while (sum(p$workers()$websockets) > 0 && Sys.time() < deadline) later::run_now(0.1)
  expect_equal(sum(p$workers()$websockets), 0)
  expect_true(proc$is_alive())
  # Other clients are served meanwhile and after.
  r <- curl::curl_fetch_memory(sprintf("http://127.0.0.1:%d/", p$getPort()))
  expect_equal(r$status_code, 200L)
})
