# The server side of the R-side hostile suite (tests/hostile-r/run.sh).
#
#   Rscript tests/hostile-r/app.R INFO_FILE [LIB]
#
# One rookd server on 127.0.0.1 whose app exposes what the attacks aim at: an onHeaders
# that keeps the request env (so refused upgrades and abandoned requests must release
# it), WebSocket echo with Origin restricted to http://good.example, promise answers that
# arrive after the client left (a streamed body, an owned file), and diagnostics: /stats
# runs gc() and reports R's cells and rookd's registries; /tighten and /loosen cap R's
# vector heap so that the next large allocation fails. Serves with service() until /quit
# or a 290 s deadline. Run with ROOKD_MAX_HEADER_SYMBOLS lowered (run.sh sets 300) so the
# bound on HTTP_* names is reached quickly.
args <- commandArgs(trailingOnly = TRUE)
info_file <- args[1]
if (length(args) >= 2 && nzchar(args[2])) .libPaths(c(args[2], .libPaths()))
suppressPackageStartupMessages(library(rookd))

owned_dir <- tempfile("hostile-r-owned-")
dir.create(owned_dir)
quit_now <- FALSE

text <- function(body, status = 200L) {
  list(status = status, headers = list("Content-Type" = "text/plain"), body = body)
}

stats <- function() {
  gc(); gc()
  g <- gc()
  s <- rookd:::rookd_stats()
  paste0(c(sprintf("ncells=%d", as.integer(g[1, 1])), sprintf("vcells=%d", as.integer(g[2, 1])),
           sprintf("%s=%d", names(s), unlist(s)),
           sprintf("owned_files=%d", length(list.files(owned_dir)))), collapse = "\n")
}

later_answer <- function(kind, delay) {
  promises::promise(function(resolve, reject) {
    later::later(function() {
      if (kind == "stream") {
        n <- 0
        resolve(list(status = 200L, headers = list("Content-Type" = "text/plain"),
                     body = function() { n <<- n + 1; if (n > 3) NULL else "chunk\n" }))
      } else {
        f <- tempfile("owned-", tmpdir = owned_dir)
        writeLines("owned file body", f)
        resolve(list(status = 200L, headers = list("Content-Type" = "text/plain"),
                     body = list(file = f, owned = TRUE)))
      }
    }, delay)
  })
}

app <- list(
  onHeaders = function(req) NULL,
  call = function(req) {
    path <- req$PATH_INFO
    switch(path,
      "/stats" = text(stats()),
      "/tighten" = {
        g <- gc()
        text(sprintf("maxvsize=%s", mem.maxVSize(ceiling(g[2, 4]) + 8)))
      },
      "/loosen" = text(sprintf("maxvsize=%s", mem.maxVSize(Inf))),
      "/env" = text(paste0(
        "xff=", if (is.null(req$HTTP_X_FORWARDED_FOR)) "<unset>" else req$HTTP_X_FORWARDED_FOR,
        "\nhttp_vars=", paste(sort(grep("^HTTP_", ls(req), value = TRUE)), collapse = ","),
        "\nheaders=", paste(sort(names(req$HEADERS)), collapse = ","),
        "\nlongest_var=", max(nchar(ls(req))), "\n")),
      "/later-stream" = later_answer("stream", 0.5),
      "/later-file" = later_answer("file", 0.5),
      "/quit" = { quit_now <<- TRUE; text("bye\n") },
      text(paste0("ok ", path, "\n")))
  },
  onWSOpen = function(ws) {
    ws$onMessage(function(binary, message) {
      ws$send(if (binary) as.raw(length(message) %% 256) else message)
    })
  }
)

s <- startServer("127.0.0.1", 0, app, options = rookdOptions(
  max_header_bytes = 32 * 1024^2, ws_allowed_origins = "http://good.example",
  ws_ping_interval = 0, ws_idle_timeout = 0))
writeLines(sprintf('{"pid": %d, "port": %d, "owned_dir": "%s"}', Sys.getpid(), s$getPort(), owned_dir),
           paste0(info_file, ".tmp"))
file.rename(paste0(info_file, ".tmp"), info_file)

deadline <- Sys.time() + 290
while (Sys.time() < deadline && !quit_now) service(200)
s$stop()
unlink(owned_dir, recursive = TRUE)
