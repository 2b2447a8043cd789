# httpuv parity beyond the basics: promises, streaming, SSE, Rook's classes, pipe
# servers, URI utilities. Real sockets, real clients (curl).

test_that("a promise-returning app answers later while other requests are served", {
  skip_if_not_installed("promises")
  s <- local_server(function(req) {
    if (req$PATH_INFO == "/slow") {
      return(promises::promise(function(resolve, reject) {
        later::later(function() resolve(list(status = 200L, headers = list(), body = paste("slow", req$PATH_INFO))), 0.7)
      }))
    }
    if (req$PATH_INFO == "/rejected") return(promises::promise_reject(simpleError("nope")))
    list(status = 200L, headers = list(), body = "fast")
  })
  t0 <- Sys.time()
  res <- http_many(list(list(url = server_url(s, "/slow")), list(url = server_url(s, "/fast"))))
  expect_identical(res[[1]]$text, "slow /slow")
  expect_identical(res[[2]]$text, "fast")
  expect_gte(as.numeric(Sys.time() - t0, units = "secs"), 0.6)
  r <- http_req(server_url(s, "/rejected"))
  expect_identical(r$status, 500L)
  expect_false(grepl("nope", r$text))
})

test_that("a function body streams 100 MB with chunked encoding and flat memory", {
  skip_if(!nzchar(Sys.which("curl")), "system curl is missing")
  chunk <- as.raw(rep(7L, 1024^2))
  s <- local_server(function(req) {
    i <- 0
    list(status = 200L, headers = list("Content-Type" = "application/octet-stream"),
         body = function() {
           i <<- i + 1
           if (i > 100) NULL else chunk
         })
  })
  rss <- function() {
    as.numeric(gsub("[^0-9]", "", grep("^VmRSS", readLines("/proc/self/status"), value = TRUE)))
  }
  gc()
  before <- rss()
  out <- run_pumping("curl", c("-s", "-D", "-", "-o", "/dev/null", "-w", "%{size_download}",
                               server_url(s, "/big")), timeout = 60)
  expect_identical(out$status, 0L)
  expect_match(out$stdout, "transfer-encoding: chunked", ignore.case = TRUE)
  expect_match(out$stdout, "104857600$")
  expect_lt(rss() - before, 50 * 1024)  # kB: far below the 100 MB streamed
  # The stream's end reaches R through the Door, possibly just after curl has finished.
  wait_until(function() rookd:::rookd_stats()$streams == 0L, timeout = 5,
             what = "the stream to be forgotten")
  wait_until(function() rookd:::rookd_stats()$lent_vectors == 0L, timeout = 5,
             what = "lent chunks to be released")
})

test_that("Server-Sent Events arrive one by one through a promise-returning generator", {
  skip_if_not_installed("promises")
  s <- local_server(function(req) {
    n <- 0
    list(status = 200L, headers = list("Content-Type" = "text/event-stream"),
         body = function() {
           n <<- n + 1
           if (n > 3) return(NULL)
           promises::promise(function(resolve, reject) {
             later::later(function() resolve(sseEvent(paste("tick", n), event = "t", id = n)), 0.1)
           })
         })
  })
  out <- run_pumping("curl", c("-s", "-N", server_url(s, "/events")), timeout = 20)
  expect_identical(out$stdout, paste0(
    "event: t\nid: 1\ndata: tick 1\n\n",
    "event: t\nid: 2\ndata: tick 2\n\n",
    "event: t\nid: 3\ndata: tick 3\n"))
  expect_identical(sseEvent("a\nb"), "data: a\ndata: b\n\n")
  expect_error(sseEvent("x", id = "a\nb"), "single line")
})

