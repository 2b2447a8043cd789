# SIGTERM while R is inside a long handler (item 6): readiness must fail at once, whatever
# R is doing (the signal is seen by the engine, not only by R's loop); the drain proper
# follows when R is free, the request in flight completes, and the process exits 0.

sigterm_script <- function(port, marker, opts = "ready_path = '/readyz'") {
  script <- tempfile(fileext = ".R")
  writeLines(c(
    "library(rookd)",
    sprintf("marker <- '%s'", marker),
    "app <- function(req) {",
    "  if (req$PATH_INFO == '/slow') { file.create(marker); Sys.sleep(3) }",
    "  list(status = 200L, headers = list('Content-Type' = 'text/plain'), body = 'done')",
    "}",
    sprintf("runServer('127.0.0.1', %d, app, options = rookdOptions(%s))", port, opts),
    "cat('runServer returned\\n')"
  ), script)
  p <- processx::process$new(file.path(R.home("bin"), "Rscript"), script, stdout = "|",
                             stderr = "|", cleanup = TRUE)
  withr::defer(if (p$is_alive()) p$kill(), envir = parent.frame())
  deadline <- Sys.time() + 30
  while (!port_accepts(port) && Sys.time() < deadline && p$is_alive()) Sys.sleep(0.05)
  p
}

# A readiness probe from this process (the server is in the child): status and body.
ready_probe <- function(port) {
  r <- tryCatch(fetch_blocking(sprintf("http://127.0.0.1:%d/readyz", port), timeout = 5),
                error = function(e) NULL)
  if (is.null(r)) return(list(status = NA_integer_, body = ""))
  list(status = r$status_code, body = rawToChar(r$content))
}

test_that("SIGTERM during a 3 s handler: readiness fails at once, the request completes, exit 0", {
  skip_on_os("windows")
  skip_if(!nzchar(Sys.which("curl")), "curl is not installed")
  port <- randomPort()
  marker <- tempfile()
  p <- sigterm_script(port, marker)
  expect_identical(ready_probe(port)$status, 200L)
  slow <- curl_bg(sprintf("http://127.0.0.1:%d/slow", port))
  deadline <- Sys.time() + 10
  while (!file.exists(marker) && Sys.time() < deadline) Sys.sleep(0.01)
  expect_true(file.exists(marker))
  t0 <- Sys.time()
  p$signal(tools::SIGTERM)
  Sys.sleep(0.2)
  r <- ready_probe(port)
  waited <- as.numeric(Sys.time() - t0, units = "secs")
  # R is still asleep in the handler (3 s): the answer comes from the engine.
  expect_true(slow$process$is_alive())
  expect_identical(r$status, 503L)
  expect_match(r$body, "SIGTERM", fixed = TRUE)
  expect_lt(waited, 2.5)
  expect_identical(curl_result(slow), list(status = 200L, body = "done"))
  p$wait(20000)
  expect_false(p$is_alive())
  expect_identical(p$get_exit_status(), 0L)
  expect_match(p$read_all_output(), "runServer returned")
})

test_that("SIGTERM twice during a handler: one drain, the request completes, exit 0", {
  skip_on_os("windows")
  skip_if(!nzchar(Sys.which("curl")), "curl is not installed")
  port <- randomPort()
  marker <- tempfile()
  p <- sigterm_script(port, marker)
  slow <- curl_bg(sprintf("http://127.0.0.1:%d/slow", port))
  deadline <- Sys.time() + 10
  while (!file.exists(marker) && Sys.time() < deadline) Sys.sleep(0.01)
  p$signal(tools::SIGTERM)
  Sys.sleep(0.3)
  p$signal(tools::SIGTERM)
  expect_identical(ready_probe(port)$status, 503L)
  expect_identical(curl_result(slow), list(status = 200L, body = "done"))
  p$wait(20000)
  expect_false(p$is_alive())
  expect_identical(p$get_exit_status(), 0L)
  err <- p$read_all_error()
  expect_identical(lengths(regmatches(err, gregexpr("SIGTERM: draining", err))), 1L)
})

test_that("with drain_on_sigterm = FALSE readiness is not touched by the engine", {
  skip_on_os("windows")
  port <- randomPort()
  marker <- tempfile()
  p <- sigterm_script(port, marker, "ready_path = '/readyz', drain_on_sigterm = FALSE")
  expect_identical(ready_probe(port)$status, 200L)
  # R's own SIGTERM handling: the process ends (no drain, no readiness change first).
  p$signal(tools::SIGTERM)
  p$wait(20000)
  expect_false(p$is_alive())
})
