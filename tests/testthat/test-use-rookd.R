# use_rookd() / with_rookd() / unuse_rookd(): httpuv's API routed to rookd, and back.

skip_if_not_installed("httpuv")

test_that("loading and attaching rookd changes nothing in httpuv or its importers (child R)", {
  skip_if_not_installed("callr")
  skip_if_not_installed("shiny")
  out <- callr::r(function() {
    loadNamespace("httpuv")
    loadNamespace("shiny")
    imports <- parent.env(asNamespace("shiny"))
    before <- list(ns = httpuv::startServer, service = httpuv::service,
                   imp = get("startServer", imports), imp_service = get("service", imports))
    library(rookd)
    library(httpuv)  # attached after rookd: masks it, as a user's script might
    after <- list(ns = httpuv::startServer, service = httpuv::service,
                  imp = get("startServer", imports), imp_service = get("service", imports))
    list(same = identical(before, after), active = rookd::is_rookd_active(),
         from_httpuv = identical(environment(after$ns), asNamespace("httpuv")))
  })
  expect_true(out$same)
  expect_false(out$active)
  expect_true(out$from_httpuv)
})

test_that("with_rookd() makes httpuv::startServer start a rookd server; httpuv is httpuv afterwards", {
  orig <- httpuv::startServer
  orig_stop <- httpuv::stopServer
  expect_false(is_rookd_active())
  res <- with_rookd({
    expect_true(is_rookd_active())
    s <- httpuv::startServer("127.0.0.1", 0, text_app("routed"))
    on.exit(try(s$stop(), silent = TRUE), add = TRUE)
    expect_s3_class(s, "WebServer")
    expect_false(inherits(s, "R6"))  # httpuv's servers are R6 objects, rookd's are not
    expect_true(any(vapply(rookd::listServers(), identical, logical(1), s)))
    r <- http_req(server_url(s, "/x"))
    httpuv::stopServer(s)
    expect_false(s$isRunning())
    r$text
  })
  expect_identical(res, "routed")
  expect_false(is_rookd_active())
  expect_identical(httpuv::startServer, orig)
  expect_identical(httpuv::stopServer, orig_stop)
  expect_identical(environment(httpuv::startServer), asNamespace("httpuv"))
  expect_true(bindingIsLocked("startServer", asNamespace("httpuv")))
})

test_that("with_rookd() undoes the route when its expression fails", {
  orig <- httpuv::service
  expect_error(with_rookd({
    expect_false(identical(httpuv::service, orig))
    stop("boom")
  }), "boom")
  expect_identical(httpuv::service, orig)
  expect_false(is_rookd_active())
})

test_that("use_rookd() returns its undo; use_rookd(FALSE) and unuse_rookd() undo; nesting keeps the outer route", {
  orig <- httpuv::ipFamily
  undo <- use_rookd()
  on.exit(unuse_rookd(), add = TRUE)
  expect_true(is.function(undo))
  expect_identical(httpuv::ipFamily, rookd::ipFamily)
  expect_identical(httpuv::ipFamily("fe80::1%eth0"), 6L)
  # A nested with_rookd() inside a session route leaves the route on when it exits.
  with_rookd(expect_true(is_rookd_active()))
  expect_true(is_rookd_active())
  expect_true(undo())
  expect_identical(httpuv::ipFamily, orig)
  expect_false(undo())  # undoing twice does nothing

  use_rookd()
  expect_true(is_rookd_active())
  use_rookd(FALSE)
  expect_false(is_rookd_active())
  expect_identical(httpuv::ipFamily, orig)

  use_rookd()
  expect_true(unuse_rookd())
  expect_false(unuse_rookd())
  expect_identical(httpuv::ipFamily, orig)
  expect_error(use_rookd(NA), "`enable` must be TRUE or FALSE")
})

