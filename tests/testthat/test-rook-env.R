# The Rook environment handed to the app: every variable of the Rook spec, over IPv4
# and IPv6, for bodies sent with Content-Length and chunked.

# An app that keeps a copy of everything it saw (rook.input read inside the call).
capture_app <- function(store) {
  function(req) {
    vars <- setdiff(ls(req, all.names = TRUE), c("rook.input", "rook.errors"))
    store$env <- mget(vars, envir = req)
    store$req <- req
    store$input_class <- class(req[["rook.input"]])
    store$errors <- req[["rook.errors"]]
    store$body <- req[["rook.input"]]$read()
    list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "captured")
  }
}

check_env_basics <- function(e, host, port, client_port) {
  expect_identical(e$REQUEST_METHOD, "GET")
  expect_identical(e$SCRIPT_NAME, "")
  # PATH_INFO is the raw path: percent-encoding is left alone.
  expect_identical(e$PATH_INFO, "/a%20b/c%2Fd/")
  # QUERY_STRING per the Rook spec: without the "?".
  expect_identical(e$QUERY_STRING, "x=1&y=%20z&empty=")
  expect_identical(e$SERVER_NAME, host)
  expect_identical(e$SERVER_PORT, as.character(port))
  expect_identical(e$SERVER_PROTOCOL, "HTTP/1.1")
  expect_identical(e$REMOTE_ADDR, host)
  expect_identical(e$REMOTE_PORT, as.character(client_port))
  expect_identical(e$rook.version, "1.1-0")
  expect_identical(e$rook.url_scheme, "http")
  # Repeated headers are joined with ",".
  expect_identical(e$HTTP_X_MULTI, "one,two,three")
  expect_identical(e$HTTP_X_SINGLE, "Value With Caps")
  expect_identical(e$HTTP_HOST, "example.test:8080")
  expect_identical(e$HTTP_USER_AGENT, "rookd-tests")
  # HEADERS: a named character vector with lower-case names.
  expect_type(e$HEADERS, "character")
  expect_false(is.null(names(e$HEADERS)))
  expect_identical(names(e$HEADERS), tolower(names(e$HEADERS)))
  expect_identical(unname(e$HEADERS["x-multi"]), "one,two,three")
  expect_identical(unname(e$HEADERS["x-single"]), "Value With Caps")
  expect_identical(unname(e$HEADERS["host"]), "example.test:8080")
  # A GET without a body has no CONTENT_TYPE / CONTENT_LENGTH (or an empty one).
  expect_true(is.null(e$CONTENT_LENGTH) || e$CONTENT_LENGTH %in% c("", "0"))
}

env_request <- function() {
  get_request("/a%20b/c%2Fd/?x=1&y=%20z&empty=", host = "example.test:8080",
              extra = c("X-Multi: one", "X-Single: Value With Caps", "X-Multi: two",
                        "X-Multi: three", "User-Agent: rookd-tests"))
}

for (host in c("127.0.0.1", "::1")) {
  test_that(paste("every Rook variable is right over", if (host == "::1") "IPv6" else "IPv4"), {
    if (host == "::1") skip_if_no_ipv6()
    store <- new.env()
    s <- local_server(capture_app(store), host = host)
    out <- raw_http(s$getPort(), list(send(env_request()), response()), host = host)
    expect_null(out$error)
    expect_identical(out$responses[[1]]$status, 200L)
    expect_identical(out$responses[[1]]$text, "captured")
    check_env_basics(store$env, host, s$getPort(), out$local_port)
    expect_identical(store$input_class, "rookd_input")
    expect_identical(store$body, raw(0))
  })

  test_that(paste("the curl client sees the same env over", host), {
    if (host == "::1") skip_if_no_ipv6()
    store <- new.env()
    s <- local_server(capture_app(store), host = host)
    r <- http_req(server_url(s, "/p?q=1"), headers = c("X-Multi: a", "X-Multi: b"))
    expect_identical(r$status, 200L)
    e <- store$env
    expect_identical(e$SERVER_NAME, host)
    expect_identical(e$REMOTE_ADDR, host)
    expect_identical(e$SERVER_PORT, as.character(s$getPort()))
    expect_match(e$REMOTE_PORT, "^[0-9]+$")
    expect_false(identical(e$REMOTE_PORT, e$SERVER_PORT))
    expect_identical(e$HTTP_X_MULTI, "a,b")
    expect_identical(e$PATH_INFO, "/p")
    expect_identical(e$QUERY_STRING, "q=1")
  })
}

test_that("QUERY_STRING is empty without a query", {
  store <- new.env()
  s <- local_server(capture_app(store))
  http_req(server_url(s, "/no/query"))
  expect_identical(store$env$QUERY_STRING, "")
  expect_identical(store$env$PATH_INFO, "/no/query")
})

