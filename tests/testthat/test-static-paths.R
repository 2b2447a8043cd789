# Static paths: httpuv's API in R, served by the engine over real sockets.
# Every request has a timeout (helper-server.R); servers stop when their test ends.

# A small site: HTML, CSS, JS, JSON, a binary file, a compressible text file, a
# subdirectory, and a secret next to (not inside) the served directory.
sp_site <- function(.env = parent.frame()) {
  base <- tempfile("sp")
  dir.create(file.path(base, "www", "sub"), recursive = TRUE)
  withr::defer(unlink(base, recursive = TRUE), envir = .env)
  www <- file.path(base, "www")
  writeLines("<h1>home</h1>", file.path(www, "index.html"))
  writeLines("<p>sub</p>", file.path(www, "sub", "index.html"))
  writeLines("plain", file.path(www, "sub", "page.txt"))
  writeLines("body { color: red; }", file.path(www, "style.css"))
  writeLines("console.log(1);", file.path(www, "app.js"))
  writeLines('{"a": 1}', file.path(www, "data.json"))
  writeBin(as.raw(c(0x89, 0x50, 0x4e, 0x47, 0:20)), file.path(www, "img.png"))
  writeLines(strrep("All work and no play. ", 400), file.path(www, "big.txt"))
  writeBin(charToRaw("0123456789"), file.path(www, "digits.txt"))
  writeLines("TOP SECRET", file.path(base, "secret.txt"))
  list(base = base, www = normalizePath(www), secret = file.path(base, "secret.txt"))
}

# An app that counts its calls, so tests can tell static answers from R's.
sp_counting_app <- function(...) {
  counter <- new.env()
  counter$n <- 0L
  app <- list(
    call = function(req) {
      counter$n <- counter$n + 1L
      list(status = 200L, headers = list("Content-Type" = "text/plain"),
           body = paste0("app:", req$PATH_INFO))
    },
    ...
  )
  list(app = app, counter = counter)
}

sp_url <- function(s, path) sprintf("http://127.0.0.1:%d%s", s$getPort(), path)

# No redirects followed and no content decoding, so tests see what the server sent; curl
# offers no Accept-Encoding of its own (an empty header removes it) unless a test adds one.
sp_get <- function(s, path, headers = character(), method = NULL, opts = list()) {
  if (!any(grepl("^accept-encoding:", headers, ignore.case = TRUE))) {
    headers <- c(headers, "Accept-Encoding:")
  }
  opts <- utils::modifyList(list(followlocation = FALSE, http_content_decoding = FALSE), opts)
  http_req(sp_url(s, path), method = method, headers = headers, opts = opts, timeout = 10)
}

test_that("staticPath(), excludeStaticPath() and staticPathOptions() build httpuv's objects", {
  site <- sp_site()
  p <- staticPath(site$www, indexhtml = FALSE, headers = list("X-A" = "1"),
                  validation = '"x-token" == "abc"')
  expect_s3_class(p, "staticPath")
  expect_identical(p$path, site$www)
  expect_s3_class(p$options, "staticPathOptions")
  expect_identical(p$options$indexhtml, FALSE)
  expect_null(p$options$fallthrough)
  expect_identical(p$options$headers, c("X-A" = "1"))
  expect_identical(p$options$validation, c("==", "x-token", "abc"))
  expect_identical(p$options$exclude, FALSE)
  expect_false("symlinks" %in% names(p$options))
  expect_identical(staticPath(site$www, symlinks = "refuse")$options$symlinks, "refuse")

  e <- excludeStaticPath()
  expect_identical(e$path, "")
  expect_identical(e$options$exclude, TRUE)

  o <- staticPathOptions()
  expect_identical(names(o), c("indexhtml", "fallthrough", "html_charset", "validation",
                               "exclude", "headers", "symlinks"))
  expect_identical(o$headers, c(a = "a")[0])
  expect_identical(o$validation, character(0))
  expect_identical(staticPathOptions(html_charset = character(0))$html_charset, "")
  expect_identical(staticPathOptions(validation = "")$validation, character(0))
  expect_identical(o$symlinks, "follow")
  expect_identical(staticPathOptions(symlinks = "inside")$symlinks, "inside")
})

