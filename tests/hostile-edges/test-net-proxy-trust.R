# proxy_protocol = TRUE needs a trust list: without one any client could claim any
# address (127.0.0.1 included, and read metrics_path). "*" says every peer is a proxy.

test_that("proxy_protocol = TRUE without trusted_proxies is refused, naming what to set", {
  expect_error(rookdOptions(proxy_protocol = TRUE), "proxy_protocol.*trusted_proxies")
  expect_error(startServer("127.0.0.1", 0, function(req) NULL, options = list(proxy_protocol = TRUE)),
               "trusted_proxies")
  expect_error(rookdOptions(trusted_proxies = "**"), "trusted_proxies")
  expect_s3_class(rookdOptions(proxy_protocol = TRUE, trusted_proxies = "*"), "rookd_options")
})

test_that("trusted_proxies = \"*\": every peer may send a PROXY header; its client's X-Forwarded-For is not believed", {
  store <- new.env()
  app <- function(req) {
    store$addr <- req$REMOTE_ADDR
    list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "ok")
  }
  s <- local_server(app, options = rookdOptions(proxy_protocol = TRUE, trusted_proxies = "*",
                                                metrics_path = "/metrics"))
  out <- raw_http(s$getPort(), list(send("PROXY TCP4 203.0.113.9 10.0.0.1 4711 80\r\n",
                                         get_request("/", extra = "X-Forwarded-For: 6.6.6.6")), response()))
  expect_identical(out$responses[[1]]$status, 200L)
  expect_identical(store$addr, "203.0.113.9")
  # The client named by the PROXY header is not local: no metrics for it.
  out <- raw_http(s$getPort(), list(send("PROXY TCP4 203.0.113.9 10.0.0.1 4711 80\r\n",
                                         get_request("/metrics", extra = "X-Forwarded-For: 127.0.0.1")), response()))
  expect_identical(out$responses[[1]]$status, 403L)
})

test_that("behind a trusted proxy, metrics_allow judges the client it names", {
  s <- local_server(function(req) list(status = 200L, headers = list(), body = "ok"),
                    options = rookdOptions(trusted_proxies = "127.0.0.1", metrics_path = "/metrics"))
  r <- http_req(server_url(s, "/metrics"), headers = "X-Forwarded-For: 203.0.113.5")
  expect_identical(r$status, 403L)
  r <- http_req(server_url(s, "/metrics"))
  expect_identical(r$status, 200L)
})