test_that("query_string_question_mark = TRUE keeps httpuv's leading '?'", {
  store <- new.env()
  s <- local_server(capture_app(store), options = rookdOptions(query_string_question_mark = TRUE))
  http_req(server_url(s, "/q?a=1&b=2"))
  expect_identical(store$env$QUERY_STRING, "?a=1&b=2")
  http_req(server_url(s, "/q"))
  expect_identical(store$env$QUERY_STRING, "")
  # The default server in the same process still follows the Rook spec.
  store2 <- new.env()
  s2 <- local_server(capture_app(store2))
  http_req(server_url(s2, "/q?a=1"))
  expect_identical(store2$env$QUERY_STRING, "a=1")
})

test_that("REQUEST_METHOD, CONTENT_TYPE and CONTENT_LENGTH for a POST with a body", {
  store <- new.env()
  s <- local_server(capture_app(store))
  body <- "name=rook&value=42"
  r <- http_req(server_url(s, "/form"), body = body,
                headers = c("Content-Type: application/x-www-form-urlencoded"))
  expect_identical(r$status, 200L)
  e <- store$env
  expect_identical(e$REQUEST_METHOD, "POST")
  expect_identical(e$CONTENT_TYPE, "application/x-www-form-urlencoded")
  expect_identical(e$CONTENT_LENGTH, as.character(nchar(body)))
  expect_identical(rawToChar(store$body), body)
  for (m in c("PUT", "DELETE", "PATCH", "OPTIONS")) {
    http_req(server_url(s, "/m"), method = m)
    expect_identical(store$env$REQUEST_METHOD, m)
  }
})

# A text body of several MB with \n and \r\n line endings, and the same as bytes.
big_text_file <- function(lines = 120000) {
  path <- tempfile(fileext = ".txt")
  x <- sprintf("line %06d %s", seq_len(lines), strrep("abcdefghij", 2))
  eol <- ifelse(seq_len(lines) %% 3 == 0, "\r\n", "\n")
  writeBin(charToRaw(paste0(x, eol, collapse = "")), path)
  list(path = path, lines = x)
}

# An app exercising rook.input: read(), rewind(), read(l), read_lines(n), read_lines().
input_app <- function(store) {
  function(req) {
    inp <- req[["rook.input"]]
    store$content_length <- req$CONTENT_LENGTH
    store$transfer_encoding <- req$HTTP_TRANSFER_ENCODING
    store$all <- inp$read()
    store$after_end <- inp$read()
    inp$rewind()
    store$first10 <- inp$read(10L)
    store$next5 <- inp$read(l = 5)
    inp$rewind()
    store$lines3 <- inp$read_lines(3L)
    store$rest_lines <- inp$read_lines()
    inp$rewind()
    store$all_lines <- inp$read_lines(n = -1L)
    inp$rewind()
    store$again <- inp$read(l = -1L)
    list(status = 200L, headers = list("Content-Type" = "text/plain"),
         body = as.character(length(store$all)))
  }
}

check_input <- function(store, f) {
  bytes <- readBin(f$path, "raw", file.size(f$path))
  expect_identical(store$content_length, as.character(length(bytes)))
  expect_identical(length(store$all), length(bytes))
  expect_true(identical(store$all, bytes))
  expect_identical(store$after_end, raw(0))
  expect_identical(store$first10, bytes[1:10])
  expect_identical(store$next5, bytes[11:15])
  expect_identical(store$lines3, f$lines[1:3])
  expect_identical(length(store$rest_lines), length(f$lines) - 3L)
  expect_identical(store$rest_lines, f$lines[-(1:3)])
  expect_identical(store$all_lines, f$lines)
  expect_true(identical(store$again, bytes))
}

test_that("rook.input reads a several-MB Content-Length body: read, read_lines, rewind", {
  f <- big_text_file()
  on.exit(unlink(f$path), add = TRUE)
  expect_gt(file.size(f$path), 3e6)
  store <- new.env()
  s <- local_server(input_app(store))
  size <- file.size(f$path)
  out <- raw_http(s$getPort(), list(
    send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: ",
         size, "\r\n\r\n"),
    send_file(f$path),
    response()
  ), timeout = 30)
  expect_null(out$error)
  expect_identical(out$responses[[1]]$status, 200L)
  expect_identical(out$responses[[1]]$text, format(size, scientific = FALSE))
  check_input(store, f)
  expect_null(store$transfer_encoding)
})

test_that("rook.input and CONTENT_LENGTH for a several-MB chunked upload", {
  f <- big_text_file()
  on.exit(unlink(f$path), add = TRUE)
  store <- new.env()
  s <- local_server(input_app(store))
  out <- raw_http(s$getPort(), list(
    send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n",
         "Transfer-Encoding: chunked\r\n\r\n"),
    send_file(f$path, chunked = TRUE, chunk_size = 100000),
    response()
  ), timeout = 30)
  expect_null(out$error)
  expect_identical(out$responses[[1]]$status, 200L)
  expect_identical(store$transfer_encoding, "chunked")
  check_input(store, f)
})

