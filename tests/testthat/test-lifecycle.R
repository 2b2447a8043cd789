# Starting, stopping, listing servers; the shapes of app accepted; bad arguments.

test_that("a port in use is an R error naming the address", {
  s <- local_server(text_app())
  port <- s$getPort()
  err <- expect_error(startServer("127.0.0.1", port, text_app()))
  expect_match(conditionMessage(err), paste0("127.0.0.1:", port), fixed = TRUE)
  expect_match(conditionMessage(err), "in use", fixed = TRUE)
  # The first server is unharmed.
  expect_identical(http_req(server_url(s))$text, "ok")
})

test_that("a port taken by another process is an error naming the address", {
  skip_on_cran()
  srv <- child_server(function(port) {
    library(rookd)
    s <- startServer("127.0.0.1", port, function(req) {
      if (req$PATH_INFO == "/quit") interrupt()
      list(status = 200L, headers = list(), body = "child")
    })
    service(0)
  })
  expect_error(startServer("127.0.0.1", srv$port, text_app()),
               paste0("127.0.0.1:", srv$port), fixed = TRUE)
  fetch_blocking(sprintf("http://127.0.0.1:%d/quit", srv$port))
  srv$process$wait(10000)
})

test_that("stop closes the listener at once: the same port can be bound again right away", {
  s <- startServer("127.0.0.1", 0, text_app("first"))
  port <- s$getPort()
  expect_identical(http_req(server_url(s))$text, "first")
  s$stop()
  expect_false(s$isRunning())
  expect_false(port_accepts(port))
  s2 <- local_server(text_app("second"), port = port)
  expect_identical(s2$getPort(), port)
  expect_identical(http_req(server_url(s2))$text, "second")
  # Again, several times in a row, with a request each time.
  for (i in 1:5) {
    s2$stop()
    s2 <- local_server(text_app(paste("round", i)), port = port)
    expect_identical(http_req(server_url(s2))$text, paste("round", i))
  }
})

test_that("stop while requests are in flight: they finish (or get 503) within bounded time", {
  seen <- new.env()
  seen$headers <- FALSE
  s <- startServer("127.0.0.1", 0, list(
    onHeaders = function(req) { seen$headers <- TRUE; NULL },
    call = function(req) list(status = 200L, headers = list(), body = paste("done", req$PATH_INFO))
  ), options = rookdOptions(shutdown_grace = 2))
  port <- s$getPort()
  # A request whose body is still arriving when the server is stopped.
  p <- processx::process$new("python3", c("-c", sprintf(paste(
    "import socket, time, sys",
    "s = socket.create_connection(('127.0.0.1', %d), timeout=10)",
    "s.sendall(b'POST /slow HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 10\\r\\n\\r\\n01234')",
    "time.sleep(1)",
    "try:",
    "    s.sendall(b'56789')",
    "except Exception:",
    "    pass",
    "t0 = time.time()",
    "data = b''",
    "try:",
    "    while True:",
    "        chunk = s.recv(65536)",
    "        if not chunk: break",
    "        data += chunk",
    "        if b'\\r\\n\\r\\n' in data and (b'done' in data or b'Unavailable' in data): break",
    "except Exception as e:",
    "    data += ('EXC %%s' %% e).encode()",
    "sys.stdout.write(data.decode('latin1'))",
    sep = "\n"), port)), stdout = "|", stderr = "|", cleanup = TRUE)
  on.exit(if (p$is_alive()) p$kill(), add = TRUE)
  # Stop once the server has the request's head but not all of its body.
  wait_until(function() seen$headers, timeout = 10, what = "the request head")
  t0 <- Sys.time()
  s$stop()
  expect_false(port_accepts(port))
  wait_until(function() !p$is_alive(), timeout = 8, what = "the in-flight request to end")
  elapsed <- as.numeric(Sys.time() - t0, units = "secs")
  expect_lt(elapsed, 5)
  out <- p$read_all_output()
  expect_match(out, "^HTTP/1.1 (200 OK|503 Service Unavailable)")
  expect_identical(p$read_all_error(), "")
})

test_that("two servers at once answer independently", {
  a <- local_server(text_app("from A"))
  b <- local_server(text_app("from B"))
  expect_false(a$getPort() == b$getPort())
  res <- http_many(list(list(url = server_url(a, "/")), list(url = server_url(b, "/")),
                        list(url = server_url(a, "/x")), list(url = server_url(b, "/y"))))
  expect_identical(vapply(res, function(r) r$text, ""), c("from A", "from B", "from A", "from B"))
  a$stop()
  expect_identical(http_req(server_url(b))$text, "from B")
})

