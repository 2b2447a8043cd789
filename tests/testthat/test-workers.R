# The worker pool (startWorkers/serveWorkers): real R worker processes behind the
# engine's front, real clients (curl, Python).

pool_app_file <- function(code, dir = tempfile("pool-app")) {
  dir.create(dir)
  f <- file.path(dir, "app.R")
  writeLines(code, f)
  f
}

# A Rook app: /slow?ms=N spends N ms in R; every answer is "pid start end" (seconds);
# a WebSocket gets the pid as its first message.
pid_app_code <- '
app <- list(
  call = function(req) {
    t0 <- as.numeric(Sys.time())
    ms <- suppressWarnings(as.numeric(sub("^ms=", "", req$QUERY_STRING)))
    if (identical(req$PATH_INFO, "/slow") && !is.na(ms)) {
      end <- Sys.time() + ms / 1000
      while (Sys.time() < end) NULL   # burn CPU, as a real handler would
    }
    list(status = 200L, headers = list("Content-Type" = "text/plain"),
         body = sprintf("%d %.6f %.6f", Sys.getpid(), t0, as.numeric(Sys.time())))
  },
  onWSOpen = function(ws) ws$send(as.character(Sys.getpid()))
)'

local_pool <- function(code = pid_app_code, ..., .env = parent.frame()) {
  p <- startWorkers(pool_app_file(code), port = 0, quiet = TRUE, ...)
  withr::defer(p$stop(), envir = .env)
  p
}

pool_url <- function(p, path = "/") paste0("http://127.0.0.1:", p$getPort(), path)
pid_of <- function(resp) as.integer(strsplit(resp$text, " ")[[1]][1])

test_that("requests spread over the workers, and two 300 ms handlers run at once on two", {
  p <- local_pool(workers = 2)
  w <- p$workers()
  expect_equal(nrow(w), 2)
  expect_true(all(w$state == "ready"))
  pids <- vapply(1:6, function(i) pid_of(http_req(pool_url(p))), 1L)
  expect_setequal(unique(pids), w$pid)
  rs <- http_many(list(list(url = pool_url(p, "/slow?ms=300")), list(url = pool_url(p, "/slow?ms=300"))))
  expect_equal(vapply(rs, `[[`, 1, "status"), c(200, 200))
  parts <- lapply(rs, function(r) as.numeric(strsplit(r$text, " ")[[1]]))
  expect_false(parts[[1]][1] == parts[[2]][1])            # two workers
  # Overlap: each started before the other ended.
  expect_lt(parts[[1]][2], parts[[2]][3])
  expect_lt(parts[[2]][2], parts[[1]][3])
  expect_equal(p$stats()$bad_gateway, 0)
})

