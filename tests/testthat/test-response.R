# The response: bodies of every kind, header values, cookies, status lines, HEAD, 204/304.

respond_with <- function(status = 200L, headers = list("Content-Type" = "text/plain"), body = "") {
  force(status); force(headers); force(body)
  function(req) list(status = status, headers = headers, body = body)
}

test_that("a character body is sent as is", {
  s <- local_server(respond_with(body = "hello, world \u00e9"))
  r <- http_req(server_url(s))
  expect_identical(r$status, 200L)
  expect_identical(r$body, charToRaw(enc2utf8("hello, world \u00e9")))
  expect_identical(hdr(r, "content-type"), "text/plain")
  expect_identical(hdr(r, "content-length"), as.character(length(r$body)))
})

test_that("a multi-element character body is joined with \\n", {
  s <- local_server(respond_with(body = c("first", "second", "", "fourth")))
  r <- http_req(server_url(s))
  expect_identical(r$text, "first\nsecond\n\nfourth")
})

test_that("a raw body is sent byte for byte (all 256 byte values, and 1 MB)", {
  bytes <- as.raw(0:255)
  s <- local_server(respond_with(headers = list("Content-Type" = "application/octet-stream"),
                                 body = bytes))
  r <- http_req(server_url(s))
  expect_identical(r$body, bytes)
  set.seed(2)
  big <- as.raw(sample(0:255, 1e6, replace = TRUE))
  s2 <- local_server(respond_with(headers = list("Content-Type" = "application/octet-stream"),
                                  body = big))
  r2 <- http_req(server_url(s2))
  expect_true(identical(r2$body, big))
})

test_that("an empty or NULL body gives an empty 200", {
  for (b in list(NULL, character(0), "", raw(0))) {
    s <- local_server(respond_with(body = b))
    r <- http_req(server_url(s))
    expect_identical(r$status, 200L)
    expect_identical(r$body, raw(0))
    s$stop()
  }
})

test_that("c(file = path) streams a file and leaves it in place", {
  path <- tempfile(fileext = ".bin")
  on.exit(unlink(path), add = TRUE)
  set.seed(3)
  bytes <- as.raw(sample(0:255, 3e6, replace = TRUE))
  writeBin(bytes, path)
  s <- local_server(respond_with(headers = list("Content-Type" = "application/octet-stream"),
                                 body = c(file = path)))
  r <- http_req(server_url(s))
  expect_identical(r$status, 200L)
  expect_true(identical(r$body, bytes))
  expect_identical(hdr(r, "content-length"), as.character(length(bytes)))
  expect_true(file.exists(path))
  # Twice: the file is still there to be served again.
  r2 <- http_req(server_url(s))
  expect_true(identical(r2$body, bytes))
})

test_that("list(file = path, owned = TRUE) streams the file, then deletes it", {
  made <- character()
  s <- local_server(function(req) {
    path <- tempfile(fileext = ".txt")
    writeLines(c("owned", "file", req$PATH_INFO), path)
    made <<- c(made, path)
    list(status = 200L, headers = list("Content-Type" = "text/plain"),
         body = list(file = path, owned = TRUE))
  })
  r <- http_req(server_url(s, "/one"))
  expect_identical(r$text, "owned\nfile\n/one\n")
  expect_length(made, 1)
  wait_until(function() !file.exists(made[1]), timeout = 5, what = "the owned file to be deleted")
  expect_false(file.exists(made[1]))
  # owned = FALSE keeps it.
  keep <- tempfile()
  on.exit(unlink(keep), add = TRUE)
  writeLines("kept", keep)
  s2 <- local_server(respond_with(body = list(file = keep, owned = FALSE)))
  expect_identical(http_req(server_url(s2))$text, "kept\n")
  pump_for(0.2)
  expect_true(file.exists(keep))
})

test_that("a missing file body gives 500, not a hung connection", {
  s <- local_server(respond_with(body = c(file = file.path(tempdir(), "does-not-exist.bin"))))
  r <- http_req(server_url(s), timeout = 5)
  expect_identical(r$status, 500L)
})

