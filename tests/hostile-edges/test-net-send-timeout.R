# send_timeout: a client that stops reading is cut after `send_timeout` without write
# progress, over HTTP/1.1 (its socket stays full) and HTTP/2 (a zero flow-control window
# on several streams), while the server keeps serving others; what it held (50 MB R
# vectors lent to the engine, the connection) is given back.

big_app <- function() {
  big <- as.raw(rep_len(0:255, 50e6))
  mid <- as.raw(rep_len(0:255, 8e6))
  function(req) {
    if (req$PATH_INFO == "/big") {
      return(list(status = 200L, headers = list("Content-Type" = "application/octet-stream"), body = big))
    }
    if (req$PATH_INFO == "/mid") {
      return(list(status = 200L, headers = list("Content-Type" = "application/octet-stream"), body = mid))
    }
    list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "small")
  }
}

lent <- function() rookd:::rookd_stats()$lent_vectors

test_that("send_timeout is validated", {
  expect_error(rookdOptions(send_timeout = -1), "send_timeout")
  expect_error(rookdOptions(send_timeout = "a"), "send_timeout")
  expect_identical(rookdOptions()$send_timeout, 30)
})

test_that("HTTP/1.1: a reader that stops is cut after send_timeout; others are served", {
  s <- local_server(big_app(), options = rookdOptions(send_timeout = 2))
  p <- net_py_bg("h1stall", s$getPort(), "/big", "10")
  wait_until(function() lent() >= 1, 15, "the answer to be lent to the engine")
  # Others are served meanwhile.
  r <- http_req(server_url(s, "/small"), forbid_reuse = TRUE)
  expect_identical(r$text, "small")
  t0 <- Sys.time()
  wait_until(function() lent() == 0 && serverStats(s)$connections_open == 0, 15,
             "the stalled connection to be closed and its answer given back")
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 15)
  res <- net_py_result(p, 30)
  # The client then reads what the kernel still had, and the end: far less than 50 MB.
  expect_equal(res$length, 50e6)
  expect_lt(res$got, 50e6)
  expect_true(res$ended %in% c("eof", "reset"))
})

test_that("HTTP/1.1: a slow but steady reader is served whole, whatever keepalive_timeout", {
  # The keep-alive wait used to start when the app's body was handed to hyper, so a large
  # answer still being written was cut keepalive_timeout later, by no documented rule.
  s <- local_server(big_app(), options = rookdOptions(send_timeout = 2, keepalive_timeout = 1))
  res <- net_py("h1slow", s$getPort(), "/mid", "2000000", timeout = 60)
  expect_identical(res$ended, "complete")
  expect_equal(res$got, 8e6)
  wait_until(function() lent() == 0, 10, "the answer to be given back")
})

test_that("HTTP/2: streams held by a zero window are closed after send_timeout; others are served", {
  s <- local_server(big_app(), options = rookdOptions(send_timeout = 2))
  res <- net_py("h2stall", s$getPort(), "5", "/big", "/small", "20", timeout = 40)
  expect_identical(res$heads, 5L)
  expect_identical(res$data, 0L)
  expect_false(is.null(res$closed_after))
  # 1 to 1.5 send_timeout after the stall began (bounds kept loose: a busy machine).
  expect_gt(res$closed_after, 1.5)
  expect_lt(res$closed_after, 15)
  expect_identical(res$other, "200")
  wait_until(function() lent() == 0 && serverStats(s)$connections_open == 0, 10,
             "the answers to be given back")
  # The server still answers over HTTP/2.
  r <- net_py("cookies", s$getPort(), "/small")
  expect_identical(r$body, "small")
})

test_that("HTTP/2 stall on a busy machine: still closed, others still served", {
  skip_if_slow_disabled()
  s <- local_server(big_app(), options = rookdOptions(send_timeout = 2))
  with_busy_cores({
    res <- net_py("h2stall", s$getPort(), "3", "/big", "/small", "25", timeout = 45)
  })
  expect_false(is.null(res$closed_after))
  expect_identical(res$other, "200")
  wait_until(function() lent() == 0, 10, "the answers to be given back")
})

test_that("HTTP/2 PING and SETTINGS floods from a client that reads nothing end after send_timeout", {
  # Each PING and SETTINGS asks for an answer; a client that never reads fills the socket.
  # Before send_timeout such a connection stayed open (h2 stops reading, but never closes).
  s <- local_server(big_app(), options = rookdOptions(send_timeout = 2))
  for (kind in c("ping", "settings")) {
    res <- net_py("flood", s$getPort(), kind, "20", timeout = 40)
    expect_false(is.null(res$closed_after), label = kind)
    expect_lt(res$closed_after %||% Inf, 15)
  }
  wait_until(function() serverStats(s)$connections_open == 0, 10, "the flooding connections to be closed")
  expect_identical(net_py("cookies", s$getPort(), "/small")$body, "small")
})

test_that("WebSocket: a client that reads nothing is closed after send_timeout (with some grace)", {
  msg <- as.raw(rep_len(1:200, 1e5))
  app <- list(call = function(req) list(status = 200L, headers = list(), body = "x"),
              onWSOpen = function(ws) {
                tick <- function() if (ws$isOpen()) { ws$send(msg); later::later(tick, 0.01) }
                tick()
              })
  # Outgoing limits far away: only send_timeout can close it.
  s <- local_server(app, options = rookdOptions(send_timeout = 2, ws_max_outgoing_bytes = 1024^3,
                                                max_inflight_bytes = 1024^3))
  p <- net_py_bg("wsstall", s$getPort(), "25")
  wait_until(function() serverStats(s)$websockets_open == 1, 10, "the WebSocket to open")
  wait_until(function() serverStats(s)$websockets_open == 0, 20, "the stalled WebSocket to be closed")
  expect_true(p$is_alive())  # closed by the server, not because the client left
})
