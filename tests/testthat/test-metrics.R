# Metrics: server$stats() and the Prometheus endpoint, checked with Prometheus' own
# Python parser; loopback-only unless metrics_allow; slow-request reports.

prom_parse <- function(text) {
  py <- sys_python()
  ok <- !is.na(py) && identical(suppressWarnings(system2(py, c("-c", shQuote("import prometheus_client")),
                                                         stdout = FALSE, stderr = FALSE)), 0L)
  if (!ok) testthat::skip("python3-prometheus-client is not installed")
  inp <- tempfile()
  out <- tempfile()
  on.exit(unlink(c(inp, out)))
  writeLines(text, inp, sep = "")
  code <- paste(
    "import json, sys",
    "from prometheus_client.parser import text_string_to_metric_families",
    "fams = {}",
    "for f in text_string_to_metric_families(open(sys.argv[1]).read()):",
    "    fams[f.name] = {'type': f.type, 'samples': [[s.name, s.labels, s.value] for s in f.samples]}",
    "json.dump(fams, open(sys.argv[2], 'w'))",
    sep = "\n")
  script <- tempfile(fileext = ".py")
  writeLines(code, script)
  status <- system2(py, c(script, inp, out), stdout = TRUE, stderr = TRUE)
  if (!file.exists(out)) stop("prometheus_client could not parse the metrics:\n", paste(status, collapse = "\n"))
  jsonlite::fromJSON(out, simplifyVector = FALSE)
}

sample_value <- function(fams, family, name, labels = list()) {
  for (s in fams[[family]]$samples) {
    if (identical(s[[1]], name) && all(vapply(names(labels), function(n) identical(s[[2]][[n]], labels[[n]]), TRUE))) {
      return(s[[3]])
    }
  }
  NA
}

test_that("stats() and /metrics count requests, latency, rejects and bytes; Prometheus' parser reads them", {
  dir <- withr::local_tempdir()
  writeLines("static file", file.path(dir, "f.txt"))
  app <- list(
    call = function(req) {
      if (req$PATH_INFO == "/missing") return(list(status = 404L, headers = list(), body = "no"))
      list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "app")
    },
    staticPaths = list("/static" = staticPath(dir))
  )
  s <- local_server(app, options = rookdOptions(metrics_path = "/metrics", max_body_bytes = 100))
  for (i in 1:5) expect_identical(http_req(server_url(s, "/a"))$status, 200L)
  expect_identical(http_req(server_url(s, "/missing"), method = "POST", body = "x")$status, 404L)
  expect_identical(http_req(server_url(s, "/static/f.txt"))$text, "static file\n")
  expect_identical(http_req(server_url(s, "/a"), method = "POST", body = strrep("x", 200))$status, 413L)

  st <- s$stats()
  expect_identical(st$requests, 8)
  expect_identical(st$requests_by_method[["GET"]], 6)
  expect_identical(st$requests_by_method[["POST"]], 2)
  expect_identical(st$requests_by_status[["2xx"]], 6)
  expect_identical(st$requests_by_status[["4xx"]], 2)
  expect_identical(st$static_hits, 1)
  expect_identical(st$rejects[["413"]], 1)
  expect_true(all(st$latency >= 0))
  expect_true(all(st$r_latency >= 0))
  expect_gt(st$bytes_in, 0)
  expect_gt(st$bytes_out, 0)
  expect_true(st$ready)

  r <- http_req(server_url(s, "/metrics"))
  expect_identical(r$status, 200L)
  expect_match(hdr(r, "content-type"), "^text/plain; version=0.0.4")
  fams <- prom_parse(r$text)
  expect_identical(fams$rookd_http_requests$type, "counter")
  expect_identical(sample_value(fams, "rookd_http_requests", "rookd_http_requests_total",
                                list(method = "GET", code = "2xx")), 6)
  expect_identical(sample_value(fams, "rookd_http_requests", "rookd_http_requests_total",
                                list(method = "POST", code = "4xx")), 2)
  expect_identical(fams$rookd_http_request_duration_seconds$type, "histogram")
  expect_identical(sample_value(fams, "rookd_http_request_duration_seconds",
                                "rookd_http_request_duration_seconds_count"), 8)
  expect_identical(sample_value(fams, "rookd_http_request_duration_seconds",
                                "rookd_http_request_duration_seconds_bucket", list(le = "+Inf")), 8)
  # Time in R: the six requests the app answered (not the static hit, not the 413).
  expect_identical(sample_value(fams, "rookd_http_request_r_seconds", "rookd_http_request_r_seconds_count"), 6)
  expect_identical(sample_value(fams, "rookd_rejected_requests", "rookd_rejected_requests_total",
                                list(reason = "413")), 1)
  expect_identical(sample_value(fams, "rookd_static_hits", "rookd_static_hits_total"), 1)
  expect_identical(fams$rookd_connections_open$type, "gauge")
  expect_gte(sample_value(fams, "rookd_connections_open", "rookd_connections_open"), 1)
  for (f in c("rookd_r_queue_requests", "rookd_websockets_open", "rookd_received_bytes",
              "rookd_sent_bytes", "rookd_drains", "rookd_r_busy_seconds", "rookd_ready")) {
    expect_false(is.null(fams[[f]]), info = f)
  }
  # The metrics request itself is not counted.
  expect_identical(s$stats()$requests, 8)
})

