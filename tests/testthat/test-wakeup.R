# No lost wake-ups: with R idle at the prompt of an interactive session, a client sending
# one request at a time on one keep-alive connection for ROOKD_WAKEUP_SECONDS (default 40)
# never waits more than ROOKD_WAKEUP_MAX_MS (default 1000) for a reply.
#
# A lost wake-up leaves a request waiting until something else wakes R; at an idle prompt
# nothing does, so the client waits for ever (here: its 10 s timeout). A bound of 1 s
# catches that with a wide margin, while a busy machine's scheduling hiccups (100-200 ms
# seen with the load average at 5 on 2 cores) do not fail the test. The latencies are
# reported, not asserted: speed is measured in bench/, not here.

test_that("no lost wake-ups: every reply comes while R idles at the prompt", {
  skip_if_slow_disabled()
  skip_if_no_tmux()
  skip_if_no_python()
  secs <- as.numeric(Sys.getenv("ROOKD_WAKEUP_SECONDS", "40"))
  max_ms <- as.numeric(Sys.getenv("ROOKD_WAKEUP_MAX_MS", "1000"))
  if (is.na(secs) || secs <= 0) secs <- 40
  if (is.na(max_ms) || max_ms <= 0) max_ms <- 1000
  sess <- tmux_r_session()
  expect_true(at_prompt(sess$capture()))
  res <- lockstep_at_prompt(sess, secs, patience = 10)
  expect_length(res$errors, 0)
  expect_identical(res$n_lost, 0L)
  expect_gt(res$count, 100)
  expect_identical(res$connections, 1L)
  expect_lt(res$max_ms, max_ms)
  # The session is still idle at its prompt afterwards.
  expect_true(at_prompt(sess$capture()))
})
