# The file access log under attack: its mode (not world-readable, item 4), heads the
# engine refuses before the app (400 malformed, 431 too large, 408 stalled; item 5), and
# lines from hostile fields.

log_lines_of <- function(path, n, timeout = 10) {
  wait_until(function() file.exists(path) && length(readLines(path, warn = FALSE)) >= n,
             timeout = timeout, what = paste(n, "log lines"))
  readLines(path, warn = FALSE)
}

ok_app <- function(req) list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "ok")

test_that("a new access log file is created 0640, not world-readable", {
  skip_on_os("windows")
  path <- tempfile("access", fileext = ".log")
  old <- Sys.umask("022")
  on.exit(Sys.umask(old), add = TRUE)
  s <- local_server(ok_app, options = rookdOptions(access_log = path))
  expect_true(file.exists(path))
  expect_identical(format(file.info(path)$mode), "640")
  # Reopened after logrotate moved it: the new file too.
  file.rename(path, paste0(path, ".1"))
  expect_true(s$reopenLog())
  expect_identical(http_req(server_url(s, "/x"))$status, 200L)
  log_lines_of(path, 1)
  expect_identical(format(file.info(path)$mode), "640")
})

test_that("heads refused before the app are logged: 400 malformed, 431 too large, 408 stalled", {
  for (fmt in c("combined", "json")) {
    path <- tempfile("access", fileext = ".log")
    s <- local_server(ok_app, options = rookdOptions(access_log = path, access_log_format = fmt,
                                                     max_header_bytes = 4096, header_timeout = 1))
    bad <- raw_http(s$getPort(), list(send("GET /a b c d\r\n\r\n"), response()))
    expect_identical(bad$responses[[1]]$status, 400L)
    big <- raw_http(s$getPort(), list(send("GET /big HTTP/1.1\r\nHost: h\r\nX-Big: ", strrep("b", 10000),
                                           "\r\n\r\n"), response()))
    expect_identical(big$responses[[1]]$status, 431L)
    slow <- raw_http(s$getPort(), list(send("GET /stalled HTTP/1.1\r\nHost: h\r\n"), response()),
                     timeout = 10)
    expect_identical(slow$responses[[1]]$status, 408L)
    lines <- log_lines_of(path, 3)
    expect_length(lines, 3)
    if (fmt == "combined") {
      expect_match(lines[1], '^127\\.0\\.0\\.1 - - \\[.*\\] "- - HTTP/1\\.1" 400 - ', perl = TRUE)
      expect_match(lines[2], '^127\\.0\\.0\\.1 - - \\[.*\\] "- - HTTP/1\\.1" 431 - ', perl = TRUE)
      expect_match(lines[3], '^127\\.0\\.0\\.1 - - \\[.*\\] "- - HTTP/1\\.1" 408 16 ', perl = TRUE)
    } else {
      j <- lapply(lines, jsonlite::fromJSON)
      expect_identical(vapply(j, function(x) x$status, 1L), c(400L, 431L, 408L))
      expect_identical(vapply(j, function(x) x$client, ""), rep("127.0.0.1", 3))
      expect_identical(vapply(j, function(x) x$method, ""), rep("-", 3))
    }
  }
})

test_that("HTTP/2 heads refused before the app are logged too: 431 too many fields, 400 Host against :authority", {
  skip_if(!nzchar(Sys.which("curl")), "curl is not installed")
  path <- tempfile("access", fileext = ".log")
  s <- local_server(ok_app, options = rookdOptions(access_log = path, access_log_format = "json",
                                                   max_headers = 20))
  url <- sprintf("http://127.0.0.1:%d/h2", s$getPort())
  many <- as.vector(rbind("-H", sprintf("X-F%d: v", 1:30)))
  r1 <- processx::run("curl", c("-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
                               many, url), error_on_status = FALSE, timeout = 20)
  expect_identical(r1$stdout, "431")
  # A Host field besides :authority naming another host (Python h2, helper-net.R).
  r2 <- net_py("host", s$getPort(), "/h2", "elsewhere.example")
  expect_identical(r2$status, "400")
  j <- lapply(log_lines_of(path, 2), jsonlite::fromJSON)
  expect_identical(vapply(j, function(x) x$status, 1L), c(431L, 400L))
  expect_identical(vapply(j, function(x) x$protocol, ""), rep("HTTP/2", 2))
  expect_identical(vapply(j, function(x) x$method, ""), rep("-", 2))
})

test_that("a 64 KB user agent and a referer full of quotes stay one line of escaped fields", {
  path <- tempfile("access", fileext = ".log")
  s <- local_server(ok_app, options = rookdOptions(access_log = path, max_header_bytes = 200000))
  ua <- strrep('"\\', 32000)
  r <- raw_http(s$getPort(), list(send("GET /u HTTP/1.1\r\nHost: h\r\nUser-Agent: ", ua,
                                       "\r\nReferer: \"] 200 \"\r\nConnection: close\r\n\r\n"), response()))
  expect_identical(r$responses[[1]]$status, 200L)
  lines <- log_lines_of(path, 1)
  expect_length(lines, 1)
  # Quotes only as field delimiters: 3 pairs (request, referer, user agent).
  expect_identical(lengths(regmatches(lines, gregexpr('"', lines, fixed = TRUE))), 6L)
})
