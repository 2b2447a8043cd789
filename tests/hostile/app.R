# The server side of the hostile-client suite (tests/hostile/run.sh).
#
#   Rscript tests/hostile/app.R INFO_FILE [LIB]
#
# Starts rookd servers on 127.0.0.1 with tight limits, writes their ports and this
# process's pid to INFO_FILE (JSON, written last, atomically), then serves until a
# request to /quit (or a 170 s deadline: this script never outlives its suite).
#
# Servers:
#   main    tight limits (4 KiB heads, 20 headers, 64 KiB bodies, 2 s timeouts,
#           4 queued requests, WebSocket Origin restricted to http://good.example)
#   victim  default limits: /stopother on main stops it from inside a request
#   selfish default limits: its /stopself stops itself from inside a request
#   narrow  max_connections = 2, header_timeout 20 s (connections wait in the backlog)
args <- commandArgs(trailingOnly = TRUE)
info_file <- args[1]
if (length(args) >= 2 && nzchar(args[2])) .libPaths(c(args[2], .libPaths()))
suppressPackageStartupMessages(library(rookd))

calls <- character()        # tags of the requests the app has been called for
big_file <- tempfile("hostile-big-")
writeBin(as.raw(rep(0x61, 64 * 1024^2)), big_file)  # 64 MiB, served as a file body
fork_job <- NULL
servers <- list()

qparam <- function(req, name, default = NULL) {
  q <- req$QUERY_STRING
  if (!nzchar(q)) return(default)
  kv <- strsplit(strsplit(q, "&", fixed = TRUE)[[1]], "=", fixed = TRUE)
  for (p in kv) if (identical(p[1], name)) return(if (length(p) > 1) utils::URLdecode(p[2]) else "")
  default
}

text <- function(body, status = 200L, headers = list()) {
  list(status = status, headers = c(list("Content-Type" = "text/plain"), headers), body = body)
}

garbage <- function(kind) {
  switch(kind,
    "1" = 42,
    "2" = NULL,
    "3" = list(status = "abc", headers = list(), body = "x"),
    "4" = list(status = 200L, headers = list(), body = function(x, y) stop("no")),
    "5" = list(status = 99999L, headers = list(), body = "x"),
    "6" = list(status = -1L, headers = list(), body = "x"),
    "7" = list(status = 200L, headers = "not a list", body = "x"),
    "8" = list(status = 200L, headers = list(1, 2), body = "x"),
    "9" = list(status = 200L, headers = list(), body = list(a = 1)),
    "10" = list(status = 200L, headers = list(), body = c(file = "/nonexistent/rookd-hostile")),
    "11" = list(status = NA_integer_, headers = list(), body = "x"),
    "12" = list(status = c(200L, 201L), headers = list(), body = "x"),
    "13" = list(status = 200L, headers = list("X-List" = list(1, 2)), body = "x"),
    "14" = list(status = 200L, headers = list(), body = environment()),
    "15" = structure(list(), class = "weird"),
    "16" = list(status = 200L, headers = list(), body = NA_character_),
    "17" = list(status = 200L, headers = list(), body = c(file = big_file, file = big_file)),
    "18" = list(status = 200L, headers = list(), body = function() stop("generator fails")),
    "19" = list(status = 200L, headers = list(), body = function() 42),
    stop("unknown kind"))
}

injection <- function(kind) {
  h <- switch(kind,
    "value-crlf" = list("X-Evil" = "a\r\nX-Injected: 1"),
    "value-lf" = list("X-Evil" = "a\nX-Injected: 1"),
    "value-cr" = list("X-Evil" = "a\rX-Injected: 1"),
    "value-nul" = list("X-Evil" = "a\001b"),
    "name-crlf" = stats::setNames(list("1"), "X-Evil\r\nX-Injected"),
    "name-colon" = stats::setNames(list("1"), "X-Injected: 1\r\nX-Evil"),
    "name-space" = stats::setNames(list("1"), "X Injected"),
    "name-empty" = stats::setNames(list("1"), ""),
    "cookie-crlf" = list("Set-Cookie" = "a=1\r\nX-Injected: 1"),
    "ctype-crlf" = list("Content-Type" = "text/plain\r\nX-Injected: 1"),
    "location-crlf" = list("Location" = "/x\r\n\r\n<html>injected"),
    "content-length" = list("Content-Length" = "1"),
    "transfer-encoding" = list("Transfer-Encoding" = "chunked"),
    stop("unknown kind"))
  list(status = 200L, headers = h, body = "safe body")
}