test_that("the objects and their printouts are httpuv's", {
  skip_if_not_installed("httpuv")
  site <- sp_site()
  args <- list(site$www, indexhtml = TRUE, html_charset = "", headers = list(A = "1", B = "2"),
               validation = '"a" == "b"')
  expect_identical(do.call(staticPath, args), do.call(httpuv::staticPath, args))
  expect_identical(staticPath(site$www), httpuv::staticPath(site$www))
  expect_identical(excludeStaticPath(), httpuv::excludeStaticPath())
  mine <- staticPathOptions(headers = c(X = "y"), fallthrough = TRUE)
  theirs <- httpuv::staticPathOptions(headers = c(X = "y"), fallthrough = TRUE)
  mine$symlinks <- NULL
  expect_identical(mine, theirs)
  mine <- staticPathOptions()
  mine$symlinks <- NULL
  expect_identical(mine, httpuv::staticPathOptions())

  expect_identical(format(do.call(staticPath, args)), format(do.call(httpuv::staticPath, args)))
  expect_identical(format(excludeStaticPath()), format(httpuv::excludeStaticPath()))
  mine <- staticPathOptions(headers = list(A = "1"))
  mine$symlinks <- NULL
  expect_identical(format(mine), format(httpuv::staticPathOptions(headers = list(A = "1"))))
  expect_identical(capture.output(print(staticPath(site$www))),
                   capture.output(print(httpuv::staticPath(site$www))))
  # Called directly: once httpuv is loaded, its methods answer for these classes.
  expect_match(rookd:::format.staticPathOptions(staticPathOptions(symlinks = "inside")),
               "  Symlinks:          inside", fixed = TRUE)
  expect_match(rookd:::format.staticPathOptions(staticPathOptions()),
               "  Symlinks:          follow", fixed = TRUE)
  expect_no_match(rookd:::format.staticPathOptions(httpuv::staticPathOptions()), "Symlinks")
  expect_no_match(rookd:::format.staticPath(staticPath(site$www)), "Symlinks", fixed = TRUE)
  expect_match(rookd:::format.staticPath(staticPath(site$www, symlinks = "refuse")),
               "  Symlinks:          refuse", fixed = TRUE)
})

test_that("bad arguments fail with httpuv's messages", {
  expect_error(staticPath(""), "`path` must be a non-empty string.", fixed = TRUE)
  expect_error(staticPath(c("a", "b")), "non-empty string")
  expect_error(staticPath(NA_character_), "non-empty string")
  expect_error(staticPath(file.path(tempdir(), "does-not-exist")), "No such file")
  expect_error(staticPathOptions(exclude = 1), "`exclude` option must be TRUE or FALSE.", fixed = TRUE)
  expect_error(staticPathOptions(validation = "a"),
               "`validation` must be a string of the form: '\"xxx\" == \"yyy\"'", fixed = TRUE)
  expect_error(staticPathOptions(validation = c("a", "b")), "zero or one element")
  expect_error(staticPathOptions(headers = list(1)), "`headers` option must be a named list")
  expect_error(staticPathOptions(indexhtml = "yes"), "`indexhtml` option must be TRUE or FALSE")
  expect_error(staticPathOptions(symlinks = NA), "`symlinks` option must be one of")
  expect_error(staticPathOptions(symlinks = "yes"), "\"follow\", \"inside\", \"refuse\"")
  expect_error(staticPath(tempdir(), symlinks = TRUE), "`symlinks` option")
  app <- function(req) list(status = 200L, headers = list(), body = "")
  expect_error(startServer("127.0.0.1", 0, list(call = app, staticPathOptions = list(a = 1))),
               "staticPathOptions must be an object of class staticPathOptions.", fixed = TRUE)
  expect_error(startServer("127.0.0.1", 0, list(call = app, staticPaths = list("x"))),
               "paths must be a named character vector")
  expect_error(startServer("127.0.0.1", 0, list(call = app, staticPaths = list(a = 1))),
               "Cannot convert object of class numeric to a staticPath object.", fixed = TRUE)
  site <- sp_site()
  expect_error(
    startServer("127.0.0.1", 0, list(call = app, staticPaths = list(a = site$www),
                                     staticPathOptions = staticPathOptions(headers = list("bad name" = "x")))),
    "bad name"
  )
  expect_length(listServers(), 0)
})

