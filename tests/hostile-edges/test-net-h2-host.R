# HTTP/2: a Host header besides :authority must name the same host, once (RFC 9113,
# 8.3.1); else 400. Two names for one request let a proxy route (or a cache key) by one
# while the app's HTTP_HOST says the other.

test_that("HTTP/2 Host that differs from :authority, or twice: 400; agreeing: served", {
  app <- function(req) list(status = 200L, headers = list("Content-Type" = "text/plain"), body = req$HTTP_HOST)
  s <- local_server(app)
  auth <- sprintf("127.0.0.1:%d", s$getPort())
  r <- net_py("host", s$getPort(), "/", "evil.example")
  expect_identical(r$status, "400")
  r <- net_py("host", s$getPort(), "/", auth, auth)
  expect_identical(r$status, "400")
  r <- net_py("host", s$getPort(), "/", auth)
  expect_identical(r$status, "200")
  expect_identical(r$body, auth)
  r <- net_py("host", s$getPort(), "/")
  expect_identical(r$body, auth)
})
