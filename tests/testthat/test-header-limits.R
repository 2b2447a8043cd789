# Request heads as large as httpuv accepts (its parser caps the head at 80 KiB) reach the
# app whole; rookd's limit (max_header_bytes, 96 KiB by default) answers 431 beyond it.

# An app that shows what it received: for each header of interest, its HTTP_* variable's
# length and its HEADERS entry's length.
hl_app <- function(seen) {
  function(req) {
    seen$env <- mget(grep("^HTTP_", ls(req), value = TRUE), envir = req)
    seen$headers <- req$HEADERS
    list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "ok")
  }
}

test_that("an 80,000-byte header value reaches the app, alone and joined with a repeat", {
  seen <- new.env()
  s <- local_server(hl_app(seen))
  long <- strrep(".", 80000)
  r <- http_req(server_url(s), headers = paste0("Test-Header: ", long))
  expect_identical(r$status, 200L)
  expect_identical(seen$env$HTTP_TEST_HEADER, long)
  expect_identical(unname(seen$headers["test-header"]), long)

  a <- strrep("a", 100)
  b <- strrep("b", 80000)
  r <- http_req(server_url(s), headers = c(paste0("Test-Header: ", a), paste0("Test-Header: ", b)))
  expect_identical(r$status, 200L)
  expect_identical(seen$env$HTTP_TEST_HEADER, paste0(a, ",", b))
})

test_that("eight 9,900-byte header names reach the app as HTTP_<NAME> and in HEADERS", {
  seen <- new.env()
  s <- local_server(hl_app(seen))
  fields <- vapply(letters[1:8], function(x) strrep(x, 9900), "")
  r <- http_req(server_url(s), headers = paste0(fields, ": ", LETTERS[1:8]))
  expect_identical(r$status, 200L)
  expect_true(all(fields %in% names(seen$headers)))
  expect_identical(unname(seen$headers[fields]), LETTERS[1:8])
  vars <- paste0("HTTP_", toupper(fields))
  expect_true(all(vars %in% names(seen$env)))
  expect_identical(unname(unlist(seen$env[vars])), LETTERS[1:8])
})

test_that("a head just over max_header_bytes gets 431, and the server goes on serving", {
  seen <- new.env()
  s <- local_server(hl_app(seen))
  limit <- rookdOptions()$max_header_bytes
  expect_gte(limit, 80 * 1024)
  # The head is the request line, Host, the big header and the final CRLF.
  head_len <- function(value_len) {
    nchar(get_request("/", extra = paste0("X-Big: ", strrep("v", value_len))), "bytes")
  }
  fits <- limit - (head_len(0) - 0)
  out <- raw_http(s$getPort(), list(
    send(get_request("/", extra = paste0("X-Big: ", strrep("v", fits)))), response()))
  expect_identical(out$responses[[1]]$status, 200L)
  expect_identical(nchar(seen$env$HTTP_X_BIG), as.integer(fits))
  out <- raw_http(s$getPort(), list(
    send(get_request("/", extra = paste0("X-Big: ", strrep("v", fits + 1)))), response()))
  expect_identical(out$responses[[1]]$status, 431L)
  expect_identical(http_req(server_url(s))$status, 200L)
})

test_that("hyper's read buffer follows max_header_bytes: a raised limit accepts a 200 KB head", {
  seen <- new.env()
  s <- local_server(hl_app(seen), options = rookdOptions(max_header_bytes = 256 * 1024))
  long <- strrep("z", 200000)
  r <- http_req(server_url(s), headers = paste0("X-Huge: ", long))
  expect_identical(r$status, 200L)
  expect_identical(seen$env$HTTP_X_HUGE, long)
  out <- raw_http(s$getPort(), list(
    send(get_request("/", extra = paste0("X-Huge: ", strrep("z", 270000)))), response()))
  expect_identical(out$responses[[1]]$status, 431L)
})

test_that("a large head on a kept-alive connection that was parked while idle is read whole", {
  seen <- new.env()
  s <- local_server(hl_app(seen))
  long <- strrep("w", 80000)
  out <- raw_http(s$getPort(), list(
    send(get_request("/")), response(),
    client_sleep(0.6),  # idle connections are parked after 250 ms
    send(get_request("/", extra = paste0("X-Long: ", long))), response()))
  expect_null(out$error)
  expect_identical(vapply(out$responses, function(r) r$status, 1L), c(200L, 200L))
  expect_identical(seen$env$HTTP_X_LONG, long)
})