test_that("getStaticPaths() and getStaticPathOptions() return what httpuv's return", {
  site <- sp_site()
  paths <- list("/" = site$www, "b/" = staticPath(site$www, indexhtml = FALSE, headers = list(A = "1")),
                "/b/x" = excludeStaticPath(), "f" = file.path(site$www, "app.js"))
  opts <- staticPathOptions(validation = '"k" == "v"', headers = list(B = "2"))
  app <- list(call = function(req) list(status = 200L, headers = list(), body = ""),
              staticPaths = paths, staticPathOptions = opts)
  s <- local_server(app)
  got <- s$getStaticPaths()
  expect_identical(names(got), c("/", "/b", "/b/x", "/f"))
  expect_identical(got$`/b`$options$headers, c(A = "1"))
  expect_null(got$`/b`$options$fallthrough)
  expect_identical(got$`/b/x`$path, "")
  expect_identical(got$`/f`$path, normalizePath(file.path(site$www, "app.js")))
  o <- s$getStaticPathOptions()
  expect_s3_class(o, "staticPathOptions")
  expect_identical(o$validation, c("==", "k", "v"))
  expect_identical(o$headers, c(B = "2"))
  expect_identical(o$symlinks, "follow")

  skip_if_not_installed("httpuv")
  h <- httpuv::startServer("127.0.0.1", httpuv::randomPort(), list(
    call = app$call,
    staticPaths = list("/" = site$www, "b/" = httpuv::staticPath(site$www, indexhtml = FALSE, headers = list(A = "1")),
                       "/b/x" = httpuv::excludeStaticPath(), "f" = file.path(site$www, "app.js")),
    staticPathOptions = httpuv::staticPathOptions(validation = '"k" == "v"', headers = list(B = "2"))
  ))
  on.exit(h$stop(), add = TRUE)
  expect_identical(got, h$getStaticPaths())
  o$symlinks <- NULL
  expect_identical(o, h$getStaticPathOptions())
  expect_identical(s$setStaticPath(z = site$www), h$setStaticPath(z = site$www))
  expect_identical(s$removeStaticPath("/z"), h$removeStaticPath("/z"))
  theirs <- h$setStaticPathOption(fallthrough = TRUE, html_charset = "latin1")
  mine <- s$setStaticPathOption(fallthrough = TRUE, html_charset = "latin1")
  mine$symlinks <- NULL
  expect_identical(mine, theirs)
})

test_that("files, index.html, redirects, MIME types and HEAD are served without R", {
  site <- sp_site()
  a <- sp_counting_app(staticPaths = list("/" = site$www, "/one" = file.path(site$www, "data.json")))
  s <- local_server(a$app)

  r <- sp_get(s, "/")
  expect_equal(r$status, 200)
  expect_identical(r$text, "<h1>home</h1>\n")
  expect_identical(hdr(r, "content-type"), "text/html; charset=utf-8")
  expect_false(is.null(hdr(r, "last-modified")))
  expect_false(is.null(hdr(r, "etag")))
  expect_identical(hdr(r, "accept-ranges"), "bytes")

  expect_identical(sp_get(s, "/sub/")$text, "<p>sub</p>\n")
  r <- sp_get(s, "/sub?x=1")
  expect_equal(r$status, 301)
  expect_identical(hdr(r, "location"), "/sub/?x=1")
  expect_identical(sp_get(s, "/sub/page.txt")$text, "plain\n")

  types <- c("/style.css" = "text/css", "/app.js" = "javascript", "/data.json" = "application/json",
             "/img.png" = "image/png", "/sub/page.txt" = "text/plain", "/one" = "application/json")
  for (p in names(types)) {
    r <- sp_get(s, p)
    expect_equal(r$status, 200, label = p)
    expect_match(hdr(r, "content-type"), types[[p]], fixed = TRUE, label = p)
  }
  expect_identical(sp_get(s, "/img.png")$body, readBin(file.path(site$www, "img.png"), "raw", 100))

  r <- sp_get(s, "/big.txt", method = "HEAD")
  expect_equal(r$status, 200)
  expect_identical(hdr(r, "content-length"), as.character(file.size(file.path(site$www, "big.txt"))))
  expect_length(r$body, 0)

  expect_equal(sp_get(s, "/nope.txt")$status, 404)
  expect_identical(a$counter$n, 0L)
})

