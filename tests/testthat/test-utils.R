# randomPort(), ipFamily(), service(), interrupt().

test_that("randomPort() gives a free port in range that can be served on", {
  p <- randomPort()
  expect_type(p, "integer")
  expect_true(p >= 1024L && p <= 49151L)
  s <- local_server(text_app("on random port"), port = p)
  expect_identical(s$getPort(), p)
  expect_identical(http_req(server_url(s))$text, "on random port")
  p2 <- randomPort(min = 20000, max = 20100)
  expect_true(p2 >= 20000L && p2 <= 20100L)
})

test_that("randomPort() skips ports in use and fails clearly when none is free", {
  s <- local_server(text_app())
  used <- s$getPort()
  expect_error(randomPort(min = used, max = used), "Cannot find an available port")
  expect_error(randomPort(min = used, max = used), as.character(used), fixed = TRUE)
  expect_error(randomPort(min = 10, max = 5), "`min` and `max`")
  # As httpuv, the range is clamped to 1-65535; port 1 is an "unsafe" one, never picked.
  expect_error(randomPort(min = 0, max = 1), "Cannot find an available port")
  expect_true(randomPort(min = 65000, max = 70000) <= 65535L)
  expect_error(randomPort(host = 1), "`host`")
})

test_that("randomPort() on IPv6", {
  skip_if_no_ipv6()
  p <- randomPort(host = "::1")
  s <- local_server(text_app("v6"), host = "::1", port = p)
  expect_identical(http_req(server_url(s))$text, "v6")
})

test_that("port 0 picks a free port, reported by getPort()", {
  s1 <- local_server(text_app("one"))
  s2 <- local_server(text_app("two"))
  expect_true(s1$getPort() > 0 && s2$getPort() > 0)
  expect_false(s1$getPort() == s2$getPort())
})

test_that("ipFamily()", {
  expect_identical(ipFamily("127.0.0.1"), 4L)
  expect_identical(ipFamily("::1"), 6L)
  expect_identical(
    ipFamily(c("127.0.0.1", "::1", "localhost", NA, "[::1]", "0.0.0.0", "::", "999.1.1.1",
               "fe80::1", "::ffff:10.0.0.1", "")),
    c(4L, 6L, -1L, -1L, 6L, 4L, 6L, -1L, 6L, 6L, -1L))
  expect_identical(ipFamily(character(0)), integer(0))
  expect_error(ipFamily(1), "`ip` must be a character vector")
})

test_that("service(ms) runs the app; service(0) loops until interrupt()", {
  hits <- 0L
  s <- local_server(function(req) {
    hits <<- hits + 1L
    if (req$PATH_INFO == "/stop") interrupt()
    list(status = 200L, headers = list(), body = "s")
  })
  # A client in another process; this process only runs service().
  p <- processx::process$new("curl", c("-s", "--max-time", "10", server_url(s, "/a"),
                                       server_url(s, "/stop")),
                             stdout = "|", stderr = "|", cleanup = TRUE)
  on.exit(if (p$is_alive()) p$kill(), add = TRUE)
  watchdog <- later::later(function() interrupt(), 15)  # never hang
  t0 <- Sys.time()
  expect_true(service(0))
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 14)
  expect_identical(hits, 2L)
  p$wait(5000)
  expect_identical(p$read_all_output(), "ss")
  watchdog()
  # service(ms) returns within about ms when nothing happens.
  t1 <- Sys.time()
  service(200)
  expect_lt(as.numeric(Sys.time() - t1, units = "secs"), 2)
})
