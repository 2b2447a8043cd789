# Health and readiness are answered by the engine, without R: they answer while R is
# blocked in the app, come before statics and the app, accept HEAD, and are not counted.

test_that("health says ok and readiness says R busy while the app sleeps in R", {
  skip_if_slow_disabled()
  skip_if(!nzchar(Sys.which("curl")), "curl is not installed")
  ch <- child_server(ops_child, list(opts = list(health_path = "/healthz", ready_path = "/readyz",
                                                  ready_max_stall = 1)))
  base <- sprintf("http://127.0.0.1:%d", ch$port)
  expect_identical(get_blocking(paste0(base, "/healthz"))[c("status", "body")], list(status = 200L, body = "ok\n"))
  expect_identical(get_blocking(paste0(base, "/readyz"))[c("status", "body")], list(status = 200L, body = "ready\n"))
  slow <- curl_bg(paste0(base, "/slow?3"))
  # Within the 3 s sleep, once R has owed progress for over 1 s, readiness fails.
  deadline <- Sys.time() + 10
  seen <- NULL
  while (is.null(seen) && Sys.time() < deadline) {
    r <- get_blocking(paste0(base, "/readyz"))
    h <- get_blocking(paste0(base, "/healthz"))
    if (r$status == 503L) seen <- list(ready = r, health = h)
    Sys.sleep(0.1)
  }
  expect_false(is.null(seen))
  expect_match(seen$ready$body, "^not ready: R busy: no event taken for [0-9.]+ s")
  expect_identical(seen$health$status, 200L)
  expect_identical(curl_result(slow), list(status = 200L, body = "slow done"))
  # R is back: ready again.
  deadline <- Sys.time() + 10
  repeat {
    r <- get_blocking(paste0(base, "/readyz"))
    if (r$status == 200L || Sys.time() > deadline) break
    Sys.sleep(0.05)
  }
  expect_identical(r$status, 200L)
})

test_that("readiness fails while more than ready_max_queue requests wait for R", {
  skip_if_slow_disabled()
  skip_if(!nzchar(Sys.which("curl")), "curl is not installed")
  ch <- child_server(ops_child, list(opts = list(ready_path = "/readyz", ready_max_queue = 1,
                                                  ready_max_stall = 0)))
  base <- sprintf("http://127.0.0.1:%d", ch$port)
  slow <- lapply(1:3, function(i) curl_bg(paste0(base, "/slow?1")))
  deadline <- Sys.time() + 10
  body <- ""
  while (!grepl("R queue", body) && Sys.time() < deadline) {
    body <- get_blocking(paste0(base, "/readyz"))$body
    Sys.sleep(0.05)
  }
  expect_match(body, "^not ready: R queue: [23] requests waiting for R \\(ready_max_queue = 1\\)")
  for (s in slow) expect_identical(curl_result(s)$status, 200L)
})

test_that("off by default: the app keeps its own /healthz", {
  s <- local_server(text_app("the app's health"))
  r <- http_req(server_url(s, "/healthz"))
  expect_identical(r$text, "the app's health")
})

test_that("HEAD works, other methods get 405, and probes are not counted or passed to the app", {
  calls <- 0
  app <- function(req) { calls <<- calls + 1; list(status = 200L, headers = list(), body = "app") }
  s <- local_server(app, options = rookdOptions(health_path = "/healthz", ready_path = "/readyz"))
  h <- http_req(server_url(s, "/healthz"), method = "HEAD")
  expect_identical(h$status, 200L)
  expect_identical(h$text, "")
  expect_identical(hdr(h, "cache-control"), "no-store")
  expect_identical(http_req(server_url(s, "/readyz"))$text, "ready\n")
  p <- http_req(server_url(s, "/healthz"), method = "POST", body = "x")
  expect_identical(p$status, 405L)
  expect_identical(hdr(p, "allow"), "GET, HEAD")
  # A query string does not change the answer (probes add cache busters).
  expect_identical(http_req(server_url(s, "/healthz?x=1"))$text, "ok\n")
  expect_identical(calls, 0)
  expect_identical(s$stats()$requests, 0)
  expect_identical(http_req(server_url(s, "/other"))$text, "app")
  expect_identical(s$stats()$requests, 1)
})

test_that("health comes before static paths", {
  dir <- withr::local_tempdir()
  writeLines("static", file.path(dir, "healthz"))
  app <- list(call = function(req) list(status = 404L, headers = list(), body = ""),
              staticPaths = list("/" = staticPath(dir)))
  s <- local_server(app, options = rookdOptions(health_path = "/healthz"))
  expect_identical(http_req(server_url(s, "/healthz"))$text, "ok\n")
})

test_that("bad paths are R errors naming the option", {
  expect_error(rookdOptions(health_path = "healthz"), "`health_path` must be a single path")
  expect_error(rookdOptions(ready_path = c("/a", "/b")), "`ready_path` must be a single path")
  expect_error(rookdOptions(metrics_path = "/m?x"), "`metrics_path` must be a single path")
  expect_identical(rookdOptions(health_path = NULL)$health_path, "")
  expect_error(startServer("127.0.0.1", 0, text_app(), options = rookdOptions(metrics_allow = "nope")),
               "metrics_allow")
})