test_that("conditional requests get 304 by If-Modified-Since and by If-None-Match", {
  site <- sp_site()
  a <- sp_counting_app(staticPaths = list("/s" = site$www))
  s <- local_server(a$app)
  r <- sp_get(s, "/s/style.css")
  etag <- hdr(r, "etag")
  lm <- hdr(r, "last-modified")
  r2 <- sp_get(s, "/s/style.css", headers = paste("If-None-Match:", etag))
  expect_equal(r2$status, 304)
  expect_length(r2$body, 0)
  expect_identical(hdr(r2, "etag"), etag)
  expect_equal(sp_get(s, "/s/style.css", headers = 'If-None-Match: "other"')$status, 200)
  expect_equal(sp_get(s, "/s/style.css", headers = paste("If-Modified-Since:", lm))$status, 304)
  expect_equal(sp_get(s, "/s/style.css",
                      headers = "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT")$status, 200)
  expect_identical(a$counter$n, 0L)
})

test_that("ranges: 206 single and multipart, 416 when unsatisfiable", {
  site <- sp_site()
  s <- local_server(sp_counting_app(staticPaths = list("/" = site$www))$app)
  r <- sp_get(s, "/digits.txt", headers = "Range: bytes=2-5")
  expect_equal(r$status, 206)
  expect_identical(r$text, "2345")
  expect_identical(hdr(r, "content-range"), "bytes 2-5/10")
  r <- sp_get(s, "/digits.txt", headers = "Range: bytes=-3")
  expect_identical(r$text, "789")

  r <- sp_get(s, "/digits.txt", headers = "Range: bytes=0-1,7-8")
  expect_equal(r$status, 206)
  ct <- hdr(r, "content-type")
  expect_match(ct, "^multipart/byteranges; boundary=")
  expect_match(r$text, "Content-Range: bytes 0-1/10", fixed = TRUE)
  expect_match(r$text, "Content-Range: bytes 7-8/10", fixed = TRUE)
  expect_match(r$text, "\r\n01\r\n", fixed = TRUE)
  expect_match(r$text, "\r\n78\r\n", fixed = TRUE)

  r <- sp_get(s, "/digits.txt", headers = "Range: bytes=100-")
  expect_equal(r$status, 416)
  expect_identical(hdr(r, "content-range"), "bytes */10")
})

test_that("methods other than GET and HEAD get 405 with Allow", {
  site <- sp_site()
  a <- sp_counting_app(staticPaths = list("/" = site$www))
  s <- local_server(a$app)
  for (m in c("POST", "PUT", "DELETE")) {
    r <- sp_get(s, "/index.html", method = m)
    expect_equal(r$status, 405, label = m)
    expect_identical(hdr(r, "allow"), "GET, HEAD")
  }
  expect_identical(a$counter$n, 0L)
})

test_that("paths that try to leave the directory are refused; backslash paths go to R as in httpuv", {
  site <- sp_site()
  a <- sp_counting_app(staticPaths = list("/static" = site$www))
  s <- local_server(a$app)
  attempts <- c("/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/%2E%2E/secret.txt",
                "/static/..%2fsecret.txt", "/static/sub%2f..%2f..%2fsecret.txt",
                "/static/sub/%2e%2e/%2e%2e/secret.txt",
                "/static/index.html%00.txt", "/static/%00")
  for (p in attempts) {
    r <- sp_get(s, p, opts = list(path_as_is = TRUE))
    expect_true(r$status %in% c(400, 404), label = p)
    expect_false(grepl("SECRET", r$text %||% ""), label = p)
  }
  # A raw NUL byte in the request line, which no URL library will send.
  skip_if_no_python()
  out <- raw_http(s$getPort(), list(send_raw(c(charToRaw("GET /static/a"), as.raw(0),
                                               charToRaw("b HTTP/1.1\r\nHost: x\r\n\r\n"))),
                                    read_all()), timeout = 5)
  expect_false(grepl("SECRET", out$steps[[2]]$text %||% ""))
  expect_match(out$steps[[2]]$text %||% "", "^HTTP/1.1 400")
  expect_identical(a$counter$n, 0L)
  # httpuv hands paths with a backslash (raw or encoded) to the app; the engine never
  # opens such a name.
  for (p in c("/static/..%5csecret.txt", "/static/..\\secret.txt")) {
    r <- sp_get(s, p, opts = list(path_as_is = TRUE))
    expect_match(r$text, "^app:/static/", label = p)
  }
  expect_identical(a$counter$n, 2L)
})

