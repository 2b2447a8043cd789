# Rscript serve.R PORT: the plumber API of plumber.R, on rookd, unchanged.
# FRAMEWORKS_ENGINE=httpuv runs it on httpuv instead (a reference run of the same checks).
port <- as.integer(commandArgs(trailingOnly = TRUE)[1])
here <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1]))
pr <- plumber::pr(file.path(here, "plumber.R"))
run <- function() pr$run(host = "127.0.0.1", port = port, docs = FALSE, quiet = TRUE)
if (identical(Sys.getenv("FRAMEWORKS_ENGINE"), "httpuv")) run() else rookd::with_rookd(run())