test_that("rook.input of a binary body via curl (Content-Length) is byte-exact", {
  store <- new.env()
  s <- local_server(input_app(store))
  set.seed(1)
  bytes <- as.raw(sample(0:255, 2.5e6, replace = TRUE))
  r <- http_req(server_url(s, "/bin"), body = bytes,
                headers = c("Content-Type: application/octet-stream"), timeout = 30)
  expect_identical(r$status, 200L)
  expect_identical(store$content_length, as.character(length(bytes)))
  expect_true(identical(store$all, bytes))
  expect_true(identical(store$again, bytes))
})

test_that("rook.errors has cat() and flush() writing to stderr", {
  got <- new.env()
  s <- local_server(function(req) {
    errs <- req[["rook.errors"]]
    got$has <- c(is.function(errs$cat), is.function(errs$flush))
    errs$cat("rook-errors-marker", 42, "\n")
    errs$flush()
    list(status = 200L, headers = list(), body = "ok")
  })
  msgs <- utils::capture.output(r <- http_req(server_url(s)), type = "message")
  expect_identical(r$status, 200L)
  expect_identical(got$has, c(TRUE, TRUE))
  expect_true(any(grepl("rook-errors-marker 42", msgs, fixed = TRUE)))
})

test_that("rook.errors goes to the process's stderr (child process)", {
  skip_on_cran()
  srv <- child_server(function(port) {
    library(rookd)
    s <- startServer("127.0.0.1", port, function(req) {
      req[["rook.errors"]]$cat("to-stderr", "from-app\n")
      req[["rook.errors"]]$flush()
      if (identical(req$PATH_INFO, "/quit")) interrupt()
      list(status = 200L, headers = list(), body = "ok")
    })
    service(0)
    s$stop()
  })
  r <- fetch_blocking(sprintf("http://127.0.0.1:%d/x", srv$port))
  expect_identical(r$status_code, 200L)
  fetch_blocking(sprintf("http://127.0.0.1:%d/quit", srv$port))
  srv$process$wait(10000)
  expect_false(srv$process$is_alive())
  err <- srv$process$read_all_error()
  expect_match(err, "to-stderr from-app", fixed = TRUE)
})

test_that("an IPv4 client of a server on '::' shows as a.b.c.d, not ::ffff:a.b.c.d", {
  skip_if_no_ipv6()
  store <- new.env()
  s <- tryCatch(startServer("::", 0, capture_app(store)), error = function(e) NULL)
  if (is.null(s)) skip("cannot listen on '::' here")
  on.exit(s$stop(), add = TRUE)
  out <- tryCatch(raw_http(s$getPort(), list(send(get_request("/v4")), response())),
                  error = function(e) NULL)
  if (is.null(out) || !is.null(out$error)) skip("the '::' socket does not accept IPv4 here (v6only)")
  expect_identical(out$responses[[1]]$status, 200L)
  expect_identical(store$env$REMOTE_ADDR, "127.0.0.1")
  expect_identical(store$env$REMOTE_PORT, as.character(out$local_port))
  expect_identical(store$env$SERVER_PORT, as.character(s$getPort()))
})

# SERVER_NAME must be usable to rebuild the URL (Rook spec; httpuv gives the address the
# connection arrived on), so a server bound to all interfaces must not report "0.0.0.0"/"::".
test_that("a server bound to all interfaces reports the address the request came to as SERVER_NAME", {
  store <- new.env()
  s <- local_server(capture_app(store), host = "0.0.0.0")
  r <- http_req(sprintf("http://127.0.0.1:%d/", s$getPort()))
  expect_identical(r$status, 200L)
  expect_identical(store$env$SERVER_PORT, as.character(s$getPort()))
  expect_identical(store$env$SERVER_NAME, "127.0.0.1")
  skip_if_no_ipv6()
  s6 <- tryCatch(startServer("::", 0, capture_app(store)), error = function(e) NULL)
  if (is.null(s6)) skip("cannot listen on '::' here")
  on.exit(s6$stop(), add = TRUE)
  r6 <- http_req(sprintf("http://[::1]:%d/", s6$getPort()))
  expect_identical(r6$status, 200L)
  expect_identical(store$env$REMOTE_ADDR, "::1")
  expect_identical(store$env$SERVER_NAME, "::1")
})

test_that("rook.input: read(0), read_lines(0), reading past the end, an empty body", {
  store <- new.env()
  s <- local_server(function(req) {
    inp <- req[["rook.input"]]
    store$r0 <- inp$read(0L)
    store$l0 <- inp$read_lines(0L)
    store$all <- inp$read(1e9)
    store$past <- inp$read(10L)
    store$lines_past <- inp$read_lines()
    list(status = 200L, headers = list(), body = "ok")
  })
  http_req(server_url(s), body = "abc\ndef")
  expect_identical(store$r0, raw(0))
  expect_identical(store$l0, character(0))
  expect_identical(rawToChar(store$all), "abc\ndef")
  expect_identical(store$past, raw(0))
  expect_identical(store$lines_past, character(0))
  http_req(server_url(s))
  expect_identical(store$all, raw(0))
  expect_identical(store$lines_past, character(0))
})