test_that("fallthrough, exclude and no match go to the app; others do not", {
  site <- sp_site()
  a <- sp_counting_app(staticPaths = list(
    "/ft" = staticPath(site$www, fallthrough = TRUE),
    "/st" = site$www,
    "/st/api" = excludeStaticPath()
  ))
  s <- local_server(a$app)
  expect_identical(sp_get(s, "/ft/index.html")$text, "<h1>home</h1>\n")
  expect_identical(a$counter$n, 0L)
  r <- sp_get(s, "/ft/missing.txt")
  expect_equal(r$status, 200)
  expect_identical(r$text, "app:/ft/missing.txt")
  expect_identical(a$counter$n, 1L)
  expect_equal(sp_get(s, "/st/missing.txt")$status, 404)
  expect_identical(a$counter$n, 1L)
  expect_identical(sp_get(s, "/st/api/users")$text, "app:/st/api/users")
  expect_identical(sp_get(s, "/other")$text, "app:/other")
  expect_identical(a$counter$n, 3L)
})

test_that("validation, html_charset and custom headers apply per path and server-wide", {
  site <- sp_site()
  a <- sp_counting_app(
    staticPaths = list(
      "/v" = staticPath(site$www, validation = '"X-Token" == "s3cret"'),
      "/c" = staticPath(site$www, html_charset = ""),
      "/l" = staticPath(site$www, html_charset = "iso-8859-1",
                        headers = list("Cache-Control" = "no-store", "X-Extra" = "yes")),
      "/d" = site$www
    ),
    staticPathOptions = staticPathOptions(headers = list("Cache-Control" = "max-age=60"))
  )
  s <- local_server(a$app)
  expect_equal(sp_get(s, "/v/index.html")$status, 403)
  expect_equal(sp_get(s, "/v/index.html", headers = "X-Token: wrong")$status, 403)
  expect_equal(sp_get(s, "/v/index.html", headers = "x-token: s3cret")$status, 200)
  expect_identical(hdr(sp_get(s, "/c/index.html"), "content-type"), "text/html")
  r <- sp_get(s, "/l/index.html")
  expect_identical(hdr(r, "content-type"), "text/html; charset=iso-8859-1")
  expect_identical(hdr(r, "cache-control"), "no-store")
  expect_identical(hdr(r, "x-extra"), "yes")
  r <- sp_get(s, "/d/index.html")
  expect_identical(hdr(r, "content-type"), "text/html; charset=utf-8")
  expect_identical(hdr(r, "cache-control"), "max-age=60")
  expect_null(hdr(r, "x-extra"))
  expect_identical(a$counter$n, 0L)
})

test_that("gzip is negotiated from Accept-Encoding q-values, with Vary", {
  site <- sp_site()
  s <- local_server(sp_counting_app(staticPaths = list("/" = site$www))$app)
  original <- readBin(file.path(site$www, "big.txt"), "raw", 1e6)
  r <- sp_get(s, "/big.txt", headers = "Accept-Encoding: gzip")
  expect_identical(hdr(r, "content-encoding"), "gzip")
  expect_match(paste(hdr_all(r, "vary"), collapse = ","), "Accept-Encoding", fixed = TRUE)
  expect_identical(r$body[1:2], as.raw(c(0x1f, 0x8b)))
  expect_lt(length(r$body), length(original))
  expect_identical(memDecompress(r$body, "gzip"), original)

  r <- sp_get(s, "/big.txt", headers = "Accept-Encoding: br;q=1, gzip;q=0.5")
  expect_identical(hdr(r, "content-encoding"), "gzip")
  for (ae in c("gzip;q=0", "identity", "br", "*;q=0")) {
    r <- sp_get(s, "/big.txt", headers = paste("Accept-Encoding:", ae))
    expect_null(hdr(r, "content-encoding"), label = ae)
    expect_identical(r$body, original, label = ae)
  }
  r <- sp_get(s, "/big.txt")
  expect_null(hdr(r, "content-encoding"))
  expect_match(paste(hdr_all(r, "vary"), collapse = ","), "Accept-Encoding", fixed = TRUE)
  # Small files and binary types are sent as they are.
  expect_null(hdr(sp_get(s, "/style.css", headers = "Accept-Encoding: gzip"), "content-encoding"))
  expect_null(hdr(sp_get(s, "/img.png", headers = "Accept-Encoding: gzip"), "content-encoding"))
})

