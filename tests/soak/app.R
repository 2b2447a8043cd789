# The server of the soak (tests/soak/run.sh): one rookd server on 127.0.0.1 with a small
# mixed app and a WebSocket echo. Writes {"pid": ..., "port": ...} to INFO_FILE, then
# serves until /quit or DEADLINE seconds.
#
#   Rscript tests/soak/app.R INFO_FILE DEADLINE [LIB]
args <- commandArgs(trailingOnly = TRUE)
info_file <- args[1]
deadline <- Sys.time() + as.numeric(args[2])
if (length(args) >= 3 && nzchar(args[3])) .libPaths(c(args[3], .libPaths()))
suppressPackageStartupMessages(library(rookd))

n_calls <- 0
n_ws_open <- 0
n_ws_msgs <- 0
n_ws_closed <- 0
blob <- as.raw(sample(0:255, 65536, replace = TRUE))
app <- list(
  call = function(req) {
    n_calls <<- n_calls + 1
    path <- req$PATH_INFO
    if (path == "/hello") {
      list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "hello")
    } else if (path == "/echo") {
      body <- req[["rook.input"]]$read()
      list(status = 200L, headers = list("Content-Type" = "application/octet-stream"), body = body)
    } else if (path == "/json") {
      list(status = 200L, headers = list("Content-Type" = "application/json"),
           body = sprintf('{"n": %d, "q": "%s", "ua": "%s"}', n_calls, req$QUERY_STRING,
                          req$HTTP_USER_AGENT %||% ""))
    } else if (path == "/blob") {
      list(status = 200L, headers = list("Content-Type" = "application/octet-stream"), body = blob)
    } else if (path == "/text") {
      # compressible: gzip when the client accepts it
      list(status = 200L, headers = list("Content-Type" = "text/plain"),
           body = strrep("soak text ", 400))
    } else if (path == "/error") {
      stop("soak error")
    } else if (path == "/stats") {
      list(status = 200L, headers = list("Content-Type" = "application/json"),
           body = sprintf('{"calls": %.0f, "ws_open": %.0f, "ws_msgs": %.0f, "ws_closed": %.0f}',
                          n_calls, n_ws_open, n_ws_msgs, n_ws_closed))
    } else if (path == "/gc") {
      # A full collection, then R's own heap in use (MB): tells R's share of the RSS.
      g <- gc(full = TRUE)
      list(status = 200L, headers = list("Content-Type" = "application/json"),
           body = sprintf('{"r_heap_mb": %.1f}', sum(g[, 2])))
    } else if (path == "/quit") {
      interrupt()
      list(status = 200L, headers = list(), body = "bye")
    } else {
      list(status = 404L, headers = list(), body = "not found")
    }
  },
  onWSOpen = function(ws) {
    n_ws_open <<- n_ws_open + 1
    ws$onMessage(function(binary, message) {
      n_ws_msgs <<- n_ws_msgs + 1
      ws$send(message)
    })
    ws$onClose(function() n_ws_closed <<- n_ws_closed + 1)
  }
)
`%||%` <- function(a, b) if (is.null(a)) b else a

s <- startServer("127.0.0.1", 0, app, options = rookdOptions(
  header_timeout = 3, body_timeout = 5, max_body_bytes = 1024^2, max_queued_requests = 100000,
  ws_ping_interval = 0, ws_idle_timeout = 10))

# A second server for the R-side attacks of soak.py (attack_session): onHeaders keeps each
# request's env (refused upgrades and abandoned requests must release it), answers that
# arrive 0.2 s late as a streamed body or an owned file (their clients leave first), odd
# header names, WebSocket text and close reasons with U+0000. /rstats: what must be back
# to 0 once idle (kept envs, generators, waiting promises, owned files left on disk).
owned_dir <- tempfile("soak-owned-")
dir.create(owned_dir)
late <- function(kind) {
  promises::promise(function(resolve, reject) {
    later::later(function() {
      body <- if (kind == "stream") {
        n <- 0
        function() { n <<- n + 1; if (n > 2) NULL else "late chunk\n" }
      } else {
        f <- tempfile("owned-", tmpdir = owned_dir)
        writeLines("late file", f)
        list(file = f, owned = TRUE)
      }
      resolve(list(status = 200L, headers = list("Content-Type" = "text/plain"), body = body))
    }, 0.2)
  })
}
attack_app <- list(
  onHeaders = function(req) NULL,
  call = function(req) {
    switch(req$PATH_INFO,
      "/late-stream" = late("stream"),
      "/late-file" = late("file"),
      "/rstats" = {
        st <- rookd:::rookd_stats()
        list(status = 200L, headers = list("Content-Type" = "application/json"),
             body = sprintf('{"pending_envs": %d, "streams": %d, "promises_waiting": %d, "owned_files": %d}',
                            st$pending_envs, st$streams, st$promises_waiting,
                            length(list.files(owned_dir))))
      },
      list(status = 200L, headers = list("Content-Type" = "text/plain"),
           body = sprintf("xff=%s vars=%d", req$HTTP_X_FORWARDED_FOR %||% "<unset>",
                          length(grep("^HTTP_", ls(req))))))
  },
  onWSOpen = function(ws) ws$onMessage(function(binary, message) ws$send(message))
)
s2 <- startServer("127.0.0.1", 0, attack_app, options = rookdOptions(
  ws_allowed_origins = "http://good.example", ws_ping_interval = 0, ws_idle_timeout = 10))
writeLines(sprintf('{"pid": %d, "port": %d, "attack_port": %d}', Sys.getpid(), s$getPort(), s2$getPort()),
           paste0(info_file, ".tmp"))
file.rename(paste0(info_file, ".tmp"), info_file)
while (Sys.time() < deadline) {
  service(200)
  if (isTRUE(rookd:::.globals$paused)) break
}
s$stop()
s2$stop()
unlink(owned_dir, recursive = TRUE)
