# Cookies over HTTP/2: a client may split them into several `cookie` fields (browsers and
# curl do); the app must see them joined with "; " (RFC 9113, 8.2.3), in HTTP_COOKIE and
# in HEADERS alike. (WebSockets are HTTP/1.1 only here: no split cookies to join.)

cookie_app <- function() {
  function(req) {
    body <- paste(req$SERVER_PROTOCOL, req$HTTP_COOKIE %||% "-", req$HEADERS[["cookie"]] %||% "-",
                  req$REMOTE_ADDR, sep = "|")
    list(status = 200L, headers = list("Content-Type" = "text/plain"), body = body)
  }
}

test_that("curl --http2-prior-knowledge with two Cookie headers: one cookie string", {
  if (!nzchar(Sys.which("curl"))) skip("curl is not installed")
  s <- local_server(cookie_app())
  out <- run_pumping("curl", c("-s", "--http2-prior-knowledge", "-H", "Cookie: a=1", "-H", "Cookie: b=2",
                               server_url(s, "/")), timeout = 20)
  expect_identical(out$status, 0L)
  expect_identical(out$stdout, "HTTP/2.0|a=1; b=2|a=1; b=2|127.0.0.1")
  # One field: untouched. HTTP/1.1: as before.
  out <- run_pumping("curl", c("-s", "--http2-prior-knowledge", "-H", "Cookie: a=1; b=2", server_url(s, "/")),
                     timeout = 20)
  expect_identical(out$stdout, "HTTP/2.0|a=1; b=2|a=1; b=2|127.0.0.1")
  r <- http_req(server_url(s, "/"), headers = "Cookie: a=1; b=2")
  expect_identical(r$text, "HTTP/1.1|a=1; b=2|a=1; b=2|127.0.0.1")
})

test_that("Python h2 with three cookie fields, other headers between them", {
  s <- local_server(cookie_app())
  r <- net_py("cookies", s$getPort(), "/")
  expect_identical(r$status, "200")
  expect_identical(r$body, "HTTP/2.0|a=1; b=2; c=3; d=4|a=1; b=2; c=3; d=4|127.0.0.1")
})
