# Differential tests: the same staticPaths configuration served by httpuv and by rookd in
# this R process, the same requests sent to both (curl, path_as_is, no redirects followed,
# no compression asked for), and status, body and key headers compared. Cases where rookd
# deliberately answers differently assert both sides, so a change in either shows up; the
# reasons are in ?migrating-from-httpuv.

hv_site <- function(.env = parent.frame()) {
  base <- tempfile("hv")
  www <- file.path(base, "www")
  dir.create(file.path(www, "sub"), recursive = TRUE)
  dir.create(file.path(www, "noindex"))
  dir.create(file.path(www, "withindex"))
  withr::defer(unlink(base, recursive = TRUE), envir = .env)
  writeLines("<h1>home</h1>", file.path(www, "index.html"))
  writeLines("<p>with index</p>", file.path(www, "withindex", "index.html"))
  writeLines("plain", file.path(www, "sub", "page.txt"))
  writeLines("in noindex", file.path(www, "noindex", "x.txt"))
  writeLines("body { color: red; }", file.path(www, "style.css"))
  writeLines('{"a": 1}', file.path(www, "data.json"))
  writeBin(as.raw(c(0x89, 0x50, 0x4e, 0x47, 1:20)), file.path(www, "img.png"))
  writeLines("spaced", file.path(www, "with space.txt"))
  writeLines("percent", file.path(www, "a%b.txt"))
  writeLines("accented", file.path(www, enc2native("\u00e9t\u00e9.txt")))
  writeLines("TOP SECRET", file.path(base, "secret.txt"))
  normalizePath(www)
}

# The same app for both servers; `sp` is staticPath (httpuv's or rookd's), so each server
# gets its own package's objects.
hv_app <- function(www, sp, exclude) {
  list(
    call = function(req) {
      list(status = 200L, headers = list("Content-Type" = "text/plain"),
           body = paste0("app:", req$REQUEST_METHOD, ":", req$PATH_INFO))
    },
    staticPaths = list(
      "/s" = sp(www),
      "/s/excluded" = exclude(),
      "/noidx" = sp(www, indexhtml = FALSE),
      "/ft" = sp(www, fallthrough = TRUE),
      "/cs" = sp(www, html_charset = "latin1"),
      "/nocs" = sp(www, html_charset = ""),
      "/hd" = sp(www, headers = list("X-A" = "1", "Cache-Control" = "max-age=5")),
      "/val" = sp(www, validation = '"x-token" == "abc"'),
      "/one" = file.path(www, "style.css")
    )
  )
}

hv_servers <- function(.env = parent.frame()) {
  skip_if_not_installed("httpuv")
  www <- hv_site(.env)
  h <- httpuv::startServer("127.0.0.1", httpuv::randomPort(),
                           hv_app(www, httpuv::staticPath, httpuv::excludeStaticPath))
  withr::defer(h$stop(), envir = .env)
  r <- local_server(hv_app(www, staticPath, excludeStaticPath), .env = .env)
  list(httpuv = h, rookd = r)
}

hv_fetch <- function(s, path, method = NULL, headers = character()) {
  url <- sprintf("http://127.0.0.1:%d%s", s$getPort(), path)
  http_req(url, method = method, headers = c(headers, "Accept-Encoding:"),
           opts = list(path_as_is = TRUE, followlocation = FALSE, http_content_decoding = FALSE))
}

# What is compared: status, body, and the headers an app or a browser acts on.
hv_view <- function(r) {
  keep <- c("x-a", "cache-control", "allow", "location")
  # httpuv's error answers carry no Content-Type; rookd labels them text/plain.
  if (r$status < 300) keep <- c(keep, "content-type")
  h <- r$headers[names(r$headers) %in% keep]
  list(status = r$status, body = r$body, headers = h[order(names(h))])
}

hv_both <- function(servers, path, method = NULL, headers = character()) {
  lapply(servers, function(s) hv_view(hv_fetch(s, path, method, headers)))
}

expect_same_as_httpuv <- function(servers, path, method = NULL, headers = character()) {
  got <- hv_both(servers, path, method, headers)
  expect_identical(got$rookd, got$httpuv, label = paste(method %||% "GET", path))
  invisible(got$rookd)
}

test_that("files, types, query strings, encoded names, HEAD and 404s answer as httpuv's", {
  sv <- hv_servers()
  for (p in c("/s/index.html", "/s/", "/s/?q=1", "/s/style.css", "/s/style.css?v=2&x",
              "/s/data.json", "/s/img.png", "/s/sub/page.txt", "/s/with%20space.txt",
              "/s/a%25b.txt", "/s/%C3%A9t%C3%A9.txt", "/s/%73tyle.css", "/%73/style.css",
              "/s//style.css", "/s/style.css/", "/s/withindex/", "/s/missing.txt",
              "/s/noindex", "/s/noindex/", "/s/nodir/x", "/s/%zz", "/s/%", "/s/%ff",
              "/one", "/one/", "/other", "/S/style.css")) {
    expect_same_as_httpuv(sv, p)
  }
  r <- expect_same_as_httpuv(sv, "/s/missing.txt")
  expect_identical(rawToChar(r$body), "404 Not Found\n")
  expect_same_as_httpuv(sv, "/s/style.css", method = "HEAD")
  expect_same_as_httpuv(sv, "/s/", method = "HEAD")
})

