# Persistent connections and pipelining.

echo_app <- function(seen = new.env()) {
  seen$ports <- character()
  seen$paths <- character()
  function(req) {
    seen$ports <- c(seen$ports, req$REMOTE_PORT)
    seen$paths <- c(seen$paths, req$PATH_INFO)
    body <- req[["rook.input"]]$read()
    list(status = 200L, headers = list("Content-Type" = "text/plain"),
         body = paste0(req$REQUEST_METHOD, " ", req$PATH_INFO,
                       if (length(body)) paste0(" ", rawToChar(body)) else ""))
  }
}

test_that("several requests, one after the other, on one connection", {
  seen <- new.env()
  s <- local_server(echo_app(seen))
  steps <- list()
  for (i in 1:6) steps <- c(steps, list(send(get_request(paste0("/r", i))), response()))
  out <- raw_http(s$getPort(), steps)
  expect_null(out$error)
  expect_length(out$responses, 6)
  expect_identical(vapply(out$responses, function(x) x$text, ""), paste0("GET /r", 1:6))
  expect_false(any(vapply(out$responses, function(x) x$will_close, TRUE)))
  # All were served on the client's one connection.
  expect_identical(unique(seen$ports), as.character(out$local_port))
  expect_identical(seen$paths, paste0("/r", 1:6))
})

test_that("curl reuses the connection for requests made with one handle", {
  seen <- new.env()
  s <- local_server(echo_app(seen))
  pool <- curl::new_pool()
  h <- curl::new_handle(timeout = 10)
  for (i in 1:4) {
    res <- NULL
    curl::curl_fetch_multi(server_url(s, paste0("/c", i)), handle = h, pool = pool,
                           done = function(r) res <<- r, fail = function(e) stop(e))
    deadline <- Sys.time() + 10
    while (is.null(res) && Sys.time() < deadline) {
      curl::multi_run(timeout = 0, poll = TRUE, pool = pool)
      later::run_now(0.005)
    }
    expect_identical(rawToChar(res$content), paste0("GET /c", i))
  }
  expect_length(seen$ports, 4)
  expect_length(unique(seen$ports), 1)
})

test_that("pipelined requests are answered in order", {
  seen <- new.env()
  s <- local_server(echo_app(seen))
  reqs <- paste0(
    get_request("/p1"),
    "POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nbody-of-2",
    get_request("/p3", method = "HEAD"),
    "PUT /p4 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    get_request("/p5")
  )
  # All five in one write, before reading anything.
  out <- raw_http(s$getPort(), list(send(reqs), response(), response(), response("HEAD"),
                                    response(), response()))
  expect_null(out$error)
  expect_identical(vapply(out$responses, function(x) x$status, 0L), rep(200L, 5))
  expect_identical(vapply(out$responses, function(x) x$text, ""),
                   c("GET /p1", "POST /p2 body-of-2", "", "PUT /p4 abcde", "GET /p5"))
  expect_identical(seen$paths, paste0("/p", 1:5))
  expect_length(unique(seen$ports), 1)
})

test_that("many pipelined requests in one write (slow app) keep their order", {
  seen <- new.env()
  s <- local_server(function(req) {
    if (req$PATH_INFO == "/slow") Sys.sleep(0.3)
    list(status = 200L, headers = list("Content-Type" = "text/plain"), body = req$PATH_INFO)
  })
  paths <- c("/slow", paste0("/n", 1:30))
  steps <- c(list(send(paste0(vapply(paths, get_request, ""), collapse = ""))),
             rep(list(response()), length(paths)))
  out <- raw_http(s$getPort(), steps)
  expect_null(out$error)
  expect_identical(vapply(out$responses, function(x) x$text, ""), paths)
})

test_that("Connection: close and HTTP/1.0 close the connection after the answer", {
  s <- local_server(echo_app())
  out <- raw_http(s$getPort(), list(send(get_request("/a", extra = "Connection: close")), read_all()))
  expect_null(out$error)
  txt <- out$steps[[2]]$text
  expect_match(txt, "^HTTP/1.1 200 OK\r\n")
  expect_match(txt, "GET /a$")
  expect_null(out$steps[[2]]$timeout)
  out10 <- raw_http(s$getPort(), list(send("GET /b HTTP/1.0\r\n\r\n"), read_all()))
  expect_null(out10$error)
  expect_match(out10$steps[[2]]$text, "^HTTP/1.[01] 200 OK\r\n")
  expect_match(out10$steps[[2]]$text, "GET /b$")
  expect_null(out10$steps[[2]]$timeout)
})

test_that("concurrent connections are all answered", {
  s <- local_server(echo_app())
  specs <- lapply(1:20, function(i) list(url = server_url(s, paste0("/k", i)), forbid_reuse = TRUE))
  res <- http_many(specs)
  expect_false(any(vapply(res, inherits, TRUE, "error")))
  expect_identical(vapply(res, function(r) r$text, ""), paste0("GET /k", 1:20))
})