test_that("setStaticPath(), removeStaticPath() and setStaticPathOption() change a running server", {
  site <- sp_site()
  a <- sp_counting_app()
  s <- local_server(a$app)
  expect_identical(s$getStaticPaths(), list())
  expect_identical(sp_get(s, "/new/index.html")$text, "app:/new/index.html")
  expect_identical(a$counter$n, 1L)

  res <- withVisible(s$setStaticPath("new" = site$www, .list = list("/js/" = file.path(site$www, "app.js"))))
  expect_false(res$visible)
  expect_identical(res$value, s$getStaticPaths())
  expect_identical(names(res$value), c("/js", "/new"))
  expect_identical(sp_get(s, "/new/index.html")$text, "<h1>home</h1>\n")
  expect_identical(sp_get(s, "/js")$text, "console.log(1);\n")
  expect_identical(a$counter$n, 1L)

  # All or nothing: one bad entry leaves the table as it was.
  expect_error(s$setStaticPath(ok = site$www, bad = 3), "Cannot convert")
  expect_error(s$setStaticPath("x y" = site$www, .list = list(z = file.path(site$www, "nope"))),
               "No such file")
  expect_identical(names(s$getStaticPaths()), c("/js", "/new"))

  res <- withVisible(s$setStaticPathOption(headers = list("X-Live" = "1"), indexhtml = FALSE))
  expect_false(res$visible)
  expect_identical(res$value, s$getStaticPathOptions())
  expect_identical(res$value$headers, c("X-Live" = "1"))
  expect_false(res$value$indexhtml)
  expect_identical(hdr(sp_get(s, "/new/style.css"), "x-live"), "1")
  expect_equal(sp_get(s, "/new/")$status, 404)
  s$setStaticPathOption(indexhtml = TRUE, fallthrough = TRUE)
  expect_identical(sp_get(s, "/new/")$text, "<h1>home</h1>\n")
  expect_identical(sp_get(s, "/new/missing")$text, "app:/new/missing")
  expect_identical(a$counter$n, 2L)
  expect_error(s$setStaticPathOption(nope = 1), "Unknown options: nope", fixed = TRUE)
  expect_error(s$setStaticPathOption(TRUE), "All items must be named.", fixed = TRUE)
  expect_error(s$setStaticPathOption(html_charset = "a;b"), "html_charset")
  expect_identical(s$getStaticPathOptions()$html_charset, "utf-8")

  res <- withVisible(s$removeStaticPath("/new"))
  expect_false(res$visible)
  expect_identical(names(res$value), "/js")
  expect_identical(names(s$removeStaticPath("/absent")), "/js")
  expect_identical(sp_get(s, "/new/index.html")$text, "app:/new/index.html")
  expect_length(s$removeStaticPath("js/"), 0)

  s$stop()
  expect_null(s$getStaticPaths())
  expect_null(s$getStaticPathOptions())
  expect_null(s$setStaticPath(x = "no such dir, never looked at"))
  expect_null(s$setStaticPathOption(bogus = 1))
  expect_null(s$removeStaticPath("/x"))
})

test_that("static files are served while R is busy (no R call involved)", {
  skip_if(!nzchar(Sys.which("curl")), "curl is not installed")
  site <- sp_site()
  a <- sp_counting_app(staticPaths = list("/" = site$www))
  s <- local_server(a$app)
  # processx::run blocks this process: R serves nothing meanwhile, the engine still does.
  out <- processx::run("curl", c("-s", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}",
                                 sp_url(s, "/sub/page.txt")), error_on_status = FALSE, timeout = 10)
  expect_identical(out$stdout, "plain\n\n200")
  expect_identical(a$counter$n, 0L)
})

test_that("pipe servers have the static-path methods too", {
  skip_on_os("windows")
  site <- sp_site()
  path <- tempfile(fileext = ".sock")
  s <- startPipeServer(path, NULL, list(call = function(req) list(status = 200L, headers = list(), body = ""),
                                        staticPaths = list("/" = site$www)))
  on.exit(s$stop(), add = TRUE)
  expect_identical(names(s$getStaticPaths()), "/")
  s$setStaticPath(x = site$www)
  expect_identical(names(s$getStaticPaths()), c("/", "/x"))
  skip_if(!nzchar(Sys.which("curl")), "curl is not installed")
  out <- run_pumping("curl", c("-s", "--max-time", "5", "--unix-socket", path, "http://localhost/x/sub/page.txt"))
  expect_identical(out$stdout, "plain")
})

