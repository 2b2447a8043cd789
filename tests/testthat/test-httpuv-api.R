# httpuv's R API, function by function: arguments, return values and their visibility,
# errors code may match. Where practical the same check runs against httpuv too and the
# two answers are compared.

skip_if_not_installed("httpuv")

test_that("every httpuv argument exists in rookd's function, with the same default", {
  shared <- intersect(getNamespaceExports("httpuv"), getNamespaceExports("rookd"))
  shared <- setdiff(shared, "WebSocket")
  expect_true(length(shared) >= 20)
  for (name in shared) {
    theirs <- formals(get(name, asNamespace("httpuv")))
    ours <- formals(get(name, asNamespace("rookd")))
    # rookd's extra arguments (e.g. `options`) come after httpuv's, so positional calls match.
    expect_identical(names(ours)[seq_along(theirs)], names(theirs), label = name)
    for (arg in names(theirs)) {
      expect_identical(deparse(ours[[arg]]), deparse(theirs[[arg]]),
                       label = paste0(name, "(", arg, ")"))
    }
  }
})

test_that("rookd exports every function httpuv exports except the WebSocket class generator", {
  missing <- setdiff(getNamespaceExports("httpuv"), getNamespaceExports("rookd"))
  expect_identical(missing, "WebSocket")
})

# The value and visibility of a call, as a comparable list.
vis <- function(expr) {
  v <- withVisible(expr)
  list(value = v$value, visible = v$visible)
}

test_that("service(), interrupt(), getRNGState(), stopAllServers() return what httpuv's return", {
  for (pkg in c("rookd", "httpuv")) {
    f <- function(name) get(name, asNamespace(pkg))
    expect_identical(vis(f("service")(NA)), list(value = TRUE, visible = TRUE), label = pkg)
    expect_identical(vis(f("service")(1)), list(value = TRUE, visible = TRUE), label = pkg)
    expect_identical(vis(f("interrupt")()), list(value = TRUE, visible = FALSE), label = pkg)
    expect_identical(vis(f("getRNGState")()), list(value = NULL, visible = FALSE), label = pkg)
    expect_identical(vis(f("stopAllServers")()), list(value = NULL, visible = FALSE), label = pkg)
  }
  s <- startServer("127.0.0.1", 0, text_app())
  expect_identical(vis(stopServer(s)), list(value = NULL, visible = FALSE))
  expect_identical(vis(listServers()), list(value = list(), visible = TRUE))
})

test_that("service(NA) runs what is ready without waiting, as httpuv's", {
  for (pkg in c("rookd", "httpuv")) {
    service <- get("service", asNamespace(pkg))
    later::run_now(0)  # run anything already pending: each service() call runs one callback
    ran <- FALSE
    later::later(function() ran <<- TRUE)     # ready now
    late <- FALSE
    later::later(function() late <<- TRUE, 2) # not ready for 2 s
    t0 <- Sys.time()
    expect_true(service(NA))
    expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 1)
    expect_true(ran, label = pkg)
    expect_false(late, label = pkg)
    # Drain the late callback so the next package starts clean.
    while (!late) later::run_now(0.1)
  }
})

test_that("service(Inf) loops until interrupt(), like service(0), as httpuv's", {
  for (pkg in c("rookd", "httpuv")) {
    service <- get("service", asNamespace(pkg))
    interrupt <- get("interrupt", asNamespace(pkg))
    for (timeout in c(Inf, 0)) {
      n <- 0
      tick <- function() {
        n <<- n + 1
        if (n == 3) interrupt() else later::later(tick, 0.2)
      }
      later::later(tick, 0.2)
      t0 <- Sys.time()
      expect_true(service(timeout))
      took <- as.numeric(Sys.time() - t0, units = "secs")
      expect_identical(n, 3, label = paste(pkg, timeout))
      expect_gte(took, 0.5)
      expect_lt(took, 5)
    }
  }
})

test_that("service(ms) waits up to ms once and returns early when a callback runs", {
  t0 <- Sys.time()
  expect_true(service(300))
  took <- as.numeric(Sys.time() - t0, units = "secs")
  expect_gte(took, 0.25)
  expect_lt(took, 2)
  later::later(function() NULL, 0.05)
  t0 <- Sys.time()
  service(5000)
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 2)
  expect_error(service(-1), "`timeoutMs` must be a single number >= 0, Inf or NA")
})

