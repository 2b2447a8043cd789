# A real interactive R session (under tmux): the server answers while R sits idle at the
# prompt, and never runs the app in the middle of top-level code such as Sys.sleep().

test_that("an idle interactive R session answers requests at the prompt", {
  skip_if_slow_disabled()
  skip_if_no_tmux()
  sess <- tmux_r_session()
  expect_true(sess$interactive)
  expect_true(at_prompt(sess$capture()))
  # The curl package, from this (separate) process: R in the session is just idle.
  for (i in 1:5) {
    t0 <- Sys.time()
    r <- fetch_blocking(paste0(sess$url, "/pkg", i), timeout = 10)
    latency <- as.numeric(Sys.time() - t0, units = "secs")
    expect_identical(r$status_code, 200L)
    b <- parse_app_body(rawToChar(r$content))
    expect_identical(b$hits, i)
    expect_identical(b$path, paste0("/pkg", i))
    expect_lt(latency, 1)
  }
  # System curl too, several requests on one connection.
  out <- processx::run("curl", c("-sS", "--max-time", "10", "-w", "\n",
                                 paste0(sess$url, "/sys1"), paste0(sess$url, "/sys2")),
                       timeout = 20, error_on_status = FALSE)
  expect_identical(out$status, 0L)
  lines <- strsplit(trimws(out$stdout), "\n")[[1]]
  expect_length(lines, 2)
  b1 <- parse_app_body(lines[1])
  b2 <- parse_app_body(lines[2])
  expect_identical(c(b1$hits, b2$hits), 6:7)
  expect_identical(c(b1$path, b2$path), c("/sys1", "/sys2"))
  expect_identical(b1$remote_port, b2$remote_port)
  # Still sitting at the prompt, nothing printed.
  expect_true(at_prompt(sess$capture()))
  expect_false(grepl("Error", sess$capture(), fixed = TRUE))
})

test_that("requests are not run inside Sys.sleep() at top level, only after it", {
  skip_if_slow_disabled()
  skip_if_no_tmux()
  sess <- tmux_r_session()
  expect_identical(fetch_blocking(paste0(sess$url, "/warm"))$status_code, 200L)
  started <- sess$file("sleep-start")
  ended <- sess$file("sleep-end")
  stamp <- function(path) sprintf("writeLines(format(as.numeric(Sys.time()), digits = 17), %s)",
                                  deparse(path))
  sess$send(paste0(stamp(started), "; Sys.sleep(3); ", stamp(ended)))
  t_start <- as.numeric(sess$wait_file(started, timeout = 20))
  t_req <- as.numeric(Sys.time())
  r <- fetch_blocking(paste0(sess$url, "/during-sleep"), timeout = 20)
  t_resp <- as.numeric(Sys.time())
  t_end <- as.numeric(sess$wait_file(ended, timeout = 20))
  expect_identical(r$status_code, 200L)
  b <- parse_app_body(rawToChar(r$content))
  expect_identical(b$path, "/during-sleep")
  # The request was made well inside the sleep...
  expect_gt(t_end - t_req, 1.5)
  # ...and the app ran only once the sleep was over.
  expect_gte(b$time, t_end - 0.01)
  expect_gte(t_resp - t_req, (t_end - t_req) - 0.05)
  # Served promptly once R is back at the prompt.
  expect_lt(t_resp - t_end, 1)
  t0 <- Sys.time()
  expect_identical(fetch_blocking(paste0(sess$url, "/after"))$status_code, 200L)
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 1)
})

test_that("stopping the server at the prompt frees the port at once", {
  skip_if_slow_disabled()
  skip_if_no_tmux()
  sess <- tmux_r_session()
  expect_identical(fetch_blocking(paste0(sess$url, "/x"))$status_code, 200L)
  done <- sess$file("stopped")
  sess$send(sprintf("s$stop(); writeLines(as.character(length(listServers())), %s)", deparse(done)))
  expect_identical(sess$wait_file(done), "0")
  expect_false(port_accepts(sess$port))
  s2 <- local_server(text_app("rebound"), port = sess$port)
  expect_identical(http_req(server_url(s2))$text, "rebound")
})
