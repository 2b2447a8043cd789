# Every option has a documented range; outside it is an R error naming the option and
# its range, raised by rookdOptions() and again by the bridge (for options built by
# hand), and values at the edges of the ranges still serve.

ranges <- list(
  max_header_bytes = c(1024, 64 * 1024^2),
  max_headers = c(1, 10000),
  max_body_bytes = c(1, 2^40),
  max_connections = c(1, 1e6),
  max_queued_requests = c(1, 1e6),
  max_inflight_bytes = c(1024^2, 2^40),
  threads = c(1, 64),
  ws_max_message_bytes = c(1, 2^31 - 1),
  ws_max_outgoing_bytes = c(1024, 2^40),
  ws_max_inflight_bytes = c(1024, 2^32 - 1)
)
timeouts <- c("header_timeout", "keepalive_timeout", "body_timeout", "ws_ping_interval",
              "ws_idle_timeout")
year <- 365 * 86400

test_that("R's ranges are the engine's ranges", {
  engine <- rookd:::rookd_option_limits()
  for (nm in names(ranges)) {
    expect_identical(engine[[nm]]$kind, "count", info = nm)
    expect_identical(engine[[nm]]$range, ranges[[nm]], info = nm)
  }
  for (nm in timeouts) {
    expect_identical(engine[[nm]]$range, c(0, year), info = nm)
    expect_true(engine[[nm]]$no_limit, info = nm)
  }
  expect_identical(engine$shutdown_grace$range, c(0, 3600))
  expect_false(engine$shutdown_grace$no_limit)
  # rookdOptions() checks with this very table (one source).
  expect_identical(rookd:::option_table(), engine)
})

test_that("rookdOptions()'s arguments are the engine's options, with its defaults", {
  engine <- rookd:::rookd_option_limits()
  f <- formals(rookdOptions)
  expect_identical(names(f), names(engine))
  for (nm in names(engine)) {
    expect_identical(eval(f[[nm]], baseenv()), engine[[nm]]$default, info = nm)
  }
  # And rookdOptions() returns them unchanged.
  o <- unclass(rookdOptions())
  for (nm in names(engine)) expect_identical(o[[nm]], engine[[nm]]$default, info = nm)
})

test_that("each count option: both ends accepted, one step outside refused with its range", {
  for (nm in names(ranges)) {
    r <- ranges[[nm]]
    lo <- list(r[1]); names(lo) <- nm
    hi <- list(r[2]); names(hi) <- nm
    # max_body_bytes may not exceed max_inflight_bytes: raise that one alongside.
    extra <- if (nm == "max_body_bytes") list(max_inflight_bytes = 2^40) else
      if (nm == "max_inflight_bytes") list(max_body_bytes = 1) else list()
    expect_identical(do.call(rookdOptions, c(lo, extra))[[nm]], r[1], info = nm)
    expect_identical(do.call(rookdOptions, c(hi, extra))[[nm]], r[2], info = nm)
    pattern <- sprintf("`%s` must be a single whole number in [%s, %s]", nm,
                       format(r[1], scientific = FALSE), format(r[2], scientific = FALSE))
    below <- lo; below[[1]] <- r[1] - 1
    above <- hi; above[[1]] <- r[2] + 1
    expect_error(do.call(rookdOptions, c(below, extra)), pattern, fixed = TRUE, info = nm)
    expect_error(do.call(rookdOptions, c(above, extra)), pattern, fixed = TRUE, info = nm)
    for (bad in list(NA, Inf, 1.5 + r[1], "1", c(r[1], r[1]))) {
      arg <- list(bad); names(arg) <- nm
      expect_error(do.call(rookdOptions, c(arg, extra)), sprintf("`%s`", nm), fixed = TRUE, info = nm)
    }
  }
  # The example of the issue: it aborted R on the first request.
  expect_error(rookdOptions(max_headers = 1e9), "`max_headers` must be a single whole number in [1, 10000]",
               fixed = TRUE)
})

