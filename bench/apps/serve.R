# Start the benchmark app on httpuv or rookd.
#
# Script mode (the server lives in Rscript, which loops service()):
#   Rscript serve.R IMPL script PORT STATIC_DIR INFO_FILE
# Interactive-idle mode (R at the console prompt under tmux; bench/run types):
#   BENCH <- c("IMPL", "interactive", "PORT", "STATIC_DIR", "INFO_FILE"); source("serve.R")
#   which starts the server with startDaemonizedServer() and returns to the prompt.
# IMPL is "httpuv" or "rookd". Once the server is up, INFO_FILE gets "PID PORT STATIC".
# STATIC is 1 if the server took the app's staticPaths, 0 if it does not support them.
local({
  args <- if (exists("BENCH", envir = globalenv())) get("BENCH", envir = globalenv()) else
    commandArgs(trailingOnly = TRUE)
  impl <- args[[1]]; mode <- args[[2]]; port <- as.integer(args[[3]])
  static_dir <- args[[4]]; info <- args[[5]]
  here <- if (exists("BENCH", envir = globalenv())) dirname(get("BENCH_FILE", envir = globalenv())) else
    dirname(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE)[1]))
  source(file.path(here, "app.R"), local = TRUE)
  app <- bench_app(static_dir)
  pkg <- asNamespace(impl)
  start <- if (mode == "script") pkg$startServer else pkg$startDaemonizedServer
  static <- 1L
  server <- tryCatch(start("127.0.0.1", port, app), error = function(e) {
    # A server without staticPaths support may reject the field: serve the rest.
    message("bench: ", impl, " refused the app with staticPaths (", conditionMessage(e),
            "); starting it without")
    static <<- 0L
    app$staticPaths <- NULL
    start("127.0.0.1", port, app)
  })
  assign(".bench_server", server, envir = globalenv())
  tmp <- paste0(info, ".tmp")
  writeLines(paste(Sys.getpid(), port, static), tmp)
  file.rename(tmp, info)
  if (mode == "script") {
    service <- pkg$service
    repeat service(100)
  }
})
