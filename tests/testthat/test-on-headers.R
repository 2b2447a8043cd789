# app$onHeaders: runs when the headers are in, before the body is read.

limit_app <- function(store, limit = 1000) {
  store$calls <- 0L
  store$on_headers <- 0L
  list(
    onHeaders = function(req) {
      store$on_headers <- store$on_headers + 1L
      store$oh_env <- req
      len <- suppressWarnings(as.numeric(req$CONTENT_LENGTH %||% "0"))
      if (!is.na(len) && len > limit) {
        return(list(status = 413L, headers = list("Content-Type" = "text/plain"),
                    body = "too big for me"))
      }
      req$marked_by_on_headers <- "yes"
      NULL
    },
    call = function(req) {
      store$calls <- store$calls + 1L
      store$call_env <- req
      body <- req[["rook.input"]]$read()
      list(status = 200L, headers = list("Content-Type" = "text/plain"),
           body = paste0("got ", length(body), " bytes, mark=", req$marked_by_on_headers %||% "none"))
    }
  )
}

test_that("onHeaders rejects with 413 before the body is sent", {
  store <- new.env()
  s <- local_server(limit_app(store))
  # The body (50 MB announced) is never sent: the answer must come anyway.
  out <- raw_http(s$getPort(), list(
    send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n",
         "Content-Length: 52428800\r\n\r\n"),
    response()
  ), timeout = 10)
  expect_null(out$error)
  expect_identical(out$responses[[1]]$status, 413L)
  expect_identical(out$responses[[1]]$text, "too big for me")
  expect_identical(store$on_headers, 1L)
  expect_identical(store$calls, 0L)
  # And a small upload goes through to call().
  r <- http_req(server_url(s, "/small"), body = strrep("a", 100))
  expect_identical(r$status, 200L)
  expect_identical(r$text, "got 100 bytes, mark=yes")
  expect_identical(store$calls, 1L)
})

test_that("onHeaders returning NULL passes the same env on to call()", {
  store <- new.env()
  s <- local_server(limit_app(store))
  r <- http_req(server_url(s, "/pass?x=1"), body = "hello", headers = "X-Test: 1")
  expect_identical(r$status, 200L)
  expect_identical(r$text, "got 5 bytes, mark=yes")
  expect_true(is.environment(store$oh_env))
  expect_true(identical(store$oh_env, store$call_env))
  expect_identical(store$call_env$QUERY_STRING, "x=1")
  expect_identical(store$call_env$HTTP_X_TEST, "1")
  # The env seen by onHeaders had every Rook variable already (except the body).
  expect_identical(store$oh_env$PATH_INFO, "/pass")
  expect_identical(store$oh_env$CONTENT_LENGTH, "5")
  # Nothing left pending once the request is done.
  expect_identical(rookd:::rookd_stats()$pending_envs, 0L)
})

test_that("GET requests (no body) also go through onHeaders then call", {
  store <- new.env()
  s <- local_server(limit_app(store))
  for (i in 1:3) expect_identical(http_req(server_url(s, "/g"))$text, "got 0 bytes, mark=yes")
  expect_identical(store$on_headers, 3L)
  expect_identical(store$calls, 3L)
})

test_that("Expect: 100-continue is answered only after onHeaders allows", {
  store <- new.env()
  app <- limit_app(store)
  inner <- app$onHeaders
  app$onHeaders <- function(req) {
    Sys.sleep(0.5)  # onHeaders deciding takes a while: no 100 may be sent meanwhile
    store$oh_done <- as.numeric(Sys.time())
    inner(req)
  }
  s <- local_server(app)
  out <- raw_http(s$getPort(), list(
    send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"),
    read_head(),
    send("0123456789"),
    response()
  ))
  expect_null(out$error)
  interim <- out$steps[[2]]
  expect_match(interim$lines[1], "^HTTP/1.1 100 Continue")
  expect_gte(interim$t_abs, store$oh_done - 0.05)
  expect_gte(interim$t - out$steps[[1]]$t, 0.45)
  expect_identical(out$responses[[1]]$status, 200L)
  expect_identical(out$responses[[1]]$text, "got 10 bytes, mark=yes")
})

test_that("Expect: 100-continue with a rejecting onHeaders gets the final answer, no 100", {
  store <- new.env()
  s <- local_server(limit_app(store, limit = 5))
  out <- raw_http(s$getPort(), list(
    send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\nExpect: 100-continue\r\n\r\n"),
    read_head()
  ))
  expect_null(out$error)
  expect_match(out$steps[[2]]$lines[1], "^HTTP/1.1 413 ")
  expect_identical(store$calls, 0L)
  # curl (which sends Expect for big uploads) sees the 413 without uploading.
  big <- as.raw(rep(1L, 2e6))
  r <- http_req(server_url(s, "/curl"), body = big, headers = "Expect: 100-continue")
  expect_identical(r$status, 413L)
  expect_identical(store$calls, 0L)
})

test_that("an error or a malformed answer in onHeaders gives 500", {
  s <- local_server(list(
    onHeaders = function(req) {
      if (req$PATH_INFO == "/err") stop("onheaders-secret")
      if (req$PATH_INFO == "/bad") return("not a response")
      NULL
    },
    call = function(req) list(status = 200L, headers = list(), body = "called")
  ))
  r <- http_req(server_url(s, "/err"))
  expect_identical(r$status, 500L)
  expect_false(grepl("onheaders-secret", r$text))
  expect_identical(http_req(server_url(s, "/bad"))$status, 500L)
  expect_identical(http_req(server_url(s, "/ok"))$text, "called")
  expect_identical(rookd:::rookd_stats()$pending_envs, 0L)
})

test_that("onHeaders that is not a function is an R error", {
  expect_error(startServer("127.0.0.1", 0, list(call = text_app(), onHeaders = "nope")),
               "onHeaders")
})

test_that("a client that leaves after onHeaders leaves nothing pending", {
  store <- new.env()
  s <- local_server(limit_app(store))
  out <- raw_http(s$getPort(), list(
    send("POST /leave HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial"),
    client_sleep(0.5)
  ))
  expect_null(out$error)
  wait_until(function() store$on_headers == 1L, timeout = 5, what = "onHeaders")
  wait_until(function() rookd:::rookd_stats()$pending_envs == 0L, timeout = 5,
             what = "the abandoned request to be forgotten")
  expect_identical(store$calls, 0L)
})

test_that("the unread body of a rejected request is never parsed as a new request", {
  store <- new.env()
  store$seen <- character()
  s <- local_server(list(
    onHeaders = function(req) {
      store$seen <- c(store$seen, paste("onHeaders", req$PATH_INFO))
      if (req$PATH_INFO == "/reject") list(status = 413L, headers = list(), body = "no") else NULL
    },
    call = function(req) {
      store$seen <- c(store$seen, paste("call", req$PATH_INFO))
      list(status = 200L, headers = list(), body = "ok")
    }
  ))
  smuggled <- "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
  out <- raw_http(s$getPort(), list(
    send("POST /reject HTTP/1.1\r\nHost: x\r\nContent-Length: ", nchar(smuggled), "\r\n\r\n"),
    response(),
    send(smuggled),
    client_sleep(0.3),
    read_all()
  ))
  expect_identical(out$responses[[1]]$status, 413L)
  pump_for(0.2)
  expect_identical(store$seen, "onHeaders /reject")
  # The server may close the connection (then the client's send can fail): either way,
  # no answer to the smuggled request.
  after <- if (length(out$steps) >= 5) out$steps[[5]]$text %||% "" else ""
  expect_false(grepl("200 OK", after))
})