test_that("IPv4 and IPv6 servers on the same port number", {
  skip_if_no_ipv6()
  a <- local_server(text_app("v4"))
  b <- local_server(text_app("v6"), host = "::1", port = a$getPort())
  expect_identical(http_req(server_url(a))$text, "v4")
  expect_identical(http_req(server_url(b))$text, "v6")
})

test_that("listServers and stopAllServers", {
  stopAllServers()
  expect_length(listServers(), 0)
  a <- startServer("127.0.0.1", 0, text_app())
  b <- startServer("127.0.0.1", 0, text_app())
  pipe <- tempfile("rookd", fileext = ".sock")
  ps <- startPipeServer(pipe, NULL, text_app())
  on.exit(unlink(pipe), add = TRUE)
  l <- listServers()
  expect_length(l, 3)
  expect_true(all(vapply(l, inherits, TRUE, "Server")))
  expect_setequal(vapply(l[vapply(l, inherits, TRUE, "WebServer")], function(s) s$getPort(), 0L),
                  c(a$getPort(), b$getPort()))
  b$stop()
  expect_length(listServers(), 2)
  stopAllServers()
  expect_length(listServers(), 0)
  expect_false(a$isRunning())
  expect_false(ps$isRunning())
  expect_false(port_accepts(a$getPort()))
  # Stopping again, or with stopServer(), is harmless.
  expect_silent(a$stop())
  expect_silent(stopServer(a))
  expect_silent(stopDaemonizedServer(b))
  expect_silent(stopAllServers())
})

test_that("server objects: methods and print", {
  s <- local_server(text_app())
  expect_s3_class(s, "WebServer")
  expect_true(s$isRunning())
  expect_identical(s$getHost(), "127.0.0.1")
  expect_true(s$getPort() > 0)
  expect_output(print(s), sprintf("http://127.0.0.1:%d (running)", s$getPort()), fixed = TRUE)
  s$stop()
  expect_output(print(s), "(stopped)", fixed = TRUE)
  expect_error(stopServer("not a server"), "`server` must be a server")
  expect_identical(startDaemonizedServer, startServer)
})

test_that("bad arguments are R errors that say what is wrong", {
  app <- text_app()
  expect_error(startServer(123, 0, app), "`host` must be a single string")
  expect_error(startServer(c("127.0.0.1", "::1"), 0, app), "`host` must be a single string")
  expect_error(startServer(NA_character_, 0, app), "`host`")
  expect_error(startServer("", 0, app), "`host`")
  expect_error(startServer("127.0.0.1", 70000, app), "`port` must be a whole number from 0 to 65535")
  expect_error(startServer("127.0.0.1", -1, app), "`port`")
  expect_error(startServer("127.0.0.1", 80.5, app), "`port`")
  expect_error(startServer("127.0.0.1", "8080", app), "`port`")
  expect_error(startServer("127.0.0.1", NA, app), "`port`")
  expect_error(startServer("127.0.0.1", c(1, 2), app), "`port`")
  expect_error(startServer("127.0.0.1", 0, list(call = "not a function")), "`app\\$call` must be a function")
  expect_error(startServer("127.0.0.1", 0, 42), "`app` must be a function")
  expect_error(startServer("127.0.0.1", 0, NULL), "`app`")
  expect_error(startServer("127.0.0.1", 0, app, options = "fast"), "`options`")
  expect_error(startServer("not an address", 0, app), "not an address")
  expect_error(startPipeServer(42, NULL, app), "`name`")
  expect_error(startPipeServer(tempfile(), "x", app), "`mask`")
  expect_error(service(-1), "timeoutMs")
  expect_error(service("a"), "timeoutMs")
  # Nothing was left running by the failed calls.
  expect_length(listServers(), 0)
})

