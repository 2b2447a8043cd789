# The live status page in headless Chromium (tests/browser/status.test.mjs): it loads
# under traffic, its charts draw, and no request leaves 127.0.0.1. Skips only when the
# browser, node or playwright-core (tests/browser/run.sh installs it) is missing.

test_that("the status page draws live charts in headless Chromium, all from 127.0.0.1", {
  skip_if_slow_disabled()
  chromium <- Sys.getenv("CHROMIUM", "/usr/bin/chromium")
  skip_if(!file.exists(chromium), "chromium is not installed")
  skip_if(!nzchar(Sys.which("node")), "node is not installed")
  script <- normalizePath(test_path("..", "browser", "status.test.mjs"), mustWork = FALSE)
  skip_if(!file.exists(script), "tests/browser/status.test.mjs is not here (installed tests)")
  skip_if(!dir.exists(file.path(dirname(script), "node_modules", "playwright-core")),
          "playwright-core is not installed (bash tests/browser/run.sh installs it)")
  out <- processx::run("node", script, error_on_status = FALSE, timeout = 180,
                       env = c("current", RSCRIPT = file.path(R.home("bin"), "Rscript")))
  lines <- strsplit(out$stdout, "\n")[[1]]
  if (out$status != 0) cat(out$stdout, out$stderr, sep = "\n")
  expect_identical(out$status, 0L)
  expect_match(lines[length(lines)], "^[0-9]+ passed, 0 failed$")
})
