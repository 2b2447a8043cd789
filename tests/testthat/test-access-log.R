# The access log: written by the engine's own thread to a file, in combined, common and
# JSON formats, escaped against log injection; reopened for logrotate.

log_app <- function(req) {
  if (req$PATH_INFO == "/big") return(list(status = 200L, headers = list("Content-Type" = "text/plain"),
                                            body = strrep("x", 5000)))
  list(status = 201L, headers = list("Content-Type" = "text/plain"), body = "hello")
}

# The log's lines once it has n of them (the writer flushes at least every second).
log_lines <- function(path, n, timeout = 10) {
  wait_until(function() file.exists(path) && length(readLines(path, warn = FALSE)) >= n,
             timeout = timeout, what = paste(n, "log lines"))
  readLines(path, warn = FALSE)
}

test_that("access_log options are validated", {
  expect_null(rookdOptions()$access_log)
  expect_identical(rookdOptions()$access_log_format, "combined")
  expect_error(rookdOptions(access_log = c("a", "b")), "access_log")
  expect_error(rookdOptions(access_log = NA_character_), "access_log")
  expect_error(rookdOptions(access_log = ""), "access_log")
  expect_error(rookdOptions(access_log_format = "apache"), "access_log_format.*combined")
  expect_error(rookdOptions(access_log = function() NULL), "one argument")
  expect_true(is.function(rookdOptions(access_log = function(lines) NULL)$access_log))
  expect_error(startServer("127.0.0.1", 0, log_app,
                           options = rookdOptions(access_log = "/nonexistent-rookd-dir/a.log")),
               "cannot open the access log")
})

test_that("combined lines for app answers, static files and engine answers", {
  path <- tempfile("access", fileext = ".log")
  dir <- tempfile("static"); dir.create(dir); writeLines("static!", file.path(dir, "s.txt"))
  s <- local_server(log_app, options = rookdOptions(access_log = path, max_body_bytes = 1000,
                                                    trusted_proxies = "127.0.0.1"))
  s$setStaticPath("/files" = dir)
  r <- http_req(server_url(s, "/hello?x=1"), headers = c("User-Agent: tester/1.0",
                                                          "Referer: http://ref.example/",
                                                          "X-Forwarded-For: 198.51.100.4"))
  expect_identical(r$status, 201L)
  expect_identical(http_req(server_url(s, "/files/s.txt"))$status, 200L)
  expect_identical(http_req(server_url(s, "/up"), method = "POST", body = strrep("y", 5000))$status, 413L)
  expect_identical(http_req(server_url(s, "/big"), method = "HEAD")$status, 200L)
  lines <- log_lines(path, 4)
  expect_length(lines, 4)
  re <- '^198\\.51\\.100\\.4 - - \\[\\d{2}/[A-Z][a-z]{2}/\\d{4}:\\d{2}:\\d{2}:\\d{2} \\+0000\\] "GET /hello\\?x=1 HTTP/1\\.1" 201 5 "http://ref\\.example/" "tester/1\\.0" \\d+\\.\\d{6} \\d+\\.\\d{6} \\d+\\.\\d{6} \\d+$'
  expect_match(lines[1], re, perl = TRUE)
  # A static file never reached R: no queue or R time.
  expect_match(lines[2], '^127\\.0\\.0\\.1 - - \\[.*\\] "GET /files/s\\.txt HTTP/1\\.1" 200 8 .* [0-9.]+ - - [0-9]+$', perl = TRUE)
  expect_match(lines[3], '"POST /up HTTP/1\\.1" 413 ', perl = TRUE)
  # HEAD: no body bytes written.
  expect_match(lines[4], '"HEAD /big HTTP/1\\.1" 200 - ', perl = TRUE)
})

test_that("no log injection through the path or the user agent (CLF and JSON)", {
  for (fmt in c("combined", "json")) {
    path <- tempfile("access", fileext = ".log")
    s <- local_server(log_app, options = rookdOptions(access_log = path, access_log_format = fmt))
    # A quote, a backslash, a tab and bytes that are not UTF-8 (HTTP parsers refuse raw
    # control bytes and quotes in the target, so those come in the user agent).
    ua <- as.raw(c(charToRaw('evil" "x\\\t'), as.raw(c(0xff, 0xfe)), charToRaw("z")))
    req <- c(charToRaw("GET /a%22b%0A?q='x' HTTP/1.1\r\nHost: h\r\nUser-Agent: "), ua,
             charToRaw("\r\nConnection: close\r\n\r\n"))
    out <- raw_http(s$getPort(), list(send_raw(req), response()))
    expect_identical(out$responses[[1]]$status, 201L)
    lines <- log_lines(path, 1)
    expect_length(lines, 1)
    if (fmt == "combined") {
      expect_true(grepl('"GET /a%22b%0A?q=\'x\' HTTP/1.1" 201 5 "-" "evil\\x22 \\x22x\\x5c\\x09\\xff\\xfez" ',
                        lines, fixed = TRUE), info = lines)
      expect_identical(lengths(regmatches(lines, gregexpr('"', lines, fixed = TRUE))), 6L)
    } else {
      j <- jsonlite::fromJSON(lines)
      expect_identical(j$path, "/a%22b%0A?q='x'")
      expect_identical(j$user_agent, paste0('evil" "x\\\t', "\ufffd\ufffdz"))
      expect_identical(j$method, "GET")
      expect_identical(j$status, 201L)
      expect_identical(j$bytes, 5L)
      expect_identical(j$client, "127.0.0.1")
      expect_null(j$referer)
      # Time queued for R and time in R, as the server's metrics measure them.
      expect_true(is.numeric(j$queued_s) && j$queued_s >= 0)
      expect_true(is.numeric(j$r_s) && j$r_s >= 0 && j$r_s <= j$total_s)
      expect_true(is.numeric(j$total_s) && j$total_s >= 0)
      expect_match(j$time, "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z$", perl = TRUE)
    }
  }
})