test_that("app shapes: function, list, environment, reference class with a call method", {
  f <- function(req) list(status = 200L, headers = list(), body = "function app")
  l <- list(call = function(req) list(status = 200L, headers = list(), body = "list app"))
  e <- new.env()
  e$call <- function(req) list(status = 200L, headers = list(), body = "env app")
  Gen <- setRefClass("RookdTestApp", fields = list(greeting = "character", hits = "numeric"),
                     methods = list(call = function(req) {
                       hits <<- hits + 1
                       list(status = 200L, headers = list(),
                            body = paste(greeting, hits, req$PATH_INFO))
                     }))
  obj <- Gen$new(greeting = "refclass app", hits = 0)
  for (app in list(f, l, e)) {
    s <- local_server(app)
    expect_match(http_req(server_url(s))$text, " app$")
    s$stop()
  }
  s <- local_server(obj)
  expect_identical(http_req(server_url(s, "/a"))$text, "refclass app 1 /a")
  expect_identical(http_req(server_url(s, "/b"))$text, "refclass app 2 /b")
  expect_identical(obj$hits, 2)
  # Rook's own app classes (a reference class with a call method).
  skip_if_not_installed("Rook")
  rook_app <- Rook::URLMap$new(`/hi` = function(env) {
    res <- Rook::Response$new()
    res$write("hello from Rook")
    res$finish()
  })
  s2 <- local_server(rook_app)
  expect_identical(http_req(server_url(s2, "/hi"))$text, "hello from Rook")
})

test_that("startPipeServer is answered over its Unix socket (system curl)", {
  skip_on_os("windows")
  if (!nzchar(Sys.which("curl"))) skip("system curl is not installed")
  dir <- tempfile("sockdir")
  dir.create(dir)
  on.exit(unlink(dir, recursive = TRUE), add = TRUE)
  path <- file.path(dir, "app.sock")
  store <- new.env()
  s <- startPipeServer(path, strtoi("077", 8L), function(req) {
    store$env <- mget(c("SERVER_NAME", "SERVER_PORT", "REMOTE_ADDR", "REMOTE_PORT", "PATH_INFO",
                        "QUERY_STRING", "REQUEST_METHOD"), envir = req)
    list(status = 200L, headers = list("Content-Type" = "text/plain"),
         body = paste("pipe says", req$PATH_INFO, req[["rook.input"]]$read_lines()))
  })
  on.exit(s$stop(), add = TRUE)
  expect_s3_class(s, "PipeServer")
  expect_identical(s$getName(), path)
  expect_identical(s$getMask(), strtoi("077", 8L))
  expect_true(file.exists(path))
  expect_output(print(s), "PipeServer")
  res <- run_pumping("curl", c("-sS", "--max-time", "10", "--unix-socket", path,
                               "-d", "posted", "http://localhost/over/pipe?q=1"))
  expect_identical(res$status, 0L)
  expect_identical(res$stdout, "pipe says /over/pipe posted")
  expect_identical(store$env$SERVER_NAME, "localhost")
  expect_identical(store$env$SERVER_PORT, "")
  expect_identical(store$env$REMOTE_ADDR, "")
  expect_identical(store$env$REMOTE_PORT, "")
  expect_identical(store$env$QUERY_STRING, "q=1")
  expect_identical(store$env$REQUEST_METHOD, "POST")
  s$stop()
  res2 <- run_pumping("curl", c("-sS", "--max-time", "5", "--unix-socket", path, "http://localhost/"))
  expect_false(res2$status == 0L)
})

test_that("runServer serves until interrupt(), then stops its server (child process)", {
  skip_on_cran()
  srv <- child_server(function(port) {
    library(rookd)
    runServer("127.0.0.1", port, function(req) {
      if (req$PATH_INFO == "/stop") interrupt()
      list(status = 200L, headers = list(), body = paste("run", req$PATH_INFO))
    })
    cat("RUNSERVER RETURNED", length(listServers()), "\n")
  })
  url <- sprintf("http://127.0.0.1:%d", srv$port)
  expect_identical(rawToChar(fetch_blocking(paste0(url, "/a"))$content), "run /a")
  expect_identical(rawToChar(fetch_blocking(paste0(url, "/stop"))$content), "run /stop")
  srv$process$wait(10000)
  expect_false(srv$process$is_alive())
  expect_match(srv$process$read_all_output(), "RUNSERVER RETURNED 0", fixed = TRUE)
  expect_false(port_accepts(srv$port))
})

