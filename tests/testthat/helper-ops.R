# Helpers for the operations tests (health, drain, metrics): a server in a child R
# process whose app can be made to sleep, and clients in their own processes, so that
# probes reach the engine while the child's R is blocked.

# The child's app: "/slow?<secs>" sleeps that long (default 3) in R, anything else
# answers "app" at once.
ops_child <- function(port, opts) {
  library(rookd)
  app <- function(req) {
    if (identical(req$PATH_INFO, "/slow")) {
      secs <- suppressWarnings(as.numeric(req$QUERY_STRING))
      Sys.sleep(if (is.na(secs)) 3 else secs)
      return(list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "slow done"))
    }
    list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "app")
  }
  startServer("127.0.0.1", port, app, options = do.call(rookdOptions, opts))
  service(0)
}

# A curl child process fetching `url`; its output ("<status> <body>") is read later.
curl_bg <- function(url, timeout = 30) {
  out <- tempfile()
  p <- processx::process$new("curl", c("-s", "-m", timeout, "-o", out, "-w", "%{http_code}", url),
                             stdout = "|", stderr = "|", cleanup = TRUE)
  list(process = p, out = out)
}

# Wait for a curl_bg child and return list(status, body).
curl_result <- function(c, timeout = 30, pump = FALSE) {
  deadline <- Sys.time() + timeout
  while (c$process$is_alive()) {
    if (Sys.time() > deadline) stop("curl did not finish in ", timeout, " s", call. = FALSE)
    if (pump) later::run_now(0.01) else Sys.sleep(0.02)
  }
  status <- c$process$read_all_output()
  body <- if (file.exists(c$out)) paste(readLines(c$out, warn = FALSE), collapse = "\n") else ""
  list(status = as.integer(status), body = body)
}

# A blocking GET from this process (the server is elsewhere): list(status, body).
get_blocking <- function(url, nobody = FALSE) {
  h <- curl::new_handle(timeout = 10, connecttimeout = 10, nobody = nobody)
  r <- curl::curl_fetch_memory(url, handle = h)
  list(status = r$status_code, body = rawToChar(r$content), headers = curl::parse_headers(r$headers))
}

# Debian's python3 (see helper-websocket.R's ws_python for why not pyenv's).
sys_python <- function() {
  for (p in c(Sys.getenv("ROOKD_PYTHON"), "/usr/bin/python3", Sys.which("python3"))) {
    if (nzchar(p) && file.exists(p)) return(p)
  }
  NA_character_
}
