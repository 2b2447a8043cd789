# HTTP/2 over plain TCP with prior knowledge (h2c), with real clients: curl
# --http2-prior-knowledge, h2load, Python h2 (raw frames where an attack needs them) and
# httpx. Each test skips only when its client is missing.

skip_if_no_curl_h2 <- function() {
  if (!nzchar(Sys.which("curl"))) testthat::skip("curl is not installed")
  v <- tryCatch(system2("curl", "--version", stdout = TRUE), error = function(e) "")
  if (!any(grepl("HTTP2", v))) testthat::skip("curl has no HTTP/2 support")
}

# A python3 that has the h2 package (python3-h2), or NA.
h2_python <- local({
  found <- NULL
  function() {
    if (is.null(found)) {
      candidates <- unique(c(Sys.which("python3"), "/usr/bin/python3"))
      candidates <- candidates[nzchar(candidates) & file.exists(candidates)]
      ok <- vapply(candidates, function(py) {
        identical(suppressWarnings(system2(py, c("-c", shQuote("import h2, hpack")),
                                           stdout = FALSE, stderr = FALSE)), 0L)
      }, logical(1))
      found <<- if (any(ok)) candidates[ok][[1]] else NA_character_
    }
    found
  }
})

skip_if_no_python_h2 <- function() {
  if (is.na(h2_python())) testthat::skip("no python3 with the h2 package (Debian: python3-h2)")
}

h2_script <- function() testthat::test_path("..", "clients", "h2_client.py")

# Run h2_client.py MODE PORT [ARG] while pumping; its JSON answer.
h2_py <- function(mode, port, arg = NULL, timeout = 30) {
  skip_if_no_python_h2()
  out <- run_pumping(h2_python(), c(h2_script(), mode, port, arg), timeout = timeout)
  line <- tail(strsplit(out$stdout, "\n", fixed = TRUE)[[1]], 1)
  if (out$status != 0 || !length(line)) stop("h2_client.py ", mode, " failed:\n", out$stderr, call. = FALSE)
  jsonlite::fromJSON(line, simplifyVector = FALSE)
}

curl_h2 <- function(url, ..., timeout = 30) {
  skip_if_no_curl_h2()
  run_pumping("curl", c("-s", "--http2-prior-knowledge", ..., url), timeout = timeout)
}

# The app every test serves: /env, /echo, /slow (a promise settled after 1 s), /fast/*,
# /sse (a streamed body), /hop (hop-by-hop headers HTTP/2 forbids), /limited (onHeaders
# refuses bodies over 1000 bytes).
h2_app <- function() {
  list(
    onHeaders = function(req) {
      if (req$PATH_INFO == "/limited" && as.numeric(req$CONTENT_LENGTH %||% 0) > 1000) {
        return(list(status = 413L, headers = list("Content-Type" = "text/plain"), body = "too big\n"))
      }
      NULL
    },
    call = function(req) {
      path <- req$PATH_INFO
      text <- function(x, status = 200L, headers = list()) {
        list(status = status, headers = c(list("Content-Type" = "text/plain"), headers), body = x)
      }
      if (path == "/env") {
        return(text(paste(req$SERVER_PROTOCOL, req$HTTP_HOST, req$SERVER_NAME, req$rook.url_scheme,
                          req$HEADERS[["host"]], sep = "|")))
      }
      if (path == "/echo") {
        body <- req$rook.input$read()
        return(list(status = 200L, headers = list("Content-Type" = "application/octet-stream"),
                    body = body))
      }
      if (path == "/slow") {
        return(promises::promise(function(resolve, reject) {
          later::later(function() resolve(text("slow")), 1)
        }))
      }
      if (path == "/sse") {
        n <- 0
        return(list(status = 200L, headers = list("Content-Type" = "text/event-stream"),
                    body = function() {
                      n <<- n + 1
                      if (n > 3) NULL else sseEvent(paste("tick", n), id = n)
                    }))
      }
      if (path == "/hop") {
        return(text("hop", headers = list("Connection" = "close", "Keep-Alive" = "timeout=5",
                                          "Transfer-Encoding" = "chunked",
                                          "Upgrade" = "foo", "X-Kept" = "yes")))
      }
      text("fast")
    }
  )
}

test_that("curl --http2-prior-knowledge: GET, env facts, hop-by-hop headers dropped", {
  s <- local_server(h2_app())
  r <- curl_h2(server_url(s, "/env"), "-w", "\n%{http_version} %{http_code}")
  expect_identical(r$status, 0L)
  port <- s$getPort()
  expect_identical(r$stdout, sprintf("HTTP/2.0|127.0.0.1:%d|127.0.0.1|http|127.0.0.1:%d\n2 200", port, port))
  h <- curl_h2(server_url(s, "/hop"), "-D", "-")
  expect_identical(h$status, 0L)
  expect_match(h$stdout, "^HTTP/2 200")
  expect_match(h$stdout, "x-kept: yes", fixed = TRUE)
  expect_false(grepl("connection:|keep-alive:|upgrade:|transfer-encoding:", h$stdout, ignore.case = TRUE))
})