test_that("an app that is only staticPaths is accepted; other paths get httpuv's 404", {
  dir <- tempfile("site")
  dir.create(dir)
  writeLines("static hi", file.path(dir, "a.txt"))
  app <- list(staticPaths = list("/s" = dir))
  answers <- list()
  for (pkg in c("rookd", "httpuv")) {
    start <- get("startServer", asNamespace(pkg))
    port <- randomPort()
    s <- start("127.0.0.1", port, app)
    got <- lapply(c("/s/a.txt", "/other", "/s/missing.txt"), function(path) {
      r <- http_req(sprintf("http://127.0.0.1:%d%s", port, path))
      list(status = r$status, text = r$text,
           type = unname(hdr(r, "content-type") %||% NA_character_))
    })
    s$stop()
    answers[[pkg]] <- got
  }
  expect_identical(answers$rookd[[1]]$status, 200L)
  expect_identical(answers$rookd[[1]]$text, "static hi\n")
  expect_identical(answers$rookd[[2]], answers$httpuv[[2]])  # 404, "404 Not Found", text/plain
  expect_identical(answers$rookd[[2]]$status, 404L)
  expect_identical(answers$rookd[[2]]$text, "404 Not Found\n")
  expect_identical(answers$rookd[[3]]$status, 404L)
  # An empty app (httpuv's randomPort() starts one) is accepted too.
  s <- startServer("127.0.0.1", 0, list())
  expect_identical(http_req(server_url(s, "/"))$status, 404L)
  s$stop()
})

test_that("ipFamily() knows IPv6 zone IDs, as httpuv's", {
  for (ip in c("::1%lo0", "fe80::1%eth0", "fe80::1%", "::1", "127.0.0.1", "1.2.3.4%eth0",
               "localhost", "", "::ffff:1.2.3.4", "1.2.3")) {
    expect_identical(ipFamily(ip), httpuv::ipFamily(ip), label = ip)
  }
  expect_identical(ipFamily(c("::1%lo0", "fe80::1%eth0")), c(6L, 6L))
})

test_that("stopServer() on a non-server fails with httpuv's message", {
  expect_error(httpuv::stopServer(1), "^Object must be an object of class Server")
  expect_error(stopServer(1), "^Object must be an object of class Server")
})

test_that("randomPort() never picks a port browsers refuse, and fails with httpuv's condition class", {
  err <- tryCatch(randomPort(6665, 6669), error = function(e) e)
  expect_s3_class(err, "httpuv_unavailable_port")
  expect_s3_class(err, "rookd_unavailable_port")
  expect_match(conditionMessage(err), "^Cannot find an available port\\.")
  p <- randomPort(5999, 6001, n = 3)
  expect_true(p %in% c(5999L, 6001L))
  # min/max are clamped to 1-65535 as in httpuv.
  p2 <- randomPort(65000, 70000)
  expect_true(p2 >= 65000 && p2 <= 65535)
})

test_that("getRNGState() keeps the RNG's stream and creates no .Random.seed", {
  had <- exists(".Random.seed", globalenv(), inherits = FALSE)
  old <- if (had) get(".Random.seed", globalenv())
  on.exit(if (had) assign(".Random.seed", old, globalenv()), add = TRUE)
  set.seed(42)
  a <- runif(3)
  set.seed(42)
  getRNGState()
  expect_identical(runif(3), a)
  rm(".Random.seed", envir = globalenv())
  getRNGState()
  expect_false(exists(".Random.seed", globalenv(), inherits = FALSE))
})

test_that("runStaticServer() refuses the ports httpuv refuses, with httpuv's messages", {
  dir <- tempfile("site")
  dir.create(dir)
  rss <- function(port) runStaticServer(dir, port = port, background = TRUE, browse = FALSE)
  expect_error(rss(0), "`port` must be a positive integer", fixed = TRUE)
  expect_error(rss(-5), "`port` must be a positive integer", fixed = TRUE)
  expect_error(rss(70000), "`port` must be less than 65536", fixed = TRUE)
  expect_error(rss(80.5), "`port` must be an integer", fixed = TRUE)
  expect_error(rss("8080"), "`port` must be an integer", fixed = TRUE)
  expect_error(rss(c(8080, 8081)), "`port` must be a single integer", fixed = TRUE)
  busy <- startServer("127.0.0.1", 0, text_app())
  on.exit(busy$stop(), add = TRUE)
  err <- tryCatch(rss(busy$getPort()), error = function(e) e)
  expect_s3_class(err, "httpuv_unavailable_port")
  expect_identical(conditionMessage(err),
                   paste("Port", busy$getPort(), "is not available on host 127.0.0.1"))
  # What it prints, and the 404 outside the directory (it is a staticPaths-only app).
  port <- randomPort()
  msgs <- testthat::capture_messages(s <- rss(port))
  on.exit(s$stop(), add = TRUE)
  expect_identical(msgs, c(sprintf("Serving: '%s'\n", dir),
                           sprintf("View at: http://127.0.0.1:%d\n", port)))
  expect_identical(http_req(server_url(s, "/nope"))$status, 404L)
})

