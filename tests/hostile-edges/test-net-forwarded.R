# X-Forwarded-For with bytes that are not ASCII: only the entries the right-to-left walk
# reaches may matter. A client writes the left part; one bad byte there must not make
# REMOTE_ADDR the proxy's address.

xff_raw <- function(...) {
  parts <- list(...)
  c(charToRaw("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"),
    unlist(lapply(parts, function(p) if (is.raw(p)) p else charToRaw(p))),
    charToRaw("\r\n"))
}

test_that("a non-ASCII byte left of the client does not change REMOTE_ADDR", {
  store <- new.env()
  app <- function(req) {
    store$addr <- req$REMOTE_ADDR
    store$scheme <- req[["rook.url_scheme"]]
    list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "ok")
  }
  s <- local_server(app, options = rookdOptions(trusted_proxies = "127.0.0.1"))
  get_addr <- function(req) {
    store$addr <- NULL
    out <- raw_http(s$getPort(), list(send_raw(req), response()))
    expect_identical(out$responses[[1]]$status, 200L)
    store$addr
  }
  # nginx's $proxy_add_x_forwarded_for: what the client sent, ", ", the client's address.
  expect_identical(get_addr(xff_raw("X-Forwarded-For: ", as.raw(0xff), ", 203.0.113.7\r\n")), "203.0.113.7")
  expect_identical(get_addr(xff_raw("X-Forwarded-For: 6.6.6.", as.raw(c(0xc3, 0xa9)), ", 203.0.113.7\r\n",
                                    "X-Forwarded-Proto: ", as.raw(0xfe), ", https\r\n")), "203.0.113.7")
  expect_identical(store$scheme, "https")
  # Separate fields: the client's, then the proxy's.
  expect_identical(get_addr(xff_raw("X-Forwarded-For: 1.2.3.4", as.raw(0xff), "\r\n",
                                    "X-Forwarded-For: 203.0.113.7\r\n")), "203.0.113.7")
  expect_identical(get_addr(xff_raw("Forwarded: for=", as.raw(0xff), ", for=203.0.113.8\r\n")), "203.0.113.8")
  # A bad entry the walk reaches: no forwarded address (the peer's stays).
  expect_identical(get_addr(xff_raw("X-Forwarded-For: 203.0.113.7, 10.0.0.", as.raw(0xff), "\r\n")), "127.0.0.1")
})