test_that("curl h2: 10 MB POST echoed, SSE streamed, onHeaders 413 before the body", {
  s <- local_server(h2_app())
  f <- tempfile()
  on.exit(unlink(c(f, paste0(f, ".out"))), add = TRUE)
  writeBin(as.raw(rep_len(0:255, 10 * 1024^2)), f)
  r <- curl_h2(server_url(s, "/echo"), "--data-binary", paste0("@", f), "-o", paste0(f, ".out"),
               "-w", "%{http_version} %{http_code} %{size_download}")
  expect_identical(r$stdout, sprintf("2 200 %d", 10 * 1024^2))
  expect_identical(unname(tools::md5sum(paste0(f, ".out"))), unname(tools::md5sum(f)))
  sse <- curl_h2(server_url(s, "/sse"), "-N")
  expect_identical(sse$stdout, paste0("id: 1\ndata: tick 1\n\nid: 2\ndata: tick 2\n\n",
                                      "id: 3\ndata: tick 3\n"))
  # The early answer ends the response stream and resets the request's (RST_STREAM
  # NO_ERROR, RFC 9113 8.1). curl 7.88 reports that as a failure without showing the
  # answer, so nghttp (nghttp2-client, as h2load) is the client here.
  if (!nzchar(Sys.which("nghttp"))) skip("nghttp is not installed (Debian: nghttp2-client)")
  big <- run_pumping("nghttp", c("-v", "-d", f, server_url(s, "/limited")))
  expect_match(big$stdout, ":status: 413", fixed = TRUE)
  expect_match(big$stdout, "too big", fixed = TRUE)
  expect_match(big$stdout, "RST_STREAM frame[^\n]*\n *\\(error_code=NO_ERROR", perl = TRUE)
})

test_that("curl h2: static paths with Range, ETag/304 and gzip", {
  skip_if_no_curl_h2()
  d <- tempfile()
  dir.create(d)
  on.exit(unlink(d, recursive = TRUE), add = TRUE)
  writeLines(rep("hello static world over http2", 200), file.path(d, "a.txt"))
  s <- local_server(c(h2_app(), list(staticPaths = list("/st" = staticPath(d)))))
  u <- server_url(s, "/st/a.txt")
  rng <- curl_h2(u, "-r", "0-4", "-w", "|%{http_code}")
  expect_identical(rng$stdout, "hello|206")
  head <- curl_h2(u, "-D", "-", "-o", "/dev/null")
  etag <- sub("(?is).*\netag: ([^\r\n]+).*", "\\1", head$stdout, perl = TRUE)
  expect_match(etag, '^"')
  nm <- curl_h2(u, "-H", paste0("If-None-Match: ", etag), "-o", "/dev/null", "-w", "%{http_code}")
  expect_identical(nm$stdout, "304")
  gz <- curl_h2(u, "-H", "Accept-Encoding: gzip", "-D", "-", "-o", "/dev/null")
  expect_match(gz$stdout, "content-encoding: gzip", ignore.case = TRUE)
})

test_that("curl --http2 on plain http (Upgrade: h2c) gets a correct HTTP/1.1 answer", {
  skip_if_no_curl_h2()
  s <- local_server(h2_app())
  r <- run_pumping("curl", c("-s", "--http2", "-w", "\n%{http_version} %{http_code}",
                             server_url(s, "/fast/u")))
  expect_identical(r$stdout, "fast\n1.1 200")
})

test_that("with http2 = FALSE a preface is not served as HTTP/2", {
  skip_if_no_curl_h2()
  s <- local_server(h2_app(), options = rookdOptions(http2 = FALSE))
  r <- curl_h2(server_url(s, "/fast/x"), "-w", "%{http_version} %{http_code}")
  expect_false(identical(r$stdout, "fast2 200"))
  # HTTP/1.1 is still served.
  expect_identical(run_pumping("curl", c("-s", server_url(s, "/fast/y")))$stdout, "fast")
})

test_that("h2load: 2000 requests, 100 streams on one connection, all 200", {
  if (!nzchar(Sys.which("h2load"))) skip("h2load is not installed (Debian: nghttp2-client)")
  s <- local_server(h2_app())
  r <- run_pumping("h2load", c("-n", "2000", "-c", "1", "-m", "100", server_url(s, "/fast/load")),
                   timeout = 60)
  expect_identical(r$status, 0L)
  expect_match(r$stdout, "requests: 2000 total, 2000 started, 2000 done, 2000 succeeded", fixed = TRUE)
  expect_match(r$stdout, "status codes: 2000 2xx", fixed = TRUE)
})

