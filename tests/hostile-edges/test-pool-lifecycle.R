# serveWorkers() and SIGTERM; the workers' output forwarding.

# serveWorkers() in a child Rscript; stderr to a file.
child_pool <- function(code, port, extra = "", .env = parent.frame()) {
  f <- edge_app_file(code)
  err <- tempfile()
  p <- processx::process$new(file.path(R.home("bin"), "Rscript"), c("-e", sprintf(
    'rookd::serveWorkers(%s, workers = 1L, port = %dL%s); cat("exited cleanly\\n")',
    deparse(f), port, extra)),
    env = c("current", R_LIBS = paste(.libPaths(), collapse = ":")),
    stdout = "|", stderr = err, cleanup_tree = TRUE)
  withr::defer(p$kill_tree(), envir = .env)
  wait_until(function() port_accepts(port) || !p$is_alive(), timeout = 60, what = "the pool front")
  list(proc = p, err = err)
}

test_that("SIGTERM to serveWorkers() lets the request in flight finish, then exits 0", {
  port <- randomPort()
  front <- child_pool(edge_app_code, port, ", quiet = TRUE")
  h <- curl::new_handle(timeout = 30)
  mp <- curl::new_pool()
  done <- NULL
  curl::curl_fetch_multi(sprintf("http://127.0.0.1:%d/slow?ms=3000", port), handle = h, pool = mp,
                         done = function(r) done <<- r, fail = function(e) done <<- e)
  t0 <- Sys.time()
  while (Sys.time() - t0 < 1) curl::multi_run(timeout = 0.05, poll = TRUE, pool = mp)
  front$proc$signal(tools::SIGTERM)
  wait_until(function() {
    curl::multi_run(timeout = 0.05, poll = TRUE, pool = mp)
    !is.null(done)
  }, timeout = 20, what = "the request in flight")
  expect_false(inherits(done, "error"), info = if (inherits(done, "error")) conditionMessage(done))
  expect_equal(done$status_code, 200)
  front$proc$wait(15000)
  expect_false(front$proc$is_alive())
  expect_equal(front$proc$get_exit_status(), 0)
  expect_match(front$proc$read_all_output(), "exited cleanly")
})

test_that("invalid UTF-8 and a 10 MB carriage-return line neither stop forwarding nor grow the front", {
  code <- '
app <- function(req) {
  if (identical(req$PATH_INFO, "/bad")) cat("before", rawToChar(as.raw(c(0x66, 0xff, 0xfe, 0x67))), "\\n", file = stderr())
  if (identical(req$PATH_INFO, "/progress")) cat(strrep("\\r42% [=====>     ]", 6e5), file = stderr())
  cat("marker", req$PATH_INFO, "\\n", file = stderr())
  list(status = 200L, headers = list(), body = "ok")
}'
  port <- randomPort()
  front <- child_pool(code, port, ", quiet = FALSE")
  url <- function(p) sprintf("http://127.0.0.1:%d%s", port, p)
  expect_equal(http_req(url("/bad"))$status, 200)
  expect_equal(http_req(url("/progress"), timeout = 30)$status, 200)
  expect_equal(http_req(url("/after"))$status, 200)
  wait_until(function() any(grepl("marker /after", readLines(front$err, warn = FALSE), useBytes = TRUE)),
             timeout = 20, what = "output after the bad bytes and the long line")
  lines <- readLines(front$err, warn = FALSE)
  expect_true(any(grepl("^\\[worker 1\\] before f", lines, useBytes = TRUE)))
  expect_lt(max(nchar(lines, type = "bytes")), 20000)
  rss <- as.numeric(sub("[^0-9]*([0-9]+).*", "\\1",
                        grep("^VmHWM", readLines(sprintf("/proc/%d/status", front$proc$get_pid())), value = TRUE)))
  expect_lt(rss / 1024, 400)
})