test_that("traversal, encoded separators, '.' segments and backslashes answer as httpuv's", {
  sv <- hv_servers()
  for (p in c("/s/../secret.txt", "/s/%2e%2e/secret.txt", "/s/%2E%2E/secret.txt",
              "/s/.%2e/secret.txt", "/s/sub/../../secret.txt", "/s/withindex/..",
              "/s/..%2fsecret.txt", "/s/sub%2fpage.txt", "/s/sub%2Fpage.txt", "/s%2fstyle.css",
              "/s/./style.css", "/s/%2e/style.css", "/s/.", "/s/./",
              "/s/..%5csecret.txt", "/s/sub%5cpage.txt", "/s/%5c", "/s/../a%5cb",
              "/s/%00/a%5cb", "/val/a%5cb", "/ft/../secret.txt", "/ft/sub%2fpage.txt",
              "/ft/%2e/style.css", "/ft/%zz", "/s/excluded", "/s/excluded/x",
              "/s/excluded%2fx")) {
    r <- expect_same_as_httpuv(sv, p)
    expect_false(grepl("TOP SECRET", rawToChar(r$body)), label = p)
  }
  r <- expect_same_as_httpuv(sv, "/s/../secret.txt")
  expect_identical(r$status, 400L)
  expect_identical(rawToChar(r$body), "400 Bad Request\n")
  # A raw backslash, which curl sends as is with path_as_is.
  expect_same_as_httpuv(sv, "/s/..\\secret.txt")
  expect_same_as_httpuv(sv, "/s/sub\\page.txt")
})

test_that("indexhtml, fallthrough, html_charset, headers and validation answer as httpuv's", {
  sv <- hv_servers()
  for (p in c("/noidx/", "/noidx/index.html", "/noidx/withindex/", "/ft/missing.txt",
              "/ft/", "/ft/noindex/", "/ft/style.css", "/cs/index.html", "/cs/",
              "/nocs/index.html", "/hd/style.css", "/hd/missing", "/hd/", "/val/style.css",
              "/val/missing")) {
    expect_same_as_httpuv(sv, p)
  }
  expect_same_as_httpuv(sv, "/val/style.css", headers = "X-Token: abc")
  expect_same_as_httpuv(sv, "/val/style.css", headers = "x-TOKEN: abc")
  expect_same_as_httpuv(sv, "/val/missing", headers = "X-Token: abc")
  # validation is checked before the method; a body on a GET is refused.
  expect_same_as_httpuv(sv, "/val/style.css", method = "POST")
  r <- hv_both(sv, "/s/style.css", headers = "Content-Length: 3")
  expect_identical(r$rookd$status, 400L)
  r <- expect_same_as_httpuv(sv, "/val/style.css", headers = "X-Token: ABC")
  expect_identical(r$status, 403L)
  expect_identical(rawToChar(r$body), "403 Forbidden\n")
  r <- expect_same_as_httpuv(sv, "/hd/style.css")
  expect_identical(unname(r$headers[c("cache-control", "x-a")]), c("max-age=5", "1"))
  expect_identical(expect_same_as_httpuv(sv, "/cs/")$headers[["content-type"]],
                   "text/html; charset=latin1")
})

test_that("deliberate differences from httpuv are what ?migrating-from-httpuv says", {
  sv <- hv_servers()
  # Methods other than GET/HEAD: httpuv 400; rookd 405 with Allow (RFC 9110).
  for (m in c("POST", "PUT", "DELETE", "OPTIONS")) {
    got <- hv_both(sv, "/s/style.css", method = m)
    expect_identical(got$httpuv$status, 400L, label = m)
    expect_identical(got$rookd$status, 405L, label = m)
    expect_identical(got$rookd$headers[["allow"]], "GET, HEAD")
  }
  # A directory without its slash: httpuv serves index.html there (relative links in it
  # then resolve against the parent); rookd redirects to the slash form.
  for (p in c("/s", "/s/withindex")) {
    got <- hv_both(sv, p)
    expect_identical(got$httpuv$status, 200L, label = p)
    expect_identical(got$rookd$status, 301L, label = p)
    expect_identical(got$rookd$headers[["location"]], paste0(p, "/"))
  }
  # NUL in the path: httpuv cuts the name there (serving "style.css" for "style.css%00",
  # as application/octet-stream); rookd refuses with 400.
  got <- hv_both(sv, "/s/style.css%00")
  expect_identical(got$httpuv$status, 200L)
  expect_identical(got$rookd$status, 400L)
  # Below a single-file path: httpuv answers 500; rookd 404.
  got <- hv_both(sv, "/one/x")
  expect_identical(got$httpuv$status, 500L)
  expect_identical(got$rookd$status, 404L)
  # HEAD of a missing file: httpuv sends a body anyway; rookd none (RFC 9110).
  got <- hv_both(sv, "/s/missing", method = "HEAD")
  expect_identical(c(got$httpuv$status, got$rookd$status), c(404L, 404L))
  expect_length(got$rookd$body, 0)
  # A leading "//": httpuv does not match the prefix (the app answers); rookd ignores
  # empty segments everywhere and serves the file.
  got <- hv_both(sv, "//s/style.css")
  expect_match(rawToChar(got$httpuv$body), "^app:")
  expect_identical(rawToChar(got$rookd$body), "body { color: red; }\n")
  # Media types: rookd uses today's registered types where httpuv's table is older.
  types <- c(js = "text/javascript", mjs = "text/javascript", wasm = "application/wasm",
             woff2 = "font/woff2", ttf = "font/ttf", map = "application/json")
  www <- dirname(sv$rookd$getStaticPaths()$`/one`$path)
  for (ext in names(types)) {
    writeLines("x", file.path(www, paste0("t.", ext)))
    got <- hv_both(sv, paste0("/s/t.", ext))
    expect_identical(got$rookd$headers[["content-type"]], types[[ext]], label = ext)
    expect_false(identical(got$httpuv$headers[["content-type"]], types[[ext]]), label = ext)
  }
})
