# The R side of the proxy suite (tests/proxies/run.sh): two rookd servers on 127.0.0.1,
#   plain  trusted_proxies = 127.0.0.1 (behind nginx: X-Forwarded-*), metrics and status on
#   pp     proxy_protocol = TRUE, trusted_proxies = 127.0.0.1 (behind HAProxy), the same
# writes their ports to INFO_FILE (JSON, last, atomically) and serves until /quit or a
# 170 s deadline.
#
#   Rscript tests/proxies/app.R INFO_FILE [LIB]
args <- commandArgs(trailingOnly = TRUE)
info_file <- args[1]
if (length(args) >= 2 && nzchar(args[2])) .libPaths(c(args[2], .libPaths()))
suppressPackageStartupMessages(library(rookd))

quit_now <- FALSE
text <- function(body) list(status = 200L, headers = list("Content-Type" = "text/plain"), body = body)

app <- list(
  call = function(req) {
    switch(req$PATH_INFO,
      "/env" = text(paste(req$REMOTE_ADDR, req[["rook.url_scheme"]], req$HTTP_HOST %||% "",
                          req$SERVER_NAME, req$SERVER_PORT, sep = "|")),
      "/upload" = {
        body <- req[["rook.input"]]$read()
        text(sprintf("%d %s", length(body), if (length(body)) as.character(sum(as.integer(body)) %% 1000003L) else "0"))
      },
      "/stream" = {
        i <- 0L
        list(status = 200L, headers = list("Content-Type" = "text/plain"),
             body = function() {
               i <<- i + 1L
               if (i > 200L) NULL else sprintf("chunk %05d %s\n", i, strrep("x", 1000))
             })
      },
      "/quit" = { quit_now <<- TRUE; text("bye") },
      text("ok")
    )
  },
  onWSOpen = function(ws) {
    ws$onMessage(function(binary, message) {
      ws$send(paste0(message, "|", ws$request$REMOTE_ADDR, "|", ws$request[["rook.url_scheme"]]))
    })
  }
)
`%||%` <- function(a, b) if (is.null(a)) b else a

# metrics_path and status_path as the README and inst/deploy name them: the proxies must
# not forward them (every client of a proxy on this host would look local to rookd).
plain <- startServer("127.0.0.1", 0, app,
                     options = rookdOptions(trusted_proxies = "127.0.0.1", metrics_path = "/metrics",
                                            status_path = "/rookd-status"))
pp <- startServer("127.0.0.1", 0, app,
                  options = rookdOptions(proxy_protocol = TRUE, trusted_proxies = "127.0.0.1",
                                         health_path = "/healthz", ready_path = "/readyz",
                                         metrics_path = "/metrics", status_path = "/rookd-status"))
tmp <- paste0(info_file, ".tmp")
writeLines(sprintf('{"plain": %d, "pp": %d, "pid": %d}', plain$getPort(), pp$getPort(), Sys.getpid()), tmp)
file.rename(tmp, info_file)
deadline <- Sys.time() + 170
while (!quit_now && Sys.time() < deadline) later::run_now(0.1)
plain$stop()
pp$stop()