test_that("cookie stickiness holds over HTTP and WebSocket for a client, and differs between clients", {
  skip_if_no_python()
  p <- local_pool(workers = 2, sticky = "cookie")
  first <- http_req(pool_url(p))
  sc <- hdr(first, "set-cookie")
  expect_match(sc, "^rookd_worker=w[0-9]+; Path=/; HttpOnly; SameSite=Lax$")
  cookie <- sub(";.*$", "", sc)
  again <- vapply(1:5, function(i) {
    r <- http_req(pool_url(p), headers = paste0("Cookie: other=1; ", cookie))
    expect_equal(length(hdr_all(r, "set-cookie")), 0)
    pid_of(r)
  }, 1L)
  expect_true(all(again == pid_of(first)))
  # Another client (no cookie) gets the other worker.
  second <- http_req(pool_url(p))
  expect_false(pid_of(second) == pid_of(first))
  ws_pid <- ws_py(p$getPort(), sprintf('
async def main():
    async with connect("/", headers=[("Cookie", "%s")]) as ws:
        return await asyncio.wait_for(ws.recv(), 10)
', cookie))
  expect_equal(as.integer(ws_pid), pid_of(first))
  # A cookie naming no live worker is replaced.
  r <- http_req(pool_url(p), headers = "Cookie: rookd_worker=w999")
  expect_match(hdr(r, "set-cookie"), "^rookd_worker=w[12];")
})

test_that("ip stickiness keeps one client on one worker", {
  p <- local_pool(workers = 2, sticky = "ip")
  pids <- vapply(1:6, function(i) pid_of(http_req(pool_url(p))), 1L)
  expect_length(unique(pids), 1)
})

test_that("a killed worker's request gets 502 at once, and the worker is replaced", {
  p <- local_pool(workers = 2)
  before <- p$workers()$pid
  done <- NULL
  h <- curl::new_handle(timeout = 30)
  mp <- curl::new_pool()
  curl::curl_fetch_multi(pool_url(p, "/slow?ms=20000"), handle = h, pool = mp,
                         done = function(r) done <<- r, fail = function(e) done <<- e)
  wait_until(function() {
    curl::multi_run(timeout = 0, poll = TRUE, pool = mp)
    any(p$workers()$in_flight == 1)
  }, timeout = 10, what = "the slow request to reach a worker")
  w <- p$workers()
  victim <- w$pid[w$in_flight == 1]
  # A crash: SIGKILL. (SIGTERM would drain the worker: runServer() lets the request finish.)
  tools::pskill(victim, tools::SIGKILL)
  wait_until(function() {
    curl::multi_run(timeout = 0.05, poll = TRUE, pool = mp)
    !is.null(done)
  }, timeout = 10, what = "the killed worker's request to end")
  expect_equal(done$status_code, 502)
  wait_until(function() {
    w <- p$workers()
    nrow(w) == 2 && all(w$state == "ready") && !victim %in% w$pid
  }, timeout = 30, what = "a replacement worker")
  expect_equal(p$stats()$workers_replaced, 1)
  pids <- vapply(1:4, function(i) pid_of(http_req(pool_url(p))), 1L)
  expect_false(victim %in% pids)
  expect_true(all(pids %in% p$workers()$pid))
})

test_that("reload under load loses no request and moves to new workers", {
  skip_if_no_python()
  p <- local_pool(workers = 2)
  old <- p$workers()$pid
  out <- tempfile()
  stop_file <- tempfile()
  loader <- processx::process$new("python3", c("-c", '
import http.client, sys, os, time
port, out, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
res = []
while not os.path.exists(stop):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        c.request("GET", "/slow?ms=20")
        r = c.getresponse()
        res.append("%d %s" % (r.status, r.read().decode().split(" ")[0]))
        c.close()
    except Exception as e:
        res.append("ERR %s" % e)
open(out, "w").write("\\n".join(res) + "\\n")
', p$getPort(), out, stop_file))
  on.exit(loader$kill(), add = TRUE)
  Sys.sleep(0.5)
  p$reload()
  Sys.sleep(0.5)
  file.create(stop_file)
  loader$wait(10000)
  lines <- readLines(out)
  expect_gt(length(lines), 10)
  status <- sub(" .*", "", lines)
  expect_true(all(status == "200"), info = paste(unique(lines[status != "200"]), collapse = "; "))
  pids <- as.integer(sub("^200 ", "", lines[status == "200"]))
  new <- p$workers()$pid[p$workers()$generation == 2]
  expect_length(new, 2)
  expect_length(intersect(new, old), 0)
  expect_true(any(pids %in% old) && any(pids %in% new))
  wait_until(function() all(p$workers()$generation == 2), timeout = 10, what = "the old workers to drain")
})

test_that("all workers busy: a bounded queue, then 503 with Retry-After", {
  p <- local_pool(workers = 1, worker_concurrency = 1, queue_max = 1, queue_timeout = 0.3)
  slow <- list(url = pool_url(p, "/slow?ms=1500"))
  rs <- http_many(list(slow, slow, slow), timeout = 20)
  status <- vapply(rs, `[[`, 1, "status")
  expect_equal(sort(status), c(200, 503, 503))
  for (r in rs[status == 503]) expect_equal(hdr(r, "retry-after"), "1")
  expect_equal(p$stats()$unavailable, 2)
})

test_that("a worker recycles after max_requests, new one first", {
  p <- local_pool(workers = 1, max_requests = 3)
  first <- p$workers()$pid
  pids <- vapply(1:3, function(i) pid_of(http_req(pool_url(p))), 1L)
  expect_true(all(pids == first))
  wait_until(function() { w <- p$workers(); nrow(w) == 1 && w$state == "ready" && w$pid != first },
             timeout = 30, what = "the recycled worker")
  expect_false(pid_of(http_req(pool_url(p))) == first)
})

test_that("an app file that fails to load is a clear error from startWorkers", {
  f <- pool_app_file('stop("boom in the app")')
  expect_error(startWorkers(f, workers = 2, port = 0, quiet = TRUE, startup_timeout = 30),
               "could not serve .*app\\.R.*boom in the app")
  g <- pool_app_file('x <- 1')
  expect_error(startWorkers(g, workers = 1, port = 0, quiet = TRUE), "does not define `app`")
  expect_error(startWorkers(tempfile()), "`app` must be")
  expect_error(startWorkers(g, sticky = "yes"), "`sticky`")
})

test_that("a plumber API through the pool", {
  skip_if_not_installed("plumber")
  f <- pool_app_file(c("#* @get /pid", "#* @serializer unboxedJSON", "function() list(pid = Sys.getpid())"),
                     dir = tempfile("plumber"))
  p <- startWorkers(f, workers = 2, port = 0, quiet = TRUE)
  on.exit(p$stop())
  expect_equal(p$type, "plumber")
  pids <- vapply(1:4, function(i) {
    r <- http_req(pool_url(p, "/pid"))
    expect_equal(r$status, 200)
    jsonlite::fromJSON(r$text)$pid
  }, 1)
  expect_setequal(unique(pids), p$workers()$pid)
})

test_that("a Shiny app through the pool: page, cookie, WebSocket on the page's worker", {
  skip_if_not_installed("shiny")
  skip_if_no_python()
  dir <- tempfile("shinyapp")
  dir.create(dir)
  writeLines(c('library(shiny)',
               'ui <- fluidPage(textOutput("pid"))',
               'server <- function(input, output, session) output$pid <- renderText(Sys.getpid())',
               'shinyApp(ui, server)'), file.path(dir, "app.R"))
  p <- startWorkers(dir, workers = 2, port = 0, quiet = TRUE)
  on.exit(p$stop())
  expect_equal(p$type, "shiny")
  page <- http_req(pool_url(p))
  expect_equal(page$status, 200)
  expect_match(page$text, "shiny")
  cookie <- sub(";.*$", "", hdr(page, "set-cookie"))
  expect_match(cookie, "^rookd_worker=")
  got <- ws_py(p$getPort(), sprintf('
async def main():
    async with connect("/websocket/", headers=[("Cookie", "%s")]) as ws:
        await ws.send(json.dumps({"method": "init", "data": {".clientdata_output_pid_hidden": False}}))
        deadline = time.time() + 20
        while time.time() < deadline:
            m = json.loads(await asyncio.wait_for(ws.recv(), 20))
            v = m.get("values", {}).get("pid")
            if v is not None:
                return v
', cookie))
  w <- p$workers()
  expect_equal(as.integer(got), w$pid[paste0("rookd_worker=w", w$id) == cookie])
})

test_that("reuse_port: two processes share a port with it; without it the second bind fails", {
  port <- randomPort()
  child <- processx::process$new(file.path(R.home("bin"), "Rscript"), c("-e", sprintf(
    'rookd::runServer("127.0.0.1", %d, function(req) list(status = 200L, headers = list(), body = "child"), options = rookd::rookdOptions(reuse_port = TRUE))', port)),
    env = c("current", R_LIBS = paste(.libPaths(), collapse = ":")))
  on.exit(child$kill(), add = TRUE)
  wait_until(function() port_accepts(port), timeout = 30, what = "the child server")
  expect_error(startServer("127.0.0.1", port, text_app("me")), "in use")
  s <- startServer("127.0.0.1", port, text_app("me"), options = rookdOptions(reuse_port = TRUE))
  on.exit(stopServer(s), add = TRUE)
  expect_true(s$isRunning())
})

test_that("a hung worker: 502 after worker_timeout, and it is replaced", {
  code <- 'app <- function(req) {
    if (identical(req$PATH_INFO, "/hang")) Sys.sleep(60)
    list(status = 200L, headers = list(), body = as.character(Sys.getpid()))
  }'
  p <- local_pool(code, workers = 1, worker_timeout = 1)
  expect_output(print(p), "worker pool.*1 ready of 1 workers")
  hung <- p$workers()$pid
  r <- http_req(pool_url(p, "/hang"), timeout = 20)
  expect_equal(r$status, 502)
  wait_until(function() { w <- p$workers(); nrow(w) == 1 && w$state == "ready" && w$pid != hung },
             timeout = 30, what = "the hung worker's replacement")
  expect_equal(http_req(pool_url(p))$status, 200)
  expect_false(hung %in% p$workers()$pid)
})

test_that("max_rss_mb recycles a worker that is too big, serving meanwhile", {
  p <- local_pool(workers = 1, max_rss_mb = 1)   # every R process is bigger than 1 MiB
  wait_until(function() p$stats()$workers_recycled >= 2, timeout = 30, what = "two recycles")
  expect_equal(http_req(pool_url(p))$status, 200)
  expect_equal(p$stats()$bad_gateway, 0)
})

test_that("a worker that stops accepting connections is replaced without a request finding it", {
  code <- 'app <- function(req) {
    if (identical(req$PATH_INFO, "/close")) later::later(function() rookd::stopAllServers(), 0.2)
    list(status = 200L, headers = list(), body = as.character(Sys.getpid()))
  }'
  p <- local_pool(code, workers = 1)
  closing <- pid_of(http_req(pool_url(p, "/close")))
  wait_until(function() { w <- p$workers(); nrow(w) == 1 && w$state == "ready" && w$pid != closing },
             timeout = 30, what = "the closed worker's replacement")
  expect_false(pid_of(http_req(pool_url(p))) == closing)
  expect_equal(p$stats()$workers_replaced, 1)
})
