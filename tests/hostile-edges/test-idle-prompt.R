# The idle prompt on a busy machine: a daemonized server in an interactive R session (a
# real R under tmux) idle at its prompt answers every lock-step request while both cores
# are kept busy by other processes. On a quiet machine no wake-up was ever lost; with the
# cores busy, later's own wake-up of its input handler was lost about once in 15,000
# requests, and nothing woke R again: the request waited for ever.
#
# ROOKD_IDLE_BUSY_SECONDS sets the length (default 60; the soak in bench/README.md ran
# this for 600 s).

test_that("at the idle prompt with both cores busy, no request waits for a lost wake-up", {
  skip_if_slow_disabled()
  skip_if_no_tmux()
  skip_if_no_python()
  secs <- as.numeric(Sys.getenv("ROOKD_IDLE_BUSY_SECONDS", "60"))
  if (is.na(secs) || secs <= 0) secs <- 60
  sess <- tmux_r_session()
  expect_true(sess$interactive)
  expect_true(at_prompt(sess$capture()))
  res <- with_busy_cores(lockstep_at_prompt(sess, secs, patience = 5, pause_every = as.integer(Sys.getenv("ROOKD_IDLE_PAUSE_EVERY", "0")),
                                            label = "idle prompt, both cores busy"))
  expect_length(res$errors, 0)
  expect_gt(res$count, 1000)
  # The whole point: every request was answered (a lost wake-up is an answer that never
  # comes; 5 s is a hundred times the worst scheduling delay seen on this machine).
  expect_identical(res$n_lost, 0L)
  expect_identical(res$connections, 1L)
  expect_true(at_prompt(sess$capture()))
})

# later's wake-up lost on purpose (fault injection in the bridge's waker: every 25th
# wake-up skips later, as later 1.3.0 was seen to lose one on a busy machine). With only
# later's path (the poke off), requests wait for ever; with rookd's own input handler, none
# does. The first half shows the test can see a lost wake-up; the second, that the fix holds.
test_that("a wake-up later loses is made good by rookd's own input handler", {
  skip_if_slow_disabled()
  skip_if_no_tmux()
  skip_if_no_python()
  only_later <- tmux_r_session(env = c(ROOKD_TEST_LOSE_LATER_WAKES = "25", ROOKD_TEST_NO_POKE = "1"))
  res <- lockstep_at_prompt(only_later, 6, patience = 1, pause_every = 0L,
                            label = "later's path alone, every 25th wake-up lost")
  expect_gt(res$n_lost, 0L)

  both <- tmux_r_session(env = c(ROOKD_TEST_LOSE_LATER_WAKES = "25"))
  res <- lockstep_at_prompt(both, 20, patience = 5, pause_every = 2L,
                            label = "both paths, every 25th later wake-up lost")
  expect_length(res$errors, 0)
  expect_gt(res$count, 1000)
  expect_identical(res$n_lost, 0L)
  expect_true(at_prompt(both$capture()))
})

# A request that arrives while the user's own code waits at top level (Sys.sleep() at
# the prompt runs R's input handlers, but no app may run then): the handler consumes the
# poke and must ask again by both paths. With later never running a drain (every
# later wake-up dropped), the request is answered right after the sleep, by the poke path.
test_that("a poke that comes while R waits in top-level code is not lost when later's path is", {
  skip_if_slow_disabled()
  skip_if_no_tmux()
  sess <- tmux_r_session(env = c(ROOKD_TEST_LOSE_LATER_WAKES = "1"))
  curl_get <- function(path, timeout = 10) {
    processx::run("curl", c("-sS", "--max-time", timeout, paste0(sess$url, path)),
                  error_on_status = FALSE, timeout = timeout + 5)
  }
  first <- curl_get("/before")
  expect_identical(first$status, 0L)
  expect_match(first$stdout, "/before")
  sess$send("Sys.sleep(3)")
  Sys.sleep(0.5)
  t0 <- Sys.time()
  during <- curl_get("/during", timeout = 15)
  waited <- as.numeric(Sys.time() - t0, units = "secs")
  expect_identical(during$status, 0L)
  expect_match(during$stdout, "/during")
  # Not inside the sleep (no app runs in the middle of top-level code), but soon after.
  expect_gt(waited, 1.5)
  expect_lt(waited, 8)
  expect_true(at_prompt(sess$capture()))
})
