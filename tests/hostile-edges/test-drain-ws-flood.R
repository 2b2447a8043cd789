# SIGTERM while clients flood WebSockets with messages (and do not read the echoes): the
# drain must still end, within its bounds: WebSockets get close 1001 (or are cut at the
# timeout), the process exits 0, and R's memory stays bounded meanwhile.

flood_client <- r"---(
async def flood(i):
    sent = 0
    msg = pattern(65536)
    try:
        async with connect("/ws", max_queue=1) as ws:
            t_end = time.time() + 40
            while time.time() < t_end:
                await asyncio.wait_for(ws.send(msg), 10)
                sent += 1
    except ConnectionClosed as e:
        return {"sent": sent, "code": e.rcvd.code if e.rcvd is not None else None}
    except Exception as e:
        return {"sent": sent, "code": None, "error": type(e).__name__}
    return {"sent": sent, "code": -1}

async def main():
    return await asyncio.gather(*[flood(i) for i in range(4)])
)---"

test_that("SIGTERM during a WebSocket flood: the drain ends, exit 0, bounded memory", {
  skip_on_os("windows")
  skip_if(!file.exists("/proc/self/status"), "no /proc")
  skip_if_no_python_websockets()
  port <- randomPort()
  script <- tempfile(fileext = ".R")
  writeLines(c(
    "library(rookd)",
    "app <- list(call = function(req) list(status = 200L, headers = list(), body = 'ok'),",
    "  onWSOpen = function(ws) ws$onMessage(function(binary, message) ws$send(message)))",
    sprintf("runServer('127.0.0.1', %d, app, options = rookdOptions(ready_path = '/readyz', shutdown_grace = 3))", port),
    "cat('runServer returned\\n')"
  ), script)
  p <- processx::process$new(file.path(R.home("bin"), "Rscript"), script, stdout = "|",
                             stderr = "|", cleanup = TRUE)
  withr::defer(if (p$is_alive()) p$kill())
  deadline <- Sys.time() + 30
  while (!port_accepts(port) && Sys.time() < deadline && p$is_alive()) Sys.sleep(0.05)
  rss <- function() {
    st <- readLines(sprintf("/proc/%d/status", p$get_pid()), warn = FALSE)
    as.numeric(sub("^VmRSS:\\s+(\\d+) kB.*$", "\\1", grep("^VmRSS:", st, value = TRUE))) / 1024
  }
  before <- rss()
  client <- ws_py_bg(port, flood_client, timeout = 60)
  Sys.sleep(2)
  peak <- rss()
  at_signal <- peak
  t0 <- Sys.time()
  p$signal(tools::SIGTERM)
  while (p$is_alive() && Sys.time() - t0 < 30) {
    peak <- max(peak, tryCatch(rss(), error = function(e) 0))
    Sys.sleep(0.1)
  }
  took <- as.numeric(Sys.time() - t0, units = "secs")
  expect_false(p$is_alive())
  expect_identical(p$get_exit_status(), 0L)
  expect_match(p$read_all_output(), "runServer returned")
  # shutdown_grace (3 s) plus the WebSocket close timeout, with wide margins.
  expect_lt(took, 20)
  res <- client$result()
  message(sprintf("drain took %.1f s; RSS +%.0f MB (+%.0f MB at the signal); sent %s; codes %s", took, peak - before, at_signal - before,
                  paste(vapply(res, function(r) r$sent, 1), collapse = ","),
                  paste(vapply(res, function(r) format(r$code), ""), collapse = ",")))
  expect_length(res, 4)
  for (r in res) {
    expect_gt(r$sent, 0)
    # 1001 going away, or the connection cut (no close frame) once the grace was over.
    expect_true(is.null(r$code) || identical(r$code, 1001L), info = format(r$code))
  }
  # R keeps 64 KB messages until its GC runs: +60..300 MB seen; unbounded would be the
  # ~1 GB the clients send.
  expect_lt(peak - before, 500)
})