test_that("a 431 from hyper is counted as a reject", {
  s <- local_server(text_app(), options = rookdOptions(metrics_path = "/metrics", max_header_bytes = 1024))
  r <- http_req(server_url(s, "/"), headers = paste0("X-Big: ", strrep("a", 2000)))
  expect_identical(r$status, 431L)
  wait_until(function() s$stats()$rejects[["431"]] == 1, what = "the 431 to be counted")
})

test_that("metrics and status are for loopback clients only, unless metrics_allow", {
  ips <- tryCatch(system2("hostname", "-I", stdout = TRUE), error = function(e) character())
  ip <- Filter(function(x) grepl("^[0-9.]+$", x) && !startsWith(x, "127."), strsplit(paste(ips, collapse = " "), " +")[[1]])
  skip_if(length(ip) == 0, "no non-loopback IPv4 address on this machine")
  ip <- ip[[1]]
  opts <- rookdOptions(metrics_path = "/metrics", status_path = "/status", health_path = "/healthz")
  s <- local_server(text_app(), host = "0.0.0.0", options = opts)
  url <- function(p) sprintf("http://%s:%d%s", ip, s$getPort(), p)
  expect_identical(http_req(url("/metrics"))$status, 403L)
  expect_identical(http_req(url("/status"))$status, 403L)
  expect_identical(http_req(url("/healthz"))$status, 200L)
  expect_identical(http_req(sprintf("http://127.0.0.1:%d/metrics", s$getPort()))$status, 200L)
  s2 <- local_server(text_app(), host = "0.0.0.0",
                     options = rookdOptions(metrics_path = "/metrics", metrics_allow = paste0(ip, "/32")))
  expect_identical(http_req(sprintf("http://%s:%d/metrics", ip, s2$getPort()))$status, 200L)
})

test_that("the status page and its JSON are served by the engine", {
  s <- local_server(text_app(), options = rookdOptions(status_path = "/rookd-status"))
  page <- http_req(server_url(s, "/rookd-status"))
  expect_identical(page$status, 200L)
  expect_match(hdr(page, "content-type"), "^text/html")
  # Self-contained: no external script, style or image.
  expect_false(grepl("(src|href)=[\"']?(https?:)?//", page$text))
  j <- jsonlite::fromJSON(http_req(server_url(s, "/rookd-status?json"))$text)
  expect_true(j$ready)
  expect_identical(length(j$bounds) + 1L, length(j$total))
})

test_that("a slow app call is reported once per path, with method, path and time", {
  app <- function(req) {
    Sys.sleep(0.25)
    list(status = 200L, headers = list(), body = "ok")
  }
  s <- local_server(app, options = rookdOptions(slow_request_warning = 0.1))
  out <- with_stderr({
    http_req(server_url(s, "/slow-one"))
    http_req(server_url(s, "/slow-one"))
    http_req(server_url(s, "/slow-two"), method = "POST", body = "x")
  })
  expect_match(out$stderr, "rookd: slow request: GET /slow-one took 0\\.[0-9]+ s in R \\(slow_request_warning = 0.1 s")
  expect_match(out$stderr, "POST /slow-two")
  expect_identical(lengths(regmatches(out$stderr, gregexpr("/slow-one", out$stderr))), 1L)
  quiet <- local_server(app)
  expect_identical(with_stderr(http_req(server_url(quiet, "/x")))$stderr, "")
})