test_that("timeouts: 0 and Inf mean no limit, at most a year otherwise; grace has no Inf", {
  for (nm in timeouts) {
    for (ok in list(0, 0.001, year, Inf)) {
      arg <- list(ok); names(arg) <- nm
      expect_identical(do.call(rookdOptions, arg)[[nm]], ok, info = nm)
    }
    for (bad in list(-1, year + 1, 1e19, NA, "5")) {
      arg <- list(bad); names(arg) <- nm
      expect_error(do.call(rookdOptions, arg),
                   sprintf("`%s` must be a single number of seconds in [0, 31536000] or Inf", nm),
                   fixed = TRUE, info = nm)
    }
  }
  expect_identical(rookdOptions(shutdown_grace = 3600)$shutdown_grace, 3600)
  expect_error(rookdOptions(shutdown_grace = Inf), "`shutdown_grace` must be a single number of seconds in [0, 3600].",
               fixed = TRUE)
  expect_error(rookdOptions(shutdown_grace = 3601), "`shutdown_grace`", fixed = TRUE)
})

test_that("max_body_bytes above max_inflight_bytes is refused: such a body could never fit", {
  expect_error(rookdOptions(max_body_bytes = 2 * 1024^2, max_inflight_bytes = 1024^2),
               "`max_body_bytes` (2097152) must not exceed `max_inflight_bytes` (1048576)", fixed = TRUE)
})

test_that("options built by hand, past rookdOptions(), are refused by the bridge, not fatal", {
  forged <- function(...) {
    o <- unclass(rookdOptions())
    o[names(list(...))] <- list(...)
    structure(o, class = "rookd_options")
  }
  servers_before <- rookd:::rookd_stats()$servers
  expect_error(startServer("127.0.0.1", 0, text_app(), options = forged(max_headers = 1e9)),
               "`max_headers` must be a single whole number in [1, 10000]", fixed = TRUE)
  expect_error(startServer("127.0.0.1", 0, text_app(), options = forged(header_timeout = 1e19)),
               "`header_timeout` must be a single number of seconds", fixed = TRUE)
  expect_error(startServer("127.0.0.1", 0, text_app(), options = forged(ws_max_inflight_bytes = 2^40)),
               "`ws_max_inflight_bytes`", fixed = TRUE)
  expect_error(startServer("127.0.0.1", 0, text_app(), options = forged(shutdown_grace = Inf)),
               "`shutdown_grace`", fixed = TRUE)
  # No server was started (earlier tests' stopped servers may still be closing).
  expect_lte(rookd:::rookd_stats()$servers, servers_before)
})

test_that("a server with extreme but valid options still serves (in a child R process)", {
  skip_if_not_installed("callr")
  out <- callr::r(function() {
    library(rookd)
    o <- rookdOptions(max_headers = 10000, max_header_bytes = 64 * 1024^2,
                      header_timeout = 365 * 86400, keepalive_timeout = Inf, body_timeout = 0,
                      max_connections = 1e6, max_queued_requests = 1e6,
                      max_inflight_bytes = 2^40, max_body_bytes = 2^40,
                      ws_ping_interval = 365 * 86400, ws_idle_timeout = Inf,
                      ws_max_inflight_bytes = 2^32 - 1, ws_max_outgoing_bytes = 2^40,
                      ws_max_message_bytes = 2^31 - 1, shutdown_grace = 3600)
    s <- startServer("127.0.0.1", 0, list(call = function(req) {
      list(status = 200L, headers = list(), body = paste0("n=", length(req$HEADERS)))
    }), options = o)
    on.exit(s$stop())
    h <- curl::new_handle(url = sprintf("http://127.0.0.1:%d/", s$getPort()),
                          httpheader = sprintf("X-H%d: %d", 1:200, 1:200))
    got <- NULL
    curl::multi_add(h, done = function(r) got <<- r, fail = function(e) got <<- e)
    deadline <- Sys.time() + 10
    while (is.null(got) && Sys.time() < deadline) {
      later::run_now(0.01)
      curl::multi_run(timeout = 0.01, poll = TRUE)
    }
    list(status = got$status_code, body = rawToChar(got$content))
  }, timeout = 60)
  expect_identical(out$status, 200L)
  expect_match(out$body, "^n=2[0-9][0-9]$")
})
