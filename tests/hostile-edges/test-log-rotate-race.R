# logrotate racing a stream of requests: the file is moved and SIGHUP sent over and over
# (signals coalesce, reopens may come while the queue is full): no line is lost or split,
# each lands whole in one of the files, and R keeps serving.

test_that("moving the log and SIGHUP storms while requests flow: every line lands whole in a file", {
  skip_on_os("windows")
  skip_if(!nzchar(Sys.which("h2load")), "h2load is not installed")
  dir <- tempfile("rotate"); dir.create(dir)
  path <- file.path(dir, "access.log")
  srv <- child_server(function(port, path) {
    s <- rookd::startServer("127.0.0.1", port, function(req) {
      list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "ok")
    }, options = rookd::rookdOptions(access_log = path))
    s$setStaticPath("/s" = dirname(path))
    rookd::service(0)
  }, args = list(path = path))
  writeLines("x", file.path(dir, "f.txt"))
  pid <- srv$process$get_pid()
  n <- 6000
  load <- processx::process$new("h2load", c("--h1", "-n", n, "-c", "8", "-H", paste0("user-agent: ", strrep("u", 2000)),
                                            sprintf("http://127.0.0.1:%d/s/f.txt", srv$port)),
                                stdout = "|", stderr = "|", cleanup = TRUE)
  i <- 0
  while (load$is_alive() && i < 200) {
    i <- i + 1
    if (file.exists(path)) file.rename(path, file.path(dir, sprintf("access.log.%03d", i)))
    for (k in 1:3) tools::pskill(pid, tools::SIGHUP)
    Sys.sleep(0.02)
  }
  load$wait(60000)
  expect_match(load$read_all_output(), sprintf("%d succeeded", n))
  expect_true(srv$process$is_alive())
  files <- list.files(dir, pattern = "^access[.]log", full.names = TRUE)
  count <- function() sum(vapply(files <<- list.files(dir, pattern = "^access[.]log", full.names = TRUE),
                                 function(f) length(readLines(f, warn = FALSE)), 1L))
  wait_until(function() count() >= n, timeout = 15, what = paste(n, "lines in all files"))
  lines <- unlist(lapply(files, readLines, warn = FALSE))
  expect_length(lines, n)
  # Whole lines only: each is one request's, with its full user agent.
  expect_true(all(grepl(sprintf('^127\\.0\\.0\\.1 - - \\[.*\\] "GET /s/f\\.txt HTTP/1\\.1" 200 2 "-" "u{2000}" [0-9.]+ - - [0-9]+$'),
                        lines, perl = TRUE)))
  expect_gt(length(files), 3)
  # Never world-readable (0640 less the umask), the reopened files too.
  expect_true(all(bitwAnd(as.integer(file.info(files)$mode), 7L) == 0L))
})
