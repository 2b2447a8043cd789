# Helpers of the test-pool-* files: a pool of real Rscript workers, python3 clients.

# An app file in a fresh directory.
edge_app_file <- function(code, dir = tempfile("pool-edge")) {
  dir.create(dir)
  f <- file.path(dir, "app.R")
  writeLines(code, f)
  f
}

# A Rook app answering "pid|REMOTE_ADDR|REMOTE_PORT|scheme|HTTP_HOST|body bytes|XFF";
# /slow?ms=N sleeps N ms first; /close answers with Connection: close.
edge_app_code <- '
app <- function(req) {
  ms <- suppressWarnings(as.numeric(sub("^ms=", "", req$QUERY_STRING)))
  if (identical(req$PATH_INFO, "/slow") && !is.na(ms)) Sys.sleep(ms / 1000)
  n <- length(req$rook.input$read())
  h <- list("Content-Type" = "text/plain")
  if (identical(req$PATH_INFO, "/close")) h[["Connection"]] <- "close"
  list(status = 200L, headers = h,
       body = paste(Sys.getpid(), req$REMOTE_ADDR, req$REMOTE_PORT, req[["rook.url_scheme"]],
                    req$HTTP_HOST %||% "", n, req$HTTP_X_FORWARDED_FOR %||% "", sep = "|"))
}
`%||%` <- function(a, b) if (is.null(a)) b else a
'

edge_pool <- function(code = edge_app_code, ..., .env = parent.frame()) {
  p <- startWorkers(edge_app_file(code), port = 0, quiet = TRUE, ...)
  withr::defer(p$stop(), envir = .env)
  p
}

edge_fields <- function(text) {
  f <- strsplit(text, "|", fixed = TRUE)[[1]]
  length(f) <- 7
  f[is.na(f)] <- ""
  setNames(as.list(f), c("pid", "remote_addr", "remote_port", "scheme", "host", "bytes", "xff"))
}

# Run python3 code in a child process (pumping this process's event loop meanwhile);
# its stdout, as lines. `args` go to sys.argv[1:].
py_run <- function(code, args = character(), timeout = 60) {
  f <- tempfile(fileext = ".py")
  writeLines(code, f)
  out <- tempfile()
  err <- tempfile()
  p <- processx::process$new("python3", c(f, as.character(args)), stdout = out, stderr = err)
  on.exit(p$kill(), add = TRUE)
  deadline <- Sys.time() + timeout
  while (p$is_alive()) {
    if (Sys.time() > deadline) stop("py_run: the python client did not finish in time", call. = FALSE)
    later::run_now(0.02)
  }
  if (p$get_exit_status() != 0) {
    stop("py_run: python failed: ", paste(readLines(err, warn = FALSE), collapse = "\n"), call. = FALSE)
  }
  readLines(out, warn = FALSE)
}

# python: one raw HTTP exchange on a fresh socket; prints the status line's code, then
# the raw response (headers and body) on the following lines.
py_raw_request <- '
import socket, sys
def request(port, data, src="127.0.0.1", timeout=30):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.sendall(data)
    buf = b""
    while True:
        try:
            c = s.recv(65536)
        except socket.timeout:
            break
        if not c:
            break
        buf += c
        if b"\\r\\n\\r\\n" in buf:
            head, _, body = buf.partition(b"\\r\\n\\r\\n")
            cl = [l for l in head.split(b"\\r\\n") if l.lower().startswith(b"content-length:")]
            if cl and len(body) >= int(cl[0].split(b":")[1]):
                break
    s.close()
    return buf.decode("utf-8", "replace")
'