test_that("runServer() takes interruptIntervalMs and returns service(0)'s TRUE (child R)", {
  skip_if_not_installed("callr")
  port <- randomPort()
  bg <- callr::r_bg(function(port) {
    rookd::runServer("127.0.0.1", port, function(req) {
      rookd::interrupt()
      list(status = 200L, headers = list(), body = "bye")
    }, interruptIntervalMs = 50)
  }, args = list(port = port))
  on.exit(bg$kill(), add = TRUE)
  deadline <- Sys.time() + 20
  r <- NULL
  while (is.null(r) && Sys.time() < deadline && bg$is_alive()) {
    r <- tryCatch(curl::curl_fetch_memory(sprintf("http://127.0.0.1:%d/", port)),
                  error = function(e) { Sys.sleep(0.1); NULL })
  }
  expect_identical(rawToChar(r$content), "bye")
  bg$wait(10000)
  expect_identical(bg$get_result(), TRUE)
  expect_error(runServer("127.0.0.1", 0, text_app(), interruptIntervalMs = "x"),
               "`interruptIntervalMs`")
})

test_that("startPipeServer() takes httpuv's `quiet`", {
  path <- tempfile(fileext = ".sock")
  s <- startPipeServer(path, NULL, text_app(), quiet = TRUE)
  expect_s3_class(s, "PipeServer")
  s$stop()
})

test_that("staticPath objects made by httpuv's functions work on a rookd server", {
  dir <- tempfile("site")
  dir.create(file.path(dir, "b"), recursive = TRUE)
  writeLines("from httpuv's staticPath", file.path(dir, "f.txt"))
  writeLines("excluded", file.path(dir, "b", "g.txt"))
  s <- local_server(list(
    call = function(req) list(status = 200L, headers = list(), body = paste("app", req$PATH_INFO)),
    staticPaths = list("/a" = httpuv::staticPath(dir, indexhtml = FALSE),
                       "/a/b" = httpuv::excludeStaticPath()),
    staticPathOptions = httpuv::staticPathOptions(html_charset = "latin1")
  ))
  expect_identical(http_req(server_url(s, "/a/f.txt"))$text, "from httpuv's staticPath\n")
  expect_identical(http_req(server_url(s, "/a/b/g.txt"))$text, "app /a/b/g.txt")
  expect_identical(s$getStaticPathOptions()$html_charset, "latin1")
})

test_that("the WebSocket objects onWSOpen receives have httpuv's public methods and fields", {
  skip_if_not_installed("jsonlite")
  skip_if_not_installed("processx")
  public <- c("handle", "request", "onMessage", "onClose", "send", "close")
  gen <- httpuv::WebSocket
  expect_true(all(public %in% c(names(gen$public_fields), names(gen$public_methods))))
  seen <- NULL
  s <- local_server(list(
    call = text_app(),
    onWSOpen = function(ws) {
      seen <<- list(has = vapply(public, function(n) !is.null(ws[[n]]), logical(1)),
                    fns = vapply(public[3:6], function(n) is.function(ws[[n]]), logical(1)),
                    path = ws$request$PATH_INFO, class = class(ws))
      ws$onMessage(function(binary, message) ws$send(paste("echo", message)))
    }
  ))
  res <- ws_py(s$getPort(), r"---(
async def main():
    async with connect("/sock") as ws:
        await ws.send("hi")
        return await asyncio.wait_for(ws.recv(), 10)
)---")
  expect_identical(res, "echo hi")
  expect_true(all(seen$has))
  expect_true(all(seen$fns))
  expect_identical(seen$path, "/sock")
  expect_true("WebSocket" %in% seen$class)
})

test_that("the URI functions and rawToBase64() give httpuv's answers", {
  x <- c("http://example.com/a b?q=\u00fc#top", "a/b?c=d&e=f", "~!*()'-_.", "\u65e5\u672c",
         "", "%41%2F%zz", "%E6%97%A5", "a+b c", ";,/?:@&=+$#", "%23%2523%2f", "file #1.txt")
  for (f in c("encodeURI", "encodeURIComponent", "decodeURI", "decodeURIComponent")) {
    ours <- get(f, asNamespace("rookd"))(x)
    theirs <- vapply(x, get(f, asNamespace("httpuv")), "", USE.NAMES = FALSE)
    expect_identical(ours, theirs, label = f)
  }
  for (r in list(raw(0), as.raw(0:255), charToRaw("hello"), as.raw(1:2))) {
    expect_identical(rawToBase64(r), httpuv::rawToBase64(r))
  }
})
