# Rscript serve.R PORT: the Shiny app in app/, on rookd, unchanged.
# FRAMEWORKS_ENGINE=httpuv runs it on httpuv instead (a reference run of the same checks).
port <- as.integer(commandArgs(trailingOnly = TRUE)[1])
here <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1]))
run <- function() {
  shiny::runApp(file.path(here, "app"), port = port, host = "127.0.0.1", launch.browser = FALSE)
}
if (identical(Sys.getenv("FRAMEWORKS_ENGINE"), "httpuv")) run() else rookd::with_rookd(run())
