# Errors in the app or in its answer: a 500 with a generic body, never a hung
# connection, and the server keeps serving.

generic_500 <- function(r, secret = NULL) {
  expect_identical(r$status, 500L)
  expect_match(r$text, "Internal Server Error", fixed = TRUE)
  if (!is.null(secret)) expect_false(grepl(secret, r$text, fixed = TRUE))
}

test_that("an R error in the app gives 500 with a generic body, then good requests are served", {
  s <- local_server(function(req) {
    if (req$PATH_INFO == "/boom") stop("secret-detail-42 should not leak")
    list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "fine")
  })
  r <- http_req(server_url(s, "/boom"))
  generic_500(r, "secret-detail-42")
  r2 <- http_req(server_url(s, "/ok"))
  expect_identical(r2$status, 200L)
  expect_identical(r2$text, "fine")
  # And on one connection: the error does not break keep-alive.
  out <- raw_http(s$getPort(), list(send(get_request("/boom")), response(),
                                    send(get_request("/ok")), response()))
  expect_null(out$error)
  expect_identical(out$responses[[1]]$status, 500L)
  expect_false(grepl("secret", out$responses[[1]]$text))
  expect_identical(out$responses[[2]]$text, "fine")
})

test_that("errors signalled by warning(options(warn = 2)) or a condition object also give 500", {
  s <- local_server(function(req) {
    if (req$PATH_INFO == "/cond") stop(structure(class = c("custom", "error", "condition"),
                                                 list(message = "custom-cond", call = NULL)))
    if (req$PATH_INFO == "/warn") {
      old <- options(warn = 2)
      on.exit(options(old))
      warning("warn-as-error")
    }
    list(status = 200L, headers = list(), body = "fine")
  })
  generic_500(http_req(server_url(s, "/cond")), "custom-cond")
  generic_500(http_req(server_url(s, "/warn")), "warn-as-error")
  expect_identical(getOption("warn"), 0L)
  expect_identical(http_req(server_url(s, "/x"))$text, "fine")
})

test_that("NULL and malformed responses give 500, and the server keeps serving", {
  bad <- list(
    "/null" = function() NULL,
    "/string" = function() "just a string",
    "/number" = function() 42,
    "/nostatus" = function() list(headers = list(), body = "x"),
    "/status-text" = function() list(status = "abc", headers = list(), body = "x"),
    "/status-na" = function() list(status = NA_integer_, headers = list(), body = "x"),
    "/status-99" = function() list(status = 99L, headers = list(), body = "x"),
    "/status-1000" = function() list(status = 1000L, headers = list(), body = "x"),
    "/status-101" = function() list(status = 101L, headers = list(), body = "x"),
    "/status-vec" = function() list(status = c(200L, 201L), headers = list(), body = "x"),
    "/headers-unnamed" = function() list(status = 200L, headers = list("a", "b"), body = "x"),
    "/header-na" = function() list(status = 200L, headers = list("X-A" = NA_character_), body = "x"),
    "/header-fun" = function() list(status = 200L, headers = list("X-A" = identity), body = "x"),
    "/header-badname" = function() list(status = 200L, headers = list("Bad Name" = "v"), body = "x"),
    "/body-number" = function() list(status = 200L, headers = list(), body = 3.14),
    "/body-list" = function() list(status = 200L, headers = list(), body = list(a = 1)),
    "/body-file-missing" = function() list(status = 200L, headers = list(),
                                           body = list(file = tempfile(), owned = FALSE))
  )
  s <- local_server(function(req) {
    f <- bad[[req$PATH_INFO]]
    if (is.null(f)) return(list(status = 200L, headers = list(), body = "still serving"))
    f()
  })
  for (p in names(bad)) {
    r <- http_req(server_url(s, p), timeout = 5)
    expect_identical(r$status, 500L, label = paste("status for", p))
    expect_match(r$text, "Internal Server Error", fixed = TRUE, label = paste("body for", p))
  }
  expect_identical(http_req(server_url(s, "/good"))$text, "still serving")
})

test_that("an interrupt inside the app gives 500 and the server keeps serving", {
  skip_on_cran()
  skip_on_os("windows")
  srv <- child_server(function(port) {
    library(rookd)
    s <- startServer("127.0.0.1", port, function(req) {
      if (req$PATH_INFO == "/interrupt") {
        tools::pskill(Sys.getpid(), tools::SIGINT)
        Sys.sleep(5)
        return(list(status = 200L, headers = list(), body = "not interrupted"))
      }
      if (req$PATH_INFO == "/quit") interrupt()
      list(status = 200L, headers = list(), body = "alive")
    })
    # Serve until /quit; an interrupt that escaped the app would end this loop early.
    for (i in 1:600) {
      ok <- tryCatch({ service(0); TRUE }, interrupt = function(e) "escaped")
      if (isTRUE(ok)) break
      cat("INTERRUPT ESCAPED THE APP\n", file = stderr())
    }
    s$stop()
  })
  url <- sprintf("http://127.0.0.1:%d", srv$port)
  t0 <- Sys.time()
  r <- fetch_blocking(paste0(url, "/interrupt"))
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 4)
  expect_identical(r$status_code, 500L)
  expect_match(rawToChar(r$content), "Internal Server Error", fixed = TRUE)
  r2 <- fetch_blocking(paste0(url, "/after"))
  expect_identical(r2$status_code, 200L)
  expect_identical(rawToChar(r2$content), "alive")
  fetch_blocking(paste0(url, "/quit"))
  srv$process$wait(10000)
  expect_false(grepl("INTERRUPT ESCAPED", srv$process$read_all_error(), fixed = TRUE))
})

test_that("errors from many requests in a row leave the server healthy", {
  s <- local_server(function(req) {
    if (grepl("^/e", req$PATH_INFO)) stop("boom")
    if (grepl("^/n", req$PATH_INFO)) return(NULL)
    list(status = 200L, headers = list(), body = req$PATH_INFO)
  })
  paths <- c(paste0("/e", 1:10), paste0("/n", 1:10), paste0("/g", 1:10))
  res <- suppressMessages(http_many(lapply(paths, function(p) list(url = server_url(s, p)))))
  st <- vapply(res, function(r) r$status, 0L)
  expect_identical(st, c(rep(500L, 20), rep(200L, 10)))
  expect_identical(vapply(res[21:30], function(r) r$text, ""), paths[21:30])
  stats <- rookd:::rookd_stats()
  wait_until(function() rookd:::rookd_stats()$requests_in_flight == 0, timeout = 5,
             what = "no request in flight")
  expect_identical(rookd:::rookd_stats()$pending_envs, 0L)
})
