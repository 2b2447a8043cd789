# rookdOptions(): defaults, validation, and that the limits are enforced.

test_that("rookdOptions() has documented defaults and prints", {
  o <- rookdOptions()
  expect_s3_class(o, "rookd_options")
  expect_identical(o$max_body_bytes, 100 * 1024^2)
  expect_identical(o$max_header_bytes, 96 * 1024)
  expect_identical(o$shutdown_grace, 5)
  expect_false(o$query_string_question_mark)
  expect_true(o$compression)
  expect_identical(o$ws_allowed_origins, character(0))
  expect_output(print(o), "max_body_bytes")
  expect_output(print(o), "(none)", fixed = TRUE)
  o2 <- rookdOptions(max_body_bytes = 10, header_timeout = Inf, ws_subprotocols = c("a", "b"))
  expect_identical(o2$max_body_bytes, 10)
  expect_identical(o2$header_timeout, Inf)
  expect_identical(o2$ws_subprotocols, c("a", "b"))
  expect_identical(o2$max_headers, 100)
})

test_that("bad option values are R errors naming the option", {
  expect_error(rookdOptions(max_body_bytes = 0), "`max_body_bytes` must be a single whole number in [1, 1099511627776]", fixed = TRUE)
  expect_error(rookdOptions(max_body_bytes = -5), "`max_body_bytes`")
  expect_error(rookdOptions(max_body_bytes = 1.5), "`max_body_bytes`")
  expect_error(rookdOptions(max_body_bytes = "big"), "`max_body_bytes`")
  expect_error(rookdOptions(max_headers = NA), "`max_headers`")
  expect_error(rookdOptions(threads = c(1, 2)), "`threads`")
  expect_error(rookdOptions(header_timeout = -1), "`header_timeout` must be a single number of seconds")
  expect_error(rookdOptions(body_timeout = "10"), "`body_timeout`")
  expect_error(rookdOptions(query_string_question_mark = NA), "`query_string_question_mark` must be TRUE or FALSE")
  expect_error(rookdOptions(compression = "yes"), "`compression`")
  expect_error(rookdOptions(ws_allowed_origins = 1), "`ws_allowed_origins` must be a character vector")
  expect_error(rookdOptions(nonsense = 1), "unused argument")
  expect_error(startServer("127.0.0.1", 0, text_app(), options = list(max_body_bytes = -1)),
               "`max_body_bytes`")
})

test_that("options may be given as a plain list", {
  store <- new.env()
  s <- local_server(function(req) {
    store$qs <- req$QUERY_STRING
    list(status = 200L, headers = list(), body = "ok")
  }, options = list(query_string_question_mark = TRUE))
  http_req(server_url(s, "/?z=9"))
  expect_identical(store$qs, "?z=9")
})