test_that("routed startServer() uses the options given to with_rookd()", {
  app <- function(req) list(status = 200L, headers = list(), body = req$QUERY_STRING)
  with_rookd({
    s <- httpuv::startServer("127.0.0.1", 0, app)
    on.exit(s$stop(), add = TRUE)
    expect_identical(http_req(server_url(s, "/?a=1"))$text, "a=1")
  })
  with_rookd(options = rookdOptions(query_string_question_mark = TRUE), {
    s2 <- httpuv::startServer("127.0.0.1", 0, app)
    on.exit(s2$stop(), add = TRUE)
    expect_identical(http_req(server_url(s2, "/?a=1"))$text, "?a=1")
  })
  # Nested in a session route, with_rookd()'s options last only for its call.
  use_rookd()
  on.exit(unuse_rookd(), add = TRUE)
  with_rookd(options = rookdOptions(query_string_question_mark = TRUE), {
    s3 <- httpuv::startServer("127.0.0.1", 0, app)
    on.exit(s3$stop(), add = TRUE)
    expect_identical(http_req(server_url(s3, "/?b=2"))$text, "?b=2")
  })
  expect_true(is_rookd_active())
  s4 <- httpuv::startServer("127.0.0.1", 0, app)
  on.exit(s4$stop(), add = TRUE)
  expect_identical(http_req(server_url(s4, "/?b=2"))$text, "b=2")
})

test_that("a global variable holding httpuv's function is not touched", {
  # base's namespace has the global env as its parent: it is no imports env to route.
  orig <- httpuv::startServer
  assign("startServer", orig, envir = globalenv())
  on.exit(rm("startServer", envir = globalenv()), add = TRUE)
  with_rookd(expect_identical(get("startServer", envir = globalenv()), orig))
  expect_identical(get("startServer", envir = globalenv()), orig)
})

test_that("the imports of loaded namespaces and the attached package:httpuv are routed and restored (child R)", {
  skip_if_not_installed("callr")
  skip_if_not_installed("shiny")
  out <- callr::r(function() {
    library(httpuv)
    loadNamespace("shiny")
    imports <- parent.env(asNamespace("shiny"))
    pkg <- as.environment("package:httpuv")
    orig <- list(imp = get("startServer", imports), pkg = get("startServer", pkg),
                 ns = httpuv::startServer)
    rookd::use_rookd()
    during <- list(
      imp = identical(topenv(environment(get("startServer", imports))), asNamespace("rookd")),
      pkg = identical(get("startServer", pkg), get("startServer", imports)),
      ns = identical(httpuv::startServer, get("startServer", imports)),
      bare = identical(startServer, httpuv::startServer),
      interrupt = identical(httpuv::interrupt, rookd::interrupt),
      getRNGState = identical(httpuv::getRNGState, rookd::getRNGState)
    )
    # A server started the way Shiny starts one (its imported startServer) is rookd's.
    s <- get("startServer", imports)("127.0.0.1", 0, list(call = function(req) NULL))
    rookd_server <- !inherits(s, "R6")
    s$stop()
    # A namespace loaded while routed imports rookd's functions, and is restored too.
    loadNamespace("plumber")
    rookd::unuse_rookd()
    after <- list(imp = get("startServer", imports), pkg = get("startServer", pkg),
                  ns = httpuv::startServer)
    list(during = during, rookd_server = rookd_server, restored = identical(orig, after),
         locked = bindingIsLocked("startServer", imports) &&
           bindingIsLocked("startServer", pkg) &&
           bindingIsLocked("startServer", asNamespace("httpuv")))
  })
  expect_true(all(unlist(out$during)))
  expect_true(out$rookd_server)
  expect_true(out$restored)
  expect_true(out$locked)
})

test_that("a namespace that imports httpuv while routed gets httpuv back on undo (child R)", {
  skip_if_not_installed("callr")
  skip_if_not_installed("shiny")
  out <- callr::r(function() {
    rookd::use_rookd()
    loadNamespace("shiny")  # imports httpuv's (routed) functions now
    imports <- parent.env(asNamespace("shiny"))
    routed <- !identical(environment(get("service", imports)), asNamespace("httpuv"))
    rookd::unuse_rookd()
    list(routed = routed,
         restored = identical(get("service", imports), get("service", asNamespace("httpuv"))),
         httpuv_own = identical(environment(get("service", imports)), asNamespace("httpuv")))
  })
  expect_true(out$routed)
  expect_true(out$restored)
  expect_true(out$httpuv_own)
})

test_that("loading rookd leaves httpuv's own servers printing as httpuv prints them", {
  skip_if_not_installed("httpuv")
  expect_false(is_rookd_active())
  s <- httpuv::startServer("127.0.0.1", httpuv::randomPort(),
                           list(call = function(req) list(status = 200L, headers = list(), body = "")))
  on.exit(httpuv::stopServer(s), add = TRUE)
  expect_s3_class(s, "R6")
  out <- capture.output(print(s))
  expect_false(any(grepl("rookd", out)))
})
