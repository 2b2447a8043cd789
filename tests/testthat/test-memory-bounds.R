# Memory held for R is bounded in bytes: while R is busy (here: Sys.sleep, during which
# no drain runs), a client sending far more than the budgets makes the engine stop
# reading, so this process's resident memory stays flat; once R is back, everything sent
# is delivered.

vm_rss_mib <- function() {
  line <- grep("^VmRSS:", readLines("/proc/self/status"), value = TRUE)
  as.numeric(sub("^VmRSS:\\s*([0-9]+) kB.*$", "\\1", line)) / 1024
}

test_that("a WebSocket client flooding a busy R is held to ws_max_inflight_bytes", {
  skip_if_no_python_websockets()
  skip_if_slow_disabled()
  if (!file.exists("/proc/self/status")) skip("no /proc/self/status")
  store <- new.env()
  store$n <- 0L
  store$bytes <- 0
  s <- local_server(list(
    call = function(req) list(status = 200L, headers = list(), body = "ok"),
    onWSOpen = function(ws) {
      ws$onMessage(function(binary, message) {
        store$n <- store$n + 1L
        store$bytes <- store$bytes + length(message)
      })
    }
  ), options = rookdOptions(ws_max_inflight_bytes = 4 * 1024^2, max_inflight_bytes = 32 * 1024^2,
                            max_body_bytes = 32 * 1024^2, ws_max_message_bytes = 8 * 1024^2,
                            ws_idle_timeout = 0))
  n_msgs <- 60L
  size <- 4 * 1024^2
  invisible(gc())
  rss0 <- vm_rss_mib()
  client <- ws_py_bg(s$getPort(), r"---(
def main():
    c = Raw("/")
    block = pattern(int(ARGS["size"]))
    # One masked frame built once, with a zero mask (Raw masks byte by byte: too slow here).
    frame = struct.pack("!BBQ", 0x82, 0x80 | 127, len(block)) + bytes(4) + block
    for _ in range(int(ARGS["n"])):
        c.sock.sendall(frame)
    return c.close()
)---", timeout = 120, args = list(n = n_msgs, size = size))
  # R busy for 4 s: 240 MiB are on their way; before the byte bounds the engine read and
  # held up to 64 of these messages (256 MiB) for R.
  Sys.sleep(4)
  rss_busy <- vm_rss_mib()
  held <- rookd:::rookd_stats()$inflight_bytes
  expect_lte(held, 2 * size)
  expect_lt(rss_busy - rss0, 100)
  # R is back: every message arrives, whole.
  wait_until(function() store$n == n_msgs, timeout = 120, what = "all messages")
  expect_identical(store$bytes, n_msgs * size)
  expect_identical(client$result(), list(1000L, ""))
  wait_until(function() rookd:::rookd_stats()$inflight_bytes == 0, what = "the budget to empty")
})

test_that("HTTP bodies waiting for a busy R are held to max_inflight_bytes; 503 beyond", {
  skip_if_slow_disabled()
  s <- local_server(function(req) {
    list(status = 200L, headers = list(), body = as.character(length(req[["rook.input"]]$read())))
  }, options = rookdOptions(max_inflight_bytes = 8 * 1024^2, max_body_bytes = 8 * 1024^2))
  body <- strrep("x", 3 * 1024^2)
  f <- tempfile()
  writeLines(body, f, sep = "")
  on.exit(unlink(f), add = TRUE)
  url <- server_url(s)
  # Four curl processes post 3 MiB each while R sleeps: two fit in the 8 MiB, the others
  # are refused at once with 503 and Retry-After.
  procs <- lapply(1:4, function(i) {
    processx::process$new("curl", c("-s", "-o", "/dev/null", "-w", "%{http_code}", "-D", "-",
                                    "--data-binary", paste0("@", f), "-H", "Expect:", url),
                          stdout = "|", stderr = NULL, cleanup = TRUE)
  })
  Sys.sleep(2)
  expect_lte(rookd:::rookd_stats()$inflight_bytes, 8 * 1024^2)
  wait_until(function() !any(vapply(procs, function(p) p$is_alive(), TRUE)), timeout = 30,
             what = "the curl clients")
  outs <- vapply(procs, function(p) p$read_all_output(), "")
  codes <- sub("^.*([0-9]{3})$", "\\1", outs)
  expect_identical(sort(codes), c("200", "200", "503", "503"))
  expect_true(all(grepl("Retry-After: 1", outs[codes == "503"], ignore.case = TRUE)))
  expect_identical(http_req(url, body = "abc")$text, "3")
})