test_that("runStaticServer() serves a directory in the background", {
  site <- sp_site()
  msgs <- testthat::capture_messages(
    s <- runStaticServer(site$www, port = randomPort(), background = TRUE, browse = FALSE,
                         headers = list("X-Static" = "1"))
  )
  on.exit(s$stop(), add = TRUE)
  expect_identical(msgs, c(paste0("Serving: '", site$www, "'\n"),
                           sprintf("View at: http://127.0.0.1:%d\n", s$getPort())))
  expect_s3_class(s, "WebServer")
  r <- sp_get(s, "/")
  expect_identical(r$text, "<h1>home</h1>\n")
  expect_identical(hdr(r, "x-static"), "1")
  expect_equal(sp_get(s, "/missing")$status, 404)
  expect_error(runStaticServer(file.path(site$base, "nope"), background = TRUE, browse = FALSE),
               "No such file")
})

test_that("runStaticServer() checks ports as httpuv's does, with its messages and class", {
  site <- sp_site()
  bad <- list(list("80", "`port` must be an integer"), list(1.5, "`port` must be an integer"),
              list(NA_real_, "`port` must be an integer"),
              list(c(8000, 8001), "`port` must be a single integer"),
              list(0, "`port` must be a positive integer"), list(-1, "`port` must be a positive integer"),
              list(65536, "`port` must be less than 65536"))
  for (b in bad) {
    expect_error(runStaticServer(site$www, port = b[[1]], background = TRUE, browse = FALSE),
                 b[[2]], fixed = TRUE, label = format(b[[1]]))
  }
  taken <- local_server(function(req) list(status = 200L, headers = list(), body = ""))
  err <- tryCatch(runStaticServer(site$www, port = taken$getPort(), background = TRUE, browse = FALSE),
                  error = identity)
  expect_s3_class(err, "httpuv_unavailable_port")
  expect_identical(conditionMessage(err),
                   paste("Port", taken$getPort(), "is not available on host 127.0.0.1"))
  skip_if_not_installed("httpuv")
  if (exists("runStaticServer", asNamespace("httpuv"))) {
    hv <- get("runStaticServer", asNamespace("httpuv"))
    for (b in bad) {
      theirs <- tryCatch(hv(site$www, port = b[[1]], background = TRUE, browse = FALSE),
                         error = conditionMessage)
      expect_identical(theirs, b[[2]], label = format(b[[1]]))
    }
  }
})

test_that("runStaticServer() in the foreground serves until stopped (child process)", {
  skip_on_cran()
  site <- sp_site()
  srv <- child_server(function(port, dir) {
    rookd::runStaticServer(dir, port = port, browse = FALSE)
  }, args = list(dir = site$www))
  r <- fetch_blocking(sprintf("http://127.0.0.1:%d/sub/", srv$port), timeout = 5)
  expect_equal(r$status_code, 200)
  expect_identical(rawToChar(r$content), "<p>sub</p>\n")
})

# A tree with links of every kind: a file and a directory pointing inside the root and
# outside it, a loop and a dangling link.
sp_linked_site <- function(.env = parent.frame()) {
  base <- tempfile("splinks")
  dir.create(file.path(base, "www", "sub"), recursive = TRUE)
  dir.create(file.path(base, "outside"))
  withr::defer(unlink(base, recursive = TRUE), envir = .env)
  www <- file.path(base, "www")
  writeLines("inner", file.path(www, "sub", "inner.txt"))
  writeLines("target", file.path(www, "target.txt"))
  writeLines("outer", file.path(base, "outside", "outer.txt"))
  writeLines("TOP SECRET", file.path(base, "secret.txt"))
  file.symlink(file.path(www, "target.txt"), file.path(www, "file-in.txt"))
  file.symlink(file.path(base, "secret.txt"), file.path(www, "file-out.txt"))
  file.symlink(file.path(www, "sub"), file.path(www, "dir-in"))
  file.symlink(file.path(base, "outside"), file.path(www, "dir-out"))
  file.symlink(file.path(www, "loop-b"), file.path(www, "loop-a"))
  file.symlink(file.path(www, "loop-a"), file.path(www, "loop-b"))
  file.symlink(file.path(www, "gone.txt"), file.path(www, "dangling.txt"))
  normalizePath(www)
}

