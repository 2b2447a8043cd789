# The access log handed to an R function while R is busy: a flood of requests with huge
# user agents must not pile up batches for R without bound (item 1). The engine keeps a
# bounded number of bytes, drops and counts the rest, and hands R at most one batch a
# second, never a new one while the previous batch has not been taken.

rss_mb <- function(pid) {
  st <- readLines(sprintf("/proc/%d/status", pid), warn = FALSE)
  as.numeric(sub("^VmRSS:\\s+(\\d+) kB.*$", "\\1", grep("^VmRSS:", st, value = TRUE))) / 1024
}

test_that("an R access_log function behind a busy R: bounded memory, dropped lines counted, one batch a second", {
  skip_on_os("windows")
  skip_if(!file.exists("/proc/self/status"), "no /proc")
  skip_if(!nzchar(Sys.which("h2load")), "h2load is not installed")
  dir <- tempfile("flood"); dir.create(dir)
  writeLines("static!", file.path(dir, "s.txt"))
  calls <- file.path(dir, "calls.txt")
  marker <- file.path(dir, "sleeping")
  srv <- child_server(function(port, dir, calls, marker) {
    library(rookd)
    n <- 0
    s <- startServer("127.0.0.1", port, function(req) {
      if (req$PATH_INFO == "/sleep") { file.create(marker); Sys.sleep(8) }
      if (req$PATH_INFO == "/dropped") {
        return(list(status = 200L, headers = list("Content-Type" = "text/plain"),
                    body = format(rookd:::rookd_reopen_log(s$id)$dropped, scientific = FALSE)))
      }
      list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "ok")
    }, options = rookdOptions(access_log = function(lines) {
      n <<- n + length(lines)
      cat(sprintf("%.3f %d %d\n", as.numeric(Sys.time()), length(lines), n), file = calls, append = TRUE)
    }))
    s$setStaticPath("/files" = dir)
    service(0)
  }, args = list(dir = dir, calls = calls, marker = marker))
  pid <- srv$process$get_pid()
  url <- sprintf("http://127.0.0.1:%d", srv$port)
  Sys.sleep(1)
  before <- rss_mb(pid)
  slow <- curl_bg(paste0(url, "/sleep"))
  wait_until(function() file.exists(marker), timeout = 20, what = "R asleep in the handler")
  ua <- strrep("a", 8000)
  n <- 20000
  run <- processx::run("h2load", c("--h1", "-n", n, "-c", "16", "-H", paste0("user-agent: ", ua),
                                   paste0(url, "/files/s.txt")), error_on_status = FALSE, timeout = 60)
  expect_match(run$stdout, sprintf("%d succeeded", n))
  peak <- rss_mb(pid)
  expect_identical(curl_result(slow)$status, 200L)
  # R is free again: let it take what was kept (one batch a second), sampling its memory.
  for (i in 1:30) {
    Sys.sleep(0.2)
    peak <- max(peak, rss_mb(pid))
  }
  dropped <- as.numeric(fetch_blocking(paste0(url, "/dropped"))$content |> rawToChar())
  Sys.sleep(1.5)
  peak <- max(peak, rss_mb(pid))
  got <- read.table(calls, col.names = c("time", "lines", "total"))
  received <- max(got$total)
  growth <- peak - before
  message(sprintf("RSS growth %.0f MB, %d lines delivered in %d calls, %.0f dropped",
                  growth, received, nrow(got), dropped))
  # Unbounded, 20,000 lines of ~8 KB are ~160 MB in the engine plus as much in R.
  expect_lt(growth, 120)
  expect_gt(dropped, 0)
  # Every line was delivered or counted as dropped (the /sleep and /dropped lines may or
  # may not have been delivered yet).
  expect_gte(received + dropped, n)
  # Never a new batch while R had not taken the previous one, at most one a second: the
  # calls after R woke up come about a second apart (margin for a busy machine).
  gaps <- diff(got$time)
  expect_true(all(gaps > 0.5), info = paste(round(gaps, 3), collapse = " "))
  expect_true(srv$process$is_alive())
})

test_that("an access_log function that errors or is slow: serving goes on, batches keep coming", {
  store <- new.env()
  store$calls <- 0
  s <- local_server(function(req) list(status = 200L, headers = list(), body = "ok"),
                    options = rookdOptions(access_log = function(lines) {
                      store$calls <- store$calls + 1
                      Sys.sleep(0.3)
                      stop("boom in the log function")
                    }))
  out <- with_stderr({
    for (i in 1:4) {
      expect_identical(http_req(server_url(s, paste0("/r", i)))$status, 200L)
      pump_for(1.3)
    }
  })
  # A failed call still releases its batch: the next one comes.
  expect_gte(store$calls, 3)
  expect_match(out$stderr, "access_log function")
})