app <- list(
  call = function(req) {
    path <- req$PATH_INFO
    tag <- qparam(req, "tag", "")
    calls[length(calls) + 1] <<- if (nzchar(tag)) tag else paste(req$REQUEST_METHOD, path)
    body_raw <- req[["rook.input"]]$read()
    echo <- function() {
      text(paste0("method=", req$REQUEST_METHOD, "\npath=", path,
                         "\nquery=", req$QUERY_STRING, "\nbodylen=", length(body_raw),
                         "\nbody=", rawToChar(body_raw[seq_len(min(64, length(body_raw)))]),
                         "\nprotocol=", req$SERVER_PROTOCOL,
                         "\nhost=", req$HTTP_HOST %||% "", "\n"))
    }
    switch(path,
      "/slow" = {
        Sys.sleep(as.numeric(qparam(req, "s", "1")))
        text("slept\n")
      },
      "/error" = stop("this app fails on purpose"),
      "/garbage" = garbage(qparam(req, "kind", "1")),
      "/inject" = injection(qparam(req, "kind", "value-crlf")),
      "/calls" = text(paste0(paste(calls, collapse = "\n"), "\n")),
      "/pid" = text(as.character(Sys.getpid())),
      "/big" = list(status = 200L, headers = list("Content-Type" = "application/octet-stream"),
                    body = as.raw(rep(0x62, as.numeric(qparam(req, "mb", "8")) * 1024^2))),
      "/file" = list(status = 200L, headers = list("Content-Type" = "application/octet-stream"),
                     body = c(file = big_file)),
      "/stream" = {
        n <- 0
        total <- as.numeric(qparam(req, "mb", "256"))
        chunk <- as.raw(rep(0x63, 1024^2))
        list(status = 200L, headers = list("Content-Type" = "application/octet-stream"),
             body = function() { n <<- n + 1; if (n > total) NULL else chunk })
      },
      "/stopother" = {
        stopDaemonizedServer(servers$victim)
        text(paste0("victim running: ", servers$victim$isRunning(), "\n"))
      },
      "/stopself" = {
        stopDaemonizedServer(servers$selfish)
        text("stopped myself\n")
      },
      "/fork" = {
        # A forked child of this R session, with the servers running: it must not serve
        # (its copy of the engine has no I/O threads) and must not break ours.
        fork_job <<- parallel::mcparallel({
          before <- length(calls)
          t_end <- Sys.time() + 1.5
          while (Sys.time() < t_end) service(50)
          list(pid = Sys.getpid(), served = length(calls) - before,
               running = vapply(listServers(), function(s) s$isRunning(), TRUE))
        })
        text(paste0(fork_job$pid, "\n"))
      },
      "/forkcollect" = {
        res <- parallel::mccollect(fork_job, wait = TRUE, timeout = 10)[[1]]
        text(paste0("pid=", res$pid, "\nserved=", res$served, "\n"))
      },
      "/mclapply" = {
        pids <- parallel::mclapply(1:4, function(i) { service(100); Sys.getpid() }, mc.cores = 2)
        text(paste0(paste(unlist(pids), collapse = ","), "\n"))
      },
      "/quit" = { interrupt(); text("bye\n") },
      echo())
  },
  onWSOpen = function(ws) {
    ws$onMessage(function(binary, message) ws$send(message))
  }
)

`%||%` <- function(a, b) if (is.null(a)) b else a
other_app <- function(req) text(paste0("alive ", req$PATH_INFO, "\n"))
servers$main <- startServer("127.0.0.1", 0, app, options = rookdOptions(
  max_header_bytes = 4096, max_headers = 20, max_body_bytes = 65536,
  header_timeout = 2, keepalive_timeout = 2, body_timeout = 2, max_queued_requests = 4,
  ws_allowed_origins = "http://good.example", ws_max_message_bytes = 65536,
  ws_ping_interval = 0, ws_idle_timeout = 0, shutdown_grace = 1))
servers$victim <- startServer("127.0.0.1", 0, other_app)
servers$selfish <- startServer("127.0.0.1", 0, app)
servers$narrow <- startServer("127.0.0.1", 0, app,
                              options = rookdOptions(max_connections = 2, header_timeout = 20,
                                                     keepalive_timeout = 20))

ports <- vapply(servers, function(s) s$getPort(), 0L)
info <- sprintf('{"pid": %d, %s}', Sys.getpid(),
                paste(sprintf('"%s": %d', names(ports), ports), collapse = ", "))
writeLines(info, paste0(info_file, ".tmp"))
file.rename(paste0(info_file, ".tmp"), info_file)

deadline <- Sys.time() + 170
while (Sys.time() < deadline) {
  service(200)
  if (isTRUE(rookd:::.globals$paused)) break
}
unlink(big_file)