test_that("symlinks are followed by default; symlinks = 'inside' and 'refuse' narrow that", {
  www <- sp_linked_site()
  a <- sp_counting_app(staticPaths = list(
    "/follow" = www,
    "/inside" = staticPath(www, symlinks = "inside"),
    "/refuse" = staticPath(www, symlinks = "refuse")
  ))
  s <- local_server(a$app)
  # (link, follow, inside, refuse)
  cases <- list(
    c("target.txt", 200, 200, 200),
    c("file-in.txt", 200, 200, 404),
    c("dir-in/inner.txt", 200, 200, 404),
    c("file-out.txt", 200, 404, 404),
    c("dir-out/outer.txt", 200, 404, 404),
    c("loop-a", 404, 404, 404),
    c("dangling.txt", 404, 404, 404)
  )
  for (case in cases) {
    got <- vapply(c("follow", "inside", "refuse"), function(m) {
      sp_get(s, paste0("/", m, "/", case[1]))$status
    }, numeric(1))
    expect_equal(unname(got), as.numeric(case[2:4]), label = case[1])
  }
  expect_identical(sp_get(s, "/follow/dir-out/outer.txt")$text, "outer\n")
  expect_identical(sp_get(s, "/follow/file-in.txt")$text, "target\n")
  # Request-path traversal stays refused while links are followed.
  expect_equal(sp_get(s, "/follow/../secret.txt", opts = list(path_as_is = TRUE))$status, 400)
  expect_equal(a$counter$n, 0L)

  # The server-wide option applies to paths that do not set their own.
  s2 <- local_server(list(call = a$app$call, staticPaths = list("/" = www),
                          staticPathOptions = staticPathOptions(symlinks = "refuse")))
  expect_equal(sp_get(s2, "/file-in.txt")$status, 404)
  expect_identical(s2$getStaticPathOptions()$symlinks, "refuse")
  s2$setStaticPathOption(symlinks = "follow")
  expect_equal(sp_get(s2, "/file-in.txt")$status, 200)
  expect_error(s2$setStaticPathOption(symlinks = "sometimes"), "`symlinks` option")
  expect_identical(s$getStaticPaths()$`/inside`$options$symlinks, "inside")
})

test_that("Debian's shiny (jQuery and others as symlinks into /usr/share/javascript) is served", {
  shared <- "/usr/lib/R/site-library/shiny/www/shared"
  skip_if_not(file.exists(file.path(shared, "jquery.min.js")), "no Debian shiny install")
  skip_if_not(nzchar(Sys.readlink(file.path(shared, "jquery.min.js"))), "jquery.min.js is not a link")
  s <- local_server(list(call = function(req) list(status = 500L, headers = list(), body = ""),
                         staticPaths = list("/shared" = shared)))
  r <- sp_get(s, "/shared/jquery.min.js")
  expect_equal(r$status, 200)
  expect_identical(r$body, readBin(file.path(shared, "jquery.min.js"), "raw", 1e6))
  expect_match(hdr(r, "content-type"), "javascript")
  # Every link in the tree: a linked file, or the first file inside a linked directory.
  links <- list.files(shared, recursive = TRUE, include.dirs = TRUE, all.files = TRUE)
  links <- links[nzchar(Sys.readlink(file.path(shared, links)))]
  expect_gt(length(links), 5)
  for (l in links) {
    f <- l
    if (dir.exists(file.path(shared, l))) {
      inside <- list.files(file.path(shared, l))
      inside <- inside[!dir.exists(file.path(shared, l, inside))]
      if (!length(inside)) next
      f <- file.path(l, inside[1])
    }
    url <- paste0("/shared/", paste(vapply(strsplit(f, "/")[[1]], utils::URLencode, "", reserved = TRUE),
                                    collapse = "/"))
    r <- sp_get(s, url)
    expect_equal(r$status, 200, label = f)
    expect_identical(length(r$body), as.integer(file.size(file.path(shared, f))), label = f)
  }
})