test_that("common format, and reopenLog() after the file was moved", {
  path <- tempfile("access", fileext = ".log")
  s <- local_server(log_app, options = rookdOptions(access_log = path, access_log_format = "common"))
  expect_identical(http_req(server_url(s, "/one"), headers = "User-Agent: ua1")$status, 201L)
  lines <- log_lines(path, 1)
  expect_match(lines[1], '"GET /one HTTP/1\\.1" 201 5 [0-9.]+ [0-9.]+ [0-9.]+ [0-9]+$', perl = TRUE)
  expect_false(grepl("ua1", lines[1]))
  file.rename(path, paste0(path, ".1"))
  expect_true(s$reopenLog())
  expect_identical(http_req(server_url(s, "/two"))$status, 201L)
  lines <- log_lines(path, 1)
  expect_match(lines, "/two")
  expect_false(any(grepl("/two", readLines(paste0(path, ".1")))))
  # No file log: FALSE.
  s2 <- local_server(log_app)
  expect_false(s2$reopenLog())
})

test_that("SIGHUP reopens a file access log and leaves R running", {
  skip_on_os("windows")
  path <- tempfile("access", fileext = ".log")
  srv <- child_server(function(port, path) {
    s <- rookd::startServer("127.0.0.1", port, function(req) {
      list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "ok")
    }, options = rookd::rookdOptions(access_log = path))
    rookd::service(0)
  }, args = list(path = path))
  url <- sprintf("http://127.0.0.1:%d", srv$port)
  expect_identical(fetch_blocking(paste0(url, "/before"))$status_code, 200L)
  deadline <- Sys.time() + 10
  while (!file.exists(path) || !any(grepl("/before", readLines(path, warn = FALSE)))) {
    if (Sys.time() > deadline) stop("the first line was not written")
    Sys.sleep(0.05)
  }
  file.rename(path, paste0(path, ".1"))
  tools::pskill(srv$process$get_pid(), tools::SIGHUP)
  # The reopen is asynchronous: ask until a request's line lands in a new file.
  deadline <- Sys.time() + 10
  repeat {
    expect_identical(fetch_blocking(paste0(url, "/after"))$status_code, 200L)
    Sys.sleep(0.2)
    if (file.exists(path) && any(grepl("/after", readLines(path, warn = FALSE)))) break
    if (Sys.time() > deadline) stop("no line reached a reopened file")
  }
  expect_true(srv$process$is_alive())
})

test_that("an R function receives the lines in batches, the last one before the server stops", {
  store <- new.env()
  store$batches <- list()
  s <- startServer("127.0.0.1", 0, log_app, options = rookdOptions(
    access_log = function(lines) store$batches[[length(store$batches) + 1]] <- lines,
    access_log_format = "json"))
  on.exit(try(s$stop(), silent = TRUE), add = TRUE)
  reqs <- lapply(1:30, function(i) list(url = server_url(s, paste0("/r", i))))
  res <- http_many(reqs)
  expect_true(all(vapply(res, function(r) r$status, 1L) == 201L))
  wait_until(function() sum(lengths(store$batches)) >= 30, what = "30 lines in batches")
  lines <- unlist(store$batches)
  expect_length(lines, 30)
  # Batched: far fewer calls than requests.
  expect_lt(length(store$batches), 30)
  paths <- vapply(lines, function(l) jsonlite::fromJSON(l)$path, "")
  expect_setequal(paths, paste0("/r", 1:30))
  # The last lines arrive before the server has finished stopping.
  expect_identical(http_req(server_url(s, "/last"))$status, 201L)
  s$stop()
  wait_until(function() any(grepl("/last", unlist(store$batches), fixed = TRUE)),
             what = "the last line after stop")
  # An error in the function is reported, and serving goes on.
  s2 <- local_server(log_app, options = rookdOptions(access_log = function(lines) stop("log-boom")))
  expect_identical(http_req(server_url(s2, "/x"))$status, 201L)
  pump_for(1.5)
  expect_identical(http_req(server_url(s2, "/y"))$status, 201L)
})