test_that("python h2: 100 concurrent streams, the slow one answered last", {
  s <- local_server(h2_app())
  r <- h2_py("concurrent", s$getPort(), 100)
  expect_identical(r$end, "done")
  expect_identical(r$ok, 100L)
  expect_identical(r$slow_position, 99L)
  expect_identical(r$server_max_streams, 100L)
})

test_that("python h2: a rapid-reset flood gets GOAWAY, other connections are served", {
  s <- local_server(h2_app())
  r <- h2_py("rapid_reset", s$getPort(), 2000)
  expect_true(!is.null(r$goaway) || r$end %in% c("closed", "closed while sending"))
  if (!is.null(r$goaway)) expect_identical(r$goaway$code, 11L) # ENHANCE_YOUR_CALM
  expect_lt(r$sent, 2000 + 1)
  expect_identical(r$other_connection, "200")
})

test_that("python h2: a CONTINUATION flood is cut, other connections are served", {
  s <- local_server(h2_app())
  r <- h2_py("continuation", s$getPort(), 64 * 1024^2)
  expect_identical(r$end, "closed while sending")
  expect_identical(r$other_connection, "200")
})

test_that("python h2: a header list over h2_max_header_list_size is refused", {
  s <- local_server(h2_app(), options = rookdOptions(h2_max_header_list_size = 8192))
  r <- h2_py("big_headers", s$getPort(), 20000)
  expect_false(identical(r$status, "200"))
  expect_identical(r$other_connection, "200")
  ok <- h2_py("big_headers", s$getPort(), 4000)
  expect_identical(ok$status, "200")
})

test_that("python h2: an idle connection gets GOAWAY after keepalive_timeout", {
  s <- local_server(h2_app(), options = rookdOptions(keepalive_timeout = 1))
  r <- h2_py("idle", s$getPort())
  expect_identical(r$status, "200")
  expect_identical(r$goaway$code, 0L)
  expect_identical(r$then, "closed")
})

test_that("python h2: stopping the server sends GOAWAY and lets an open stream finish", {
  skip_if_no_python_h2()
  s <- startServer("127.0.0.1", 0, h2_app())
  on.exit(try(s$stop(), silent = TRUE), add = TRUE)
  out <- tempfile()
  on.exit(unlink(out), add = TRUE)
  p <- processx::process$new(h2_python(), c(h2_script(), "goaway", s$getPort()), stdout = out,
                             stderr = "|", cleanup = TRUE)
  wait_until(function() file.exists(out) && any(readLines(out, warn = FALSE) == "ready"),
             timeout = 10, what = "the client's request")
  pump_for(0.2)
  s$stop()
  wait_until(function() !p$is_alive(), timeout = 20, what = "the client to finish")
  r <- jsonlite::fromJSON(tail(readLines(out), 1), simplifyVector = FALSE)
  expect_identical(r$goaway$code, 0L)
  expect_identical(r$status, "200")
  expect_identical(r$body, "slow")
})

test_that("httpx (http2=True, no http1) is served over HTTP/2", {
  skip_if_no_python_h2()
  ok <- identical(suppressWarnings(system2(h2_python(), c("-c", shQuote("import httpx")),
                                           stdout = FALSE, stderr = FALSE)), 0L)
  if (!ok) skip("python3-httpx is not installed")
  s <- local_server(h2_app())
  r <- h2_py("httpx", s$getPort())
  expect_identical(r$version, "HTTP/2")
  expect_identical(r$status, 200L)
  expect_match(r$text, "^HTTP/2.0\\|")
  expect_identical(r$post_status, 200L)
  expect_identical(r$post_len, 1000000L)
})

test_that("WebSockets keep working over HTTP/1.1 on an HTTP/2-enabled port", {
  store <- new.env()
  s <- local_server(ws_record_app(store))
  res <- ws_py(s$getPort(), r"---(
async def main():
    async with connect("/ws") as ws:
        await ws.send("over h1")
        return await asyncio.wait_for(ws.recv(), 10)
)---")
  expect_identical(res, "over h1")
})

test_that("python h2: body limits per stream: 413 over max_body_bytes, 408 for a stalled body", {
  s <- local_server(h2_app(), options = rookdOptions(max_body_bytes = 1000, body_timeout = 1))
  big <- h2_py("body", s$getPort(), 5000)
  expect_identical(big$status, "413")
  expect_identical(big$`next`, "200")
  ok <- h2_py("body", s$getPort(), 900)
  expect_identical(ok$status, "200")
  stalled <- h2_py("body", s$getPort(), 0)
  expect_identical(stalled$status, "408")
  expect_identical(stalled$`next`, "200")
})