test_that("unloading the package stops every server (child process)", {
  skip_on_cran()
  port1 <- randomPort()
  port2 <- randomPort()
  child <- callr::r_bg(function(port1, port2) {
    library(rookd)
    a <- startServer("127.0.0.1", port1, function(req) list(status = 200L, headers = list(), body = "a"))
    b <- startServer("127.0.0.1", port2, function(req) list(status = 200L, headers = list(), body = "b"))
    up <- function(p) {
      con <- tryCatch(suppressWarnings(socketConnection("127.0.0.1", p, open = "r+b",
                                                        blocking = TRUE, timeout = 2)),
                      error = function(e) NULL)
      if (is.null(con)) return(FALSE)
      close(con)
      TRUE
    }
    before <- c(up(port1), up(port2))
    unloadNamespace("rookd")
    after <- c(up(port1), up(port2))
    list(before = before, after = after, loaded = "rookd" %in% loadedNamespaces())
  }, args = list(port1 = port1, port2 = port2), supervise = TRUE)
  on.exit(if (child$is_alive()) child$kill(), add = TRUE)
  child$wait(30000)
  expect_false(child$is_alive())
  res <- child$get_result()
  expect_identical(res$before, c(TRUE, TRUE))
  expect_identical(res$after, c(FALSE, FALSE))
  expect_false(res$loaded)
})

test_that("quitting R with servers running exits promptly (child process)", {
  skip_on_cran()
  srv <- child_server(function(port) {
    library(rookd)
    s <- startServer("127.0.0.1", port, function(req) list(status = 200L, headers = list(), body = "x"))
    # service(ms) returns after the first batch of callbacks, as httpuv's does: loop.
    deadline <- Sys.time() + 3
    while (Sys.time() < deadline) service(100)
    quit(save = "no")
  })
  expect_identical(rawToChar(fetch_blocking(sprintf("http://127.0.0.1:%d/", srv$port))$content), "x")
  t0 <- Sys.time()
  srv$process$wait(15000)
  expect_false(srv$process$is_alive())
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 10)
})

test_that("an app may stop its own server; the answer in progress is still delivered", {
  holder <- new.env()
  holder$s <- startServer("127.0.0.1", 0, function(req) {
    if (req$PATH_INFO == "/shutdown") holder$s$stop()
    list(status = 200L, headers = list(), body = paste("bye from", req$PATH_INFO))
  })
  on.exit(holder$s$stop(), add = TRUE)
  port <- holder$s$getPort()
  r <- http_req(server_url(holder$s, "/shutdown"))
  expect_identical(r$status, 200L)
  expect_identical(r$text, "bye from /shutdown")
  expect_false(holder$s$isRunning())
  expect_false(port_accepts(port))
})

test_that("stop with an idle keep-alive connection open: re-bind at once, old connection closed", {
  skip_if_no_python()
  s <- startServer("127.0.0.1", 0, text_app("old"))
  on.exit(s$stop(), add = TRUE)
  port <- s$getPort()
  code <- sprintf(paste(
    "import socket, sys, time",
    "s = socket.create_connection(('127.0.0.1', %d), timeout=10)",
    "s.sendall(b'GET /1 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')",
    "data = b''",
    "while not data.endswith(b'old'):",
    "    data += s.recv(4096)",
    "print('got1', flush=True)",
    "time.sleep(1.5)",
    "try:",
    "    s.sendall(b'GET /2 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')",
    "    rest = s.recv(4096)",
    "    print('closed' if not rest else 'answered ' + rest.decode('latin1').split('\\r\\n')[0])",
    "except Exception as e:",
    "    print('closed', type(e).__name__)",
    sep = "\n"), port)
  p <- processx::process$new("python3", c("-c", code), stdout = "|", stderr = "|", cleanup = TRUE)
  on.exit(if (p$is_alive()) p$kill(), add = TRUE)
  out <- ""
  wait_until(function() {
    out <<- paste0(out, p$read_output())
    grepl("got1", out)
  }, timeout = 10, what = "the first answer")
  s$stop()
  s2 <- local_server(text_app("new"), port = port)
  expect_identical(http_req(server_url(s2))$text, "new")
  wait_until(function() !p$is_alive(), timeout = 10, what = "the old connection's client")
  out <- paste0(out, p$read_all_output())
  expect_match(out, "closed")
  expect_false(grepl("answered", out))
})

test_that("host 'localhost' and '0.0.0.0' are accepted", {
  s <- local_server(text_app("lh"), host = "localhost")
  expect_identical(s$getHost(), "localhost")
  expect_identical(http_req(sprintf("http://localhost:%d/", s$getPort()))$text, "lh")
  s2 <- local_server(text_app("any"), host = "0.0.0.0")
  expect_identical(http_req(sprintf("http://127.0.0.1:%d/", s2$getPort()))$text, "any")
})