test_that("Rook's Builder, URLMap, Static, Redirect, Request, Response and Multipart run unmodified", {
  skip_if_not_installed("Rook")
  skip_if(!nzchar(Sys.which("curl")), "system curl is missing")
  root <- tempfile()
  dir.create(file.path(root, "static"), recursive = TRUE)
  writeLines("a static file", file.path(root, "static", "a.txt"))
  upload <- tempfile()
  writeBin(as.raw(rep(1:255, 4000)), upload)
  app <- Rook::Builder$new(
    Rook::Static$new(urls = "/static", root = root),
    Rook::URLMap$new(
      "/form" = function(env) {
        req <- Rook::Request$new(env)
        res <- Rook::Response$new()
        post <- req$POST()
        up <- post$upload
        res$write(paste0("q=", req$GET()$q, " name=", post$name, " file=",
                         if (is.null(up)) "none" else paste(up$filename, file.size(up$tempfile))))
        res$set_cookie("a", "1")
        res$set_cookie("b", "2")
        res$finish()
      },
      "/redir" = Rook::Redirect$new("/form"),
      ".*" = function(env) {
        res <- Rook::Response$new()
        res$write("root")
        res$finish()
      }
    )
  )
  s <- local_server(app)
  # Rook's Multipart keeps the part's trailing CRLF in the temp file: 2 bytes more, the
  # same under httpuv 1.6.9.
  rook_size <- file.size(upload) + 2
  form <- run_pumping("curl", c("-s", "-i", "-F", "name=bob", "-F", paste0("upload=@", upload),
                                server_url(s, "/form?q=1")))
  expect_match(form$stdout, sprintf("q=1 name=bob file=%s %d", basename(upload), rook_size), fixed = TRUE)
  expect_length(regmatches(form$stdout, gregexpr("(?i)set-cookie: ", form$stdout, perl = TRUE))[[1]], 2)
  chunked <- run_pumping("curl", c("-s", "-H", "Transfer-Encoding: chunked", "-F", "name=chunky",
                                   "-F", paste0("upload=@", upload), server_url(s, "/form")))
  expect_match(chunked$stdout, sprintf("name=chunky file=%s %d", basename(upload), rook_size), fixed = TRUE)
  expect_identical(http_req(server_url(s, "/static/a.txt"))$text, "a static file\n")
  redir <- http_req(server_url(s, "/redir"), opts = list(followlocation = FALSE))
  expect_identical(redir$status, 302L)
  expect_identical(hdr(redir, "location"), "/form")
  expect_identical(http_req(server_url(s, "/anything"))$text, "root")
})

test_that("a pipe server answers over its Unix socket", {
  skip_if(!nzchar(Sys.which("curl")), "system curl is missing")
  path <- tempfile(fileext = ".sock")
  p <- startPipeServer(path, strtoi("077", 8L), function(req) {
    list(status = 200L, headers = list(),
         body = paste(req$PATH_INFO, req$SERVER_NAME, nzchar(req$REMOTE_ADDR)))
  })
  on.exit(p$stop(), add = TRUE)
  expect_true(file.exists(path))
  expect_identical(file.info(path)$mode, as.octmode("700"))
  out <- run_pumping("curl", c("-s", "--unix-socket", path, "http://localhost/hello"))
  expect_identical(out$stdout, "/hello localhost FALSE")
  expect_s3_class(p, "PipeServer")
  expect_identical(p$getName(), path)
  p$stop()
  expect_false(file.exists(path))
})

test_that("URI helpers give JavaScript's answers, UTF-8 and NA-safe", {
  # Expected values: what encodeURI() etc. return in a JavaScript engine, except "#",
  # which httpuv (and so Shiny's URLencode() of file names) encodes.
  expect_identical(encodeURI("http://x.org/a b?q=ü&r=[1]#top"), "http://x.org/a%20b?q=%C3%BC&r=%5B1%5D%23top")
  expect_identical(encodeURIComponent("a b/ü?x=1&y=#z~!*()'"), "a%20b%2F%C3%BC%3Fx%3D1%26y%3D%23z~!*()'")
  expect_identical(encodeURIComponent("😀"), "%F0%9F%98%80")
  expect_identical(decodeURI("%2F%20a%3F%C3%BC"), "%2F a%3Fü")
  expect_identical(decodeURIComponent("%2F%20a%3F%C3%BC"), "/ a?ü")
  expect_identical(Encoding(decodeURIComponent("%C3%BC")), "UTF-8")
  expect_identical(encodeURI(c("a b", NA)), c("a%20b", NA))
  expect_identical(decodeURIComponent("%zz"), "%zz")
  expect_warning(x <- decodeURIComponent(c("%FF", "ok")), "could not be decoded")
  expect_identical(x, c(NA, "ok"))
  expect_error(encodeURI(1), "character vector")
  expect_identical(rawToBase64(charToRaw("hello")), "aGVsbG8=")
  expect_identical(rawToBase64(raw(0)), "")
  expect_identical(ipFamily(c("127.0.0.1", "::1", "localhost", NA)), c(4L, 6L, -1L, -1L))
})
