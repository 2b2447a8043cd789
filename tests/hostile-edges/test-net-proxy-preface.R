# h2c behind the PROXY protocol, when the PROXY header, the HTTP/2 preface and SETTINGS
# arrive in one read (HAProxy in TCP mode forwarding an h2c client does exactly this).

test_that("PROXY v1 + preface + SETTINGS in one write: served as HTTP/2", {
  app <- function(req) {
    list(status = 200L, headers = list("Content-Type" = "text/plain"),
         body = paste(req$SERVER_PROTOCOL, req$REMOTE_ADDR, req$REMOTE_PORT, req$HTTP_COOKIE %||% "-", sep = "|"))
  }
  s <- local_server(app, options = rookdOptions(proxy_protocol = TRUE, trusted_proxies = "127.0.0.1"))
  v1 <- to_hex(charToRaw("PROXY TCP4 203.0.113.9 10.0.0.1 4711 80\r\n"))
  r <- net_py("cookies", s$getPort(), "/", v1)
  expect_identical(r$status, "200")
  expect_identical(r$body, "HTTP/2.0|203.0.113.9|4711|a=1; b=2; c=3; d=4")
  v2 <- to_hex(proxy_v2("198.51.100.3", "10.0.0.1", 1234, 80))
  r <- net_py("cookies", s$getPort(), "/", v2)
  expect_identical(r$status, "200")
  expect_identical(r$body, "HTTP/2.0|198.51.100.3|1234|a=1; b=2; c=3; d=4")
  # HTTP/1.1 in the same read as the header still works.
  out <- raw_http(s$getPort(), list(send("PROXY TCP4 203.0.113.9 10.0.0.1 4711 80\r\n", get_request("/")),
                                    response()))
  expect_identical(out$responses[[1]]$text, "HTTP/1.1|203.0.113.9|4711|-")
})