test_that("numeric, integer and logical header values are coerced to strings", {
  s <- local_server(respond_with(headers = list("X-Int" = 7L, "X-Num" = 42, "X-Dbl" = 1.5,
                                                "X-Big" = 1234567, "X-Lgl" = TRUE,
                                                "Content-Type" = "text/plain"),
                                 body = "h"))
  r <- http_req(server_url(s))
  expect_identical(r$status, 200L)
  expect_identical(hdr(r, "x-int"), "7")
  expect_identical(hdr(r, "x-num"), "42")
  expect_identical(hdr(r, "x-dbl"), "1.5")
  expect_identical(hdr(r, "x-big"), "1234567")
  expect_identical(hdr(r, "x-lgl"), "TRUE")
})

test_that("several Set-Cookie headers: repeated names and Rook's \\n-joined convention", {
  s <- local_server(respond_with(
    headers = list("Content-Type" = "text/plain",
                   "Set-Cookie" = "a=1; Path=/",
                   "Set-Cookie" = "b=2; HttpOnly",
                   "Set-Cookie" = "c=3\nd=4; Secure"),
    body = "cookies"))
  r <- http_req(server_url(s))
  expect_identical(r$status, 200L)
  expect_identical(hdr_all(r, "set-cookie"), c("a=1; Path=/", "b=2; HttpOnly", "c=3", "d=4; Secure"))
  # Byte-exact: four separate Set-Cookie lines on the wire.
  out <- raw_http(s$getPort(), list(send(get_request("/")), response()))
  resp <- out$responses[[1]]
  expect_identical(unname(resp$headers[names(resp$headers) == "set-cookie"]),
                   c("a=1; Path=/", "b=2; HttpOnly", "c=3", "d=4; Secure"))
})

test_that("a header value with CR/LF (not a cookie) is rejected with a 500, never injected", {
  s <- local_server(function(req) {
    v <- switch(req$PATH_INFO,
                "/crlf" = "a\r\nX-Evil: 1",
                "/lf" = "a\nX-Evil: 2",
                "/cr" = "a\rX-Evil: 3",
                "fine")
    list(status = 200L, headers = list("Content-Type" = "text/plain", "X-Value" = v), body = "body")
  })
  for (p in c("/crlf", "/lf", "/cr")) {
    r <- http_req(server_url(s, p))
    expect_identical(r$status, 500L)
    expect_null(hdr(r, "x-evil"))
    expect_false(grepl("X-Evil", r$text, fixed = TRUE))
  }
  r <- http_req(server_url(s, "/ok"))
  expect_identical(r$status, 200L)
  expect_identical(hdr(r, "x-value"), "fine")
})

test_that("status lines carry the standard reason phrase, or 'Unknown'", {
  s <- local_server(function(req) {
    code <- as.integer(sub("^/", "", req$PATH_INFO))
    list(status = code, headers = list("Content-Type" = "text/plain"), body = "s")
  })
  cases <- c("200" = "OK", "201" = "Created", "302" = "Found", "404" = "Not Found",
             "418" = "I'm a teapot", "500" = "Internal Server Error",
             "503" = "Service Unavailable", "599" = "Unknown", "299" = "Unknown", "799" = "Unknown")
  steps <- list()
  for (code in names(cases)) steps <- c(steps, list(send(get_request(paste0("/", code))), response()))
  out <- raw_http(s$getPort(), steps)
  expect_null(out$error)
  expect_identical(vapply(out$responses, function(x) x$status, 0L), as.integer(names(cases)))
  expect_identical(vapply(out$responses, function(x) x$reason, ""), unname(cases))
  # curl's view of one of them.
  r <- http_req(server_url(s, "/418"))
  expect_identical(r$status_line, "HTTP/1.1 418 I'm a teapot")
})

test_that("status may be a double such as 200", {
  s <- local_server(respond_with(status = 201, body = "made"))
  r <- http_req(server_url(s))
  expect_identical(r$status, 201L)
  expect_identical(r$text, "made")
})

