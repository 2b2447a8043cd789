# Graceful drain: readiness fails at once, the listener closes after drain_lag, in-flight
# requests and streams finish while R keeps serving, idle keep-alive connections close,
# WebSockets get 1001, what is left at the timeout is cut; SIGTERM does the same in a
# runServer() script, which then exits normally.

test_that("a drain finishes a request in flight and a stream, closes idle and WebSocket connections, cuts the rest", {
  skip_if_slow_disabled()
  skip_if(!nzchar(Sys.which("curl")), "curl is not installed")
  store <- new.env()
  app <- ws_record_app(store)
  stream_started <- FALSE
  app$call <- function(req) {
    if (req$PATH_INFO == "/slow") {
      Sys.sleep(0.3)
      return(list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "slow done"))
    }
    if (req$PATH_INFO == "/stream") {
      stream_started <<- TRUE
      i <- 0
      return(list(status = 200L, headers = list("Content-Type" = "text/plain"), body = function() {
        i <<- i + 1
        if (i > 10) return(NULL)
        Sys.sleep(0.02)
        sprintf("c%d\n", i)
      }))
    }
    list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "app")
  }
  s <- local_server(app, options = rookdOptions(ready_path = "/readyz"))
  port <- s$getPort()
  clients <- ws_py_bg(port, r"---(
async def main():
    loop = asyncio.get_running_loop()
    idle = socket.create_connection((HOST, PORT), timeout=20)
    idle.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while not got.endswith(b"app"):
        got += idle.recv(4096)
    stuck = socket.create_connection((HOST, PORT), timeout=20)
    stuck.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
    def eof(s):
        try:
            while s.recv(4096):
                pass
            return "closed"
        except ConnectionResetError:
            return "closed"
        except Exception as e:
            return type(e).__name__
    async with connect("/ws") as ws:
        close = await recv_close(ws, timeout=20)
    return {"close": close, "idle": await loop.run_in_executor(None, eof, idle),
            "stuck": await loop.run_in_executor(None, eof, stuck)}
)---")
  wait_until(function() {
    st <- s$stats()
    identical(store$opened, 1L) && st$connections_open >= 2 && st$requests >= 1
  }, what = "the idle, stuck and WebSocket clients")
  stream <- curl_bg(server_url(s, "/stream"))
  wait_until(function() stream_started, what = "the stream to start")
  slow <- curl_bg(server_url(s, "/slow"))
  # The slow request waits in the Door (next to the stuck upload's slot); R not pumped.
  deadline <- Sys.time() + 10
  while (rookd:::rookd_stats()$requests_in_flight < 2 && Sys.time() < deadline) Sys.sleep(0.01)
  expect_gte(rookd:::rookd_stats()$requests_in_flight, 2)

  # The slow request and the stream need about 0.5 s of R; the stuck upload never ends.
  x <- s$drain(timeout = 2)
  expect_true(x$closed)
  expect_identical(x$websockets_closed, 1)
  expect_identical(x$cut, 1)
  expect_gte(x$requests, 2)
  expect_gte(x$streams, 1)
  expect_identical(curl_result(slow), list(status = 200L, body = "slow done"))
  expect_identical(curl_result(stream), list(status = 200L, body = paste0("c", 1:10, collapse = "\n")))
  r <- clients$result()
  expect_identical(r$close[[1]], 1001L)
  expect_identical(r$idle, "closed")
  expect_identical(r$stuck, "closed")
  wait_until(function() length(store$closes) == 1, what = "onClose")
  expect_identical(store$closes[[1]]$code, 1001L)
  expect_false(port_accepts(port))
  expect_false(s$isRunning())
  expect_identical(s$stats()$drains, 1)
})

test_that("during drain_lag readiness says draining and requests are still served; then the port closes", {
  skip_if_slow_disabled()
  skip_if(!nzchar(Sys.which("curl")), "curl is not installed")
  s <- local_server(text_app("app"), options = rookdOptions(ready_path = "/readyz", drain_lag = 1))
  base <- sprintf("http://127.0.0.1:%d", s$getPort())
  out <- tempfile()
  probe <- processx::process$new("sh", c("-c", sprintf(
    "sleep 0.3; curl -s -m 5 -w ' %%{http_code}\\n' %s/readyz; curl -s -m 5 -w ' %%{http_code}\\n' %s/x",
    base, base)), stdout = out, cleanup = TRUE)
  x <- drainServer(s, timeout = 1)
  probe$wait(10000)
  lines <- readLines(out, warn = FALSE)
  expect_identical(lines, c("not ready: draining", " 503", "app 200"))
  expect_true(x$closed)
  expect_false(port_accepts(s$getPort()))
  expect_error(drainServer(s, timeout = -1), "`timeout` must be a single number of seconds")
  expect_error(drainServer("nope"), "`server` must be a server")
})

test_that("SIGTERM to a runServer() script drains it: the request in flight completes, exit status 0", {
  skip_if_slow_disabled()
  skip_on_os("windows")
  skip_if(!nzchar(Sys.which("curl")), "curl is not installed")
  port <- randomPort()
  marker <- tempfile()
  script <- tempfile(fileext = ".R")
  writeLines(c(
    "library(rookd)",
    sprintf("marker <- '%s'", marker),
    "app <- function(req) {",
    "  if (req$PATH_INFO == '/slow') { file.create(marker); Sys.sleep(1.5) }",
    "  list(status = 200L, headers = list('Content-Type' = 'text/plain'), body = 'done')",
    "}",
    sprintf("runServer('127.0.0.1', %d, app)", port),
    "cat('runServer returned\\n')"
  ), script)
  p <- processx::process$new(file.path(R.home("bin"), "Rscript"), script, stdout = "|",
                             stderr = "|", cleanup = TRUE)
  withr::defer(if (p$is_alive()) p$kill())
  deadline <- Sys.time() + 30
  while (!port_accepts(port) && Sys.time() < deadline && p$is_alive()) Sys.sleep(0.05)
  slow <- curl_bg(sprintf("http://127.0.0.1:%d/slow", port))
  deadline <- Sys.time() + 10
  while (!file.exists(marker) && Sys.time() < deadline) Sys.sleep(0.01)
  expect_true(file.exists(marker))
  p$signal(tools::SIGTERM)
  expect_identical(curl_result(slow), list(status = 200L, body = "done"))
  p$wait(20000)
  expect_false(p$is_alive())
  expect_identical(p$get_exit_status(), 0L)
  expect_match(p$read_all_output(), "runServer returned")
  expect_match(p$read_all_error(), "SIGTERM: draining 1 server")
})

test_that("outside service(0) R's own SIGTERM handling is back", {
  skip_on_os("windows")
  # The handler is installed only while the loop runs, and restored after.
  s <- local_server(text_app())
  later::later(function() interrupt(), 0.05)
  service(0)
  expect_false(rookd:::rookd_sigterm(2L))
  expect_true(rookd:::rookd_sigterm(1L))  # nothing installed now: this call installs
  rookd:::rookd_sigterm(0L)
})
