# proxy_protocol = TRUE: every connection starts with a PROXY v1 or v2 header (raw
# sockets from Python), whose client address becomes REMOTE_ADDR.

pp_app <- function(store) {
  function(req) {
    store$addr <- req$REMOTE_ADDR
    store$port <- req$REMOTE_PORT
    list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "ok")
  }
}

pp_v2 <- function(src, dst, sport, dport, command = 0x21) {
  addrs <- c(as.raw(as.integer(strsplit(src, ".", fixed = TRUE)[[1]])),
             as.raw(as.integer(strsplit(dst, ".", fixed = TRUE)[[1]])),
             as.raw(c(sport %/% 256, sport %% 256, dport %/% 256, dport %% 256)),
             as.raw(c(0x04, 0x00, 0x00)))  # a NOOP TLV, skipped
  c(as.raw(c(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a)),
    as.raw(c(command, 0x11, 0x00, length(addrs))), addrs)
}

test_that("PROXY v1 and v2 headers set REMOTE_ADDR; keep-alive requests after them too", {
  store <- new.env()
  s <- local_server(pp_app(store), options = rookdOptions(proxy_protocol = TRUE, trusted_proxies = "127.0.0.1"))
  out <- raw_http(s$getPort(), list(
    send("PROXY TCP4 203.0.113.9 10.0.0.1 4711 80\r\n", get_request("/")), response(),
    send(get_request("/again")), response()))
  expect_identical(vapply(out$responses, function(r) r$status, 1L), c(200L, 200L))
  expect_identical(store$addr, "203.0.113.9")
  expect_identical(store$port, "4711")
  out <- raw_http(s$getPort(), list(send("PROXY TCP6 2001:db8::5 ::1 5000 80\r\n"),
                                    send(get_request("/")), response()))
  expect_identical(out$responses[[1]]$status, 200L)
  expect_identical(store$addr, "2001:db8::5")
  out <- raw_http(s$getPort(), list(send_raw(c(pp_v2("198.51.100.3", "10.0.0.1", 1234, 80),
                                               charToRaw(get_request("/")))), response()))
  expect_identical(out$responses[[1]]$status, 200L)
  expect_identical(store$addr, "198.51.100.3")
  expect_identical(store$port, "1234")
  # LOCAL (a health check) and UNKNOWN keep the socket's address.
  out <- raw_http(s$getPort(), list(send_raw(c(pp_v2("1.1.1.1", "2.2.2.2", 1, 2, command = 0x20),
                                               charToRaw(get_request("/")))), response()))
  expect_identical(out$responses[[1]]$status, 200L)
  expect_identical(store$addr, "127.0.0.1")
  out <- raw_http(s$getPort(), list(send("PROXY UNKNOWN\r\n", get_request("/")), response()))
  expect_identical(store$addr, "127.0.0.1")
})

# Nothing came back: no response, no bytes (the client's own send may also fail with a
# reset when the server closes first, so a missing step counts as nothing received).
got_nothing <- function(out) {
  length(out$responses) == 0 &&
    all(vapply(out$steps, function(st) is.null(st$text) || identical(st$text, ""), TRUE))
}

test_that("a connection without a valid PROXY header is closed unanswered", {
  store <- new.env()
  s <- local_server(pp_app(store), options = rookdOptions(proxy_protocol = TRUE, trusted_proxies = "127.0.0.1", header_timeout = 1))
  for (start in c(get_request("/"), "PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n",
                  "PROXY TCP4 1.2.3.4\r\n", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n")) {
    store$addr <- NULL
    out <- raw_http(s$getPort(), list(send(start, get_request("/")), read_all()))
    expect_true(got_nothing(out))
    expect_null(store$addr)
  }
  # Nothing at all within header_timeout: closed.
  out <- raw_http(s$getPort(), list(read_all()))
  expect_true(got_nothing(out))
})

test_that("with trusted_proxies, PROXY headers are taken from trusted peers only", {
  store <- new.env()
  s <- local_server(pp_app(store), options = rookdOptions(proxy_protocol = TRUE, trusted_proxies = "10.9.9.9"))
  out <- raw_http(s$getPort(), list(send("PROXY TCP4 203.0.113.9 10.0.0.1 4711 80\r\n", get_request("/")),
                                    read_all()))
  expect_true(got_nothing(out))
  expect_null(store$addr)
})
