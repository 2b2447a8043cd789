#!/usr/bin/env Rscript
# Run rookd's whole testthat suite against the installed package, slow tests included.
#
#   Rscript tools/run-r-tests.R            # everything
#   Rscript tools/run-r-tests.R response   # only test-*response*.R (a testthat filter)
#   Rscript tools/run-r-tests.R --dir tests/hostile-edges [FILTER]   # another suite's folder
#
# The last line printed is exactly "N passed, N failed" (", N skipped" follows when
# tests were skipped): N passed counts passing expectations, N failed counts failing
# expectations plus tests that stopped with an error. The exit status is non-zero on any
# failure or error.
# Env: ROOKD_WAKEUP_SECONDS (length of the wake-up test, default 40).

args <- commandArgs(trailingOnly = TRUE)
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
root <- if (is.na(script)) getwd() else normalizePath(file.path(dirname(script), ".."))
test_path <- file.path(root, "tests", "testthat")
if (length(args) >= 2 && args[[1]] == "--dir") {
  test_path <- normalizePath(args[[2]])
  args <- args[-(1:2)]
}
filter <- if (length(args)) args[[1]] else NULL

# The runner never skips: slow and tmux tests run, and skip_on_cran() does not apply.
Sys.setenv(NOT_CRAN = "true", ROOKD_SKIP_SLOW = "0")

summary_line <- function(passed, failed, skipped) {
  line <- sprintf("%d passed, %d failed", as.integer(passed), as.integer(failed))
  if (skipped > 0) line <- paste0(line, sprintf(", %d skipped", as.integer(skipped)))
  line
}

status <- tryCatch({
  suppressPackageStartupMessages({
    library(testthat)
    library(rookd)
  })
  res <- testthat::test_dir(
    test_path,
    filter = filter,
    reporter = testthat::ProgressReporter$new(show_praise = FALSE, max_failures = 1e6,
                                              update_interval = Inf),
    stop_on_failure = FALSE,
    stop_on_warning = FALSE,
    package = "rookd",
    load_package = "installed"
  )
  df <- as.data.frame(res)
  if (nrow(df)) {
    slow <- head(df[order(-df$real), c("file", "test", "real")], 8)
    cat("\nSlowest tests (seconds):\n")
    for (i in seq_len(nrow(slow))) {
      cat(sprintf("  %6.1f  %s: %s\n", slow$real[i], slow$file[i], slow$test[i]))
    }
  }
  passed <- sum(df$passed)
  failed <- sum(df$failed) + sum(df$error)
  skipped <- sum(df$skipped)
  if (nrow(df) == 0) failed <- failed + 1  # nothing ran: that is a failure too
  list(line = summary_line(passed, failed, skipped), ok = failed == 0)
}, error = function(e) {
  cat("\nThe test run itself failed: ", conditionMessage(e), "\n", sep = "", file = stderr())
  list(line = summary_line(0, 1, 0), ok = FALSE)
})

cat("\n", status$line, "\n", sep = "")
quit(save = "no", status = if (status$ok) 0L else 1L)