test_that("HEAD gets the headers but no body (the connection stays usable)", {
  s <- local_server(function(req) {
    list(status = 200L, headers = list("Content-Type" = "text/plain", "X-Method" = req$REQUEST_METHOD),
         body = "twelve bytes")
  })
  r <- http_req(server_url(s), method = "HEAD")
  expect_identical(r$status, 200L)
  expect_identical(hdr(r, "x-method"), "HEAD")
  expect_identical(hdr(r, "content-type"), "text/plain")
  expect_identical(r$body, raw(0))
  # On one connection: HEAD, then GET; any stray body byte would corrupt the second answer.
  out <- raw_http(s$getPort(), list(
    send(get_request("/a", method = "HEAD")), response("HEAD"),
    send(get_request("/b")), response()
  ))
  expect_null(out$error)
  expect_identical(out$responses[[1]]$headers[["x-method"]], "HEAD")
  expect_identical(out$responses[[1]]$body, raw(0))
  expect_identical(out$responses[[2]]$text, "twelve bytes")
  expect_identical(out$responses[[2]]$headers[["x-method"]], "GET")
})

test_that("HEAD of a file body has headers and no body", {
  path <- tempfile()
  on.exit(unlink(path), add = TRUE)
  writeBin(as.raw(1:100), path)
  s <- local_server(respond_with(headers = list("Content-Type" = "application/octet-stream"),
                                 body = c(file = path)))
  out <- raw_http(s$getPort(), list(
    send(get_request("/", method = "HEAD")), response("HEAD"),
    send(get_request("/")), response()
  ))
  expect_null(out$error)
  expect_identical(out$responses[[1]]$status, 200L)
  expect_identical(out$responses[[1]]$body, raw(0))
  expect_identical(out$responses[[2]]$body, as.raw(1:100))
})

test_that("204 and 304 carry no body even if the app gives one", {
  s <- local_server(function(req) {
    code <- as.integer(sub("^/", "", req$PATH_INFO))
    list(status = code, headers = list("Content-Type" = "text/plain"), body = "should not be sent")
  })
  out <- raw_http(s$getPort(), list(
    send(get_request("/204")), response(),
    send(get_request("/304")), response(),
    send(get_request("/200")), response()
  ))
  expect_null(out$error)
  st <- vapply(out$responses, function(x) x$status, 0L)
  expect_identical(st, c(204L, 304L, 200L))
  expect_identical(out$responses[[1]]$body, raw(0))
  expect_identical(out$responses[[2]]$body, raw(0))
  expect_identical(out$responses[[3]]$text, "should not be sent")
  # Raw bytes: after the 204's head, the very next bytes are the next status line.
  out2 <- raw_http(s$getPort(), list(
    send(get_request("/204"), get_request("/200", extra = "Connection: close")),
    read_all()
  ))
  txt <- out2$steps[[2]]$text
  expect_match(txt, "^HTTP/1.1 204 No Content\r\n")
  expect_match(txt, "\r\n\r\nHTTP/1.1 200 OK\r\n", fixed = FALSE)
  expect_false(grepl("should not be sent\r?\nHTTP/1.1 200", txt))
  expect_identical(lengths(regmatches(txt, gregexpr("should not be sent", txt, fixed = TRUE))), 1L)
})

test_that("framing is the server's: an app's wrong Content-Length or Transfer-Encoding is ignored", {
  s <- local_server(respond_with(headers = list("Content-Type" = "text/plain", "Content-Length" = 999,
                                                "Transfer-Encoding" = "chunked"),
                                 body = "five!"))
  out <- raw_http(s$getPort(), list(send(get_request("/")), response(),
                                    send(get_request("/")), response()))
  expect_null(out$error)
  for (resp in out$responses) {
    expect_identical(resp$text, "five!")
    expect_identical(resp$headers[["content-length"]], "5")
    expect_false("transfer-encoding" %in% names(resp$headers))
  }
})

test_that("HEAD announces the same Content-Length as GET", {
  s <- local_server(respond_with(body = strrep("z", 321)))
  out <- raw_http(s$getPort(), list(send(get_request("/", method = "HEAD")), response("HEAD"),
                                    send(get_request("/")), response()))
  expect_null(out$error)
  expect_identical(out$responses[[2]]$headers[["content-length"]], "321")
  expect_identical(out$responses[[1]]$headers[["content-length"]], "321")
})

test_that("a header given as a vector becomes one header line per element", {
  s <- local_server(respond_with(headers = list("X-Multi" = c("1", "2"), "Vary" = "Accept"),
                                 body = "v"))
  r <- http_req(server_url(s))
  expect_identical(hdr_all(r, "x-multi"), c("1", "2"))
  expect_identical(hdr(r, "vary"), "Accept")
})