test_that("max_body_bytes: 413 for a declared or a chunked body that is too large", {
  calls <- 0L
  s <- local_server(function(req) {
    calls <<- calls + 1L
    list(status = 200L, headers = list(), body = as.character(length(req[["rook.input"]]$read())))
  }, options = rookdOptions(max_body_bytes = 1000))
  expect_identical(http_req(server_url(s), body = strrep("x", 1000))$text, "1000")
  r <- http_req(server_url(s), body = strrep("x", 1001))
  expect_identical(r$status, 413L)
  # Declared too large: refused without the body being sent.
  out <- raw_http(s$getPort(), list(
    send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n"), response()))
  expect_identical(out$responses[[1]]$status, 413L)
  # Chunked: refused while reading.
  f <- tempfile()
  on.exit(unlink(f), add = TRUE)
  writeBin(as.raw(rep(65L, 5000)), f)
  out2 <- raw_http(s$getPort(), list(
    send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
    send_file(f, chunked = TRUE, chunk_size = 500), response()))
  expect_identical(out2$responses[[1]]$status, 413L)
  expect_identical(calls, 1L)
})

test_that("max_header_bytes and max_headers: 431", {
  s <- local_server(text_app(), options = rookdOptions(max_header_bytes = 8192, max_headers = 20))
  expect_identical(http_req(server_url(s), headers = "X-Small: 1")$status, 200L)
  out <- raw_http(s$getPort(), list(
    send(get_request("/", extra = paste0("X-Big: ", strrep("a", 20000)))), response()))
  expect_identical(out$responses[[1]]$status, 431L)
  out2 <- raw_http(s$getPort(), list(
    send(get_request("/", extra = sprintf("X-H%d: v", 1:40))), response()))
  expect_identical(out2$responses[[1]]$status, 431L)
})

test_that("body_timeout: a body that stops arriving gets 408", {
  calls <- 0L
  s <- local_server(function(req) {
    calls <<- calls + 1L
    list(status = 200L, headers = list(), body = "x")
  }, options = rookdOptions(body_timeout = 1))
  t0 <- Sys.time()
  out <- raw_http(s$getPort(), list(
    send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a little"), response()),
    timeout = 10)
  elapsed <- as.numeric(Sys.time() - t0, units = "secs")
  expect_null(out$error)
  expect_identical(out$responses[[1]]$status, 408L)
  expect_lt(elapsed, 6)
  expect_identical(calls, 0L)
})

test_that("header_timeout: a head that never completes gets 408 and a close", {
  s <- local_server(text_app(), options = rookdOptions(header_timeout = 1))
  t0 <- Sys.time()
  out <- raw_http(s$getPort(), list(send("GET / HTTP/1.1\r\nHost: x\r\n"), read_all()), timeout = 10)
  elapsed <- as.numeric(Sys.time() - t0, units = "secs")
  expect_null(out$steps[[2]]$timeout)
  expect_lt(elapsed, 6)
  expect_match(out$steps[[2]]$text %||% "", "^HTTP/1.1 408 Request Timeout\r\n")
})

test_that("keepalive_timeout: an idle keep-alive connection is closed without a word", {
  s <- local_server(text_app(), options = rookdOptions(keepalive_timeout = 1))
  t0 <- Sys.time()
  out <- raw_http(s$getPort(), list(send(get_request("/")), response(), read_all()), timeout = 10)
  elapsed <- as.numeric(Sys.time() - t0, units = "secs")
  expect_identical(out$responses[[1]]$status, 200L)
  expect_null(out$steps[[3]]$timeout)
  expect_identical(out$steps[[3]]$text %||% "", "")
  expect_gt(elapsed, 0.8)
  expect_lt(elapsed, 6)
})

test_that("compression: gzip for large text when accepted, never when turned off", {
  text <- strrep("compressible text ", 500)
  app <- function(req) list(status = 200L, headers = list("Content-Type" = "text/plain"), body = text)
  s <- local_server(app)
  r <- http_req(server_url(s), opts = list(accept_encoding = "gzip"))
  expect_identical(hdr(r, "content-encoding"), "gzip")
  expect_identical(r$text, text)  # curl decoded it
  # A client that does not ask for gzip (the curl package always does) gets plain text.
  out <- raw_http(s$getPort(), list(send(get_request("/")), response(),
                                    send(get_request("/", extra = "Accept-Encoding: identity")),
                                    response()))
  for (resp in out$responses) {
    expect_false("content-encoding" %in% names(resp$headers))
    expect_identical(resp$text, text)
  }
  s2 <- local_server(app, options = rookdOptions(compression = FALSE))
  r2 <- http_req(server_url(s2), opts = list(accept_encoding = "gzip"))
  expect_null(hdr(r2, "content-encoding"))
  expect_identical(r2$text, text)
})

test_that("max_queued_requests: excess requests get 503 with Retry-After while R is busy", {
  s <- local_server(function(req) list(status = 200L, headers = list(), body = "served"),
                    options = rookdOptions(max_queued_requests = 1))
  pool <- curl::new_pool(total_con = 10, host_con = 10)
  n <- 5
  res <- vector("list", n)
  for (i in seq_len(n)) local({
    j <- i
    curl::curl_fetch_multi(server_url(s, paste0("/q", j)), pool = pool,
                           handle = curl::new_handle(timeout = 10, forbid_reuse = TRUE),
                           done = function(r) res[[j]] <<- r, fail = function(e) res[[j]] <<- e)
  })
  # R does not run the app meanwhile: only one request may wait for it.
  deadline <- Sys.time() + 8
  while (sum(!vapply(res, is.null, TRUE)) < n - 1 && Sys.time() < deadline) {
    curl::multi_run(timeout = 0, poll = TRUE, pool = pool)
    Sys.sleep(0.01)
  }
  # Now let R serve the one that waited.
  while (any(vapply(res, is.null, TRUE)) && Sys.time() < deadline + 5) {
    curl::multi_run(timeout = 0, poll = TRUE, pool = pool)
    later::run_now(0.005)
  }
  st <- vapply(res, function(r) r$status_code %||% NA_integer_, 0L)
  expect_identical(sort(st), c(200L, rep(503L, n - 1)))
  busy <- res[[which(st == 503L)[1]]]
  expect_match(rawToChar(busy$headers), "Retry-After: 1", ignore.case = TRUE)
})
