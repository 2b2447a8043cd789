# Test helpers: real servers on loopback, real clients, bounded waits everywhere.
#
# The app runs on R's main thread, i.e. in *this* process, so every client here lets
# the later event loop run while it waits (curl's multi interface, or a python3 /
# curl child process watched by processx), and every wait has a deadline.

`%||%` <- function(a, b) if (is.null(a)) b else a

# Let the app run for a moment.
pump <- function(secs = 0.01) invisible(later::run_now(secs))

# Pump the event loop until cond() is TRUE; error after `timeout` seconds.
wait_until <- function(cond, timeout = 10, what = "a condition", step = 0.01) {
  deadline <- Sys.time() + timeout
  repeat {
    if (isTRUE(cond())) return(invisible(TRUE))
    if (Sys.time() > deadline) {
      stop("timed out after ", timeout, " s waiting for ", what, call. = FALSE)
    }
    later::run_now(step)
  }
}

# Pump for a fixed time.
pump_for <- function(secs) {
  deadline <- Sys.time() + secs
  while (Sys.time() < deadline) later::run_now(0.01)
  invisible()
}

has_ipv6 <- function() {
  ok <- tryCatch(isTRUE(rookd:::rookd_port_available("::1", 0L)), error = function(e) FALSE)
  ok
}

skip_if_no_ipv6 <- function() {
  if (!has_ipv6()) testthat::skip("IPv6 loopback (::1) is not available here")
}

skip_if_no_python <- function() {
  if (!nzchar(Sys.which("python3"))) testthat::skip("python3 is not installed")
}

skip_if_slow_disabled <- function() {
  testthat::skip_on_cran()
  if (identical(Sys.getenv("ROOKD_SKIP_SLOW"), "1")) testthat::skip("ROOKD_SKIP_SLOW=1")
}

# Start a server that is stopped when the calling test (or function) ends.
local_server <- function(app, host = "127.0.0.1", port = 0, options = rookdOptions(),
                         .env = parent.frame()) {
  s <- startServer(host, port, app, options = options)
  withr::defer(try(s$stop(), silent = TRUE), envir = .env)
  s
}

url_host <- function(host) if (grepl(":", host, fixed = TRUE)) paste0("[", host, "]") else host

server_url <- function(s, path = "/") {
  sprintf("http://%s:%d%s", url_host(s$getHost()), s$getPort(), path)
}

# A simple app: answers `text` (or a function of req) as text/plain.
text_app <- function(text = "ok", status = 200L) {
  function(req) {
    body <- if (is.function(text)) text(req) else text
    list(status = status, headers = list("Content-Type" = "text/plain"), body = body)
  }
}

# ---------------------------------------------------------------------------------------
# HTTP through the curl package's multi interface, pumping the event loop meanwhile.
#
# A request spec: list(url, method = NULL, headers = character() ("Name: value" lines,
# repeats allowed), body = NULL (raw or character), opts = list() (curl options)).

make_handle <- function(spec, timeout) {
  h <- curl::new_handle()
  opts <- list(timeout = timeout, connecttimeout = timeout, failonerror = FALSE,
               forbid_reuse = isTRUE(spec$forbid_reuse))
  method <- spec$method
  if (!is.null(spec$body)) {
    body <- spec$body
    if (is.character(body)) body <- charToRaw(paste(body, collapse = ""))
    opts$post <- TRUE
    opts$postfieldsize_large <- length(body)
    opts$copypostfields <- body
  }
  if (!is.null(method)) {
    if (identical(method, "HEAD")) opts$nobody <- TRUE else opts$customrequest <- method
  }
  if (length(spec$headers)) opts$httpheader <- spec$headers
  opts <- utils::modifyList(opts, spec$opts %||% list())
  curl::handle_setopt(h, .list = opts)
  h
}

parse_curl_result <- function(r) {
  blocks <- curl::parse_headers(r$headers, multiple = TRUE)
  last <- if (length(blocks)) blocks[[length(blocks)]] else character()
  status_line <- if (length(last)) last[1] else ""
  lines <- last[-1]
  hdr <- sub("^[^:]*:[ \t]*", "", lines)
  names(hdr) <- tolower(sub(":.*$", "", lines))
  list(status = r$status_code, status_line = status_line, headers = hdr,
       interim = if (length(blocks) > 1) vapply(blocks[-length(blocks)], `[`, "", 1) else character(),
       body = r$content, text = rawToChar_safe(r$content), url = r$url)
}

rawToChar_safe <- function(x) {
  if (!length(x)) return("")
  if (any(x == as.raw(0))) return(NA_character_)
  rawToChar(x)
}

# Several requests at once; returns a list of responses (or errors, as condition objects).
http_many <- function(specs, timeout = 10) {
  pool <- curl::new_pool(total_con = 100, host_con = 100)
  n <- length(specs)
  results <- vector("list", n)
  finished <- logical(n)
  for (i in seq_len(n)) {
    local({
      j <- i
      spec <- specs[[j]]
      h <- make_handle(spec, timeout)
      curl::curl_fetch_multi(
        spec$url, handle = h, pool = pool,
        done = function(r) { results[[j]] <<- parse_curl_result(r); finished[j] <<- TRUE },
        fail = function(e) {
          msg <- if (inherits(e, "condition")) conditionMessage(e) else paste(as.character(e), collapse = " ")
          results[[j]] <<- simpleError(paste0("curl failed for ", spec$url, ": ", msg))
          finished[j] <<- TRUE
        }
      )
    })
  }
  deadline <- Sys.time() + timeout + 5
  while (!all(finished)) {
    if (Sys.time() > deadline) stop("http_many: no answer within ", timeout + 5, " s", call. = FALSE)
    curl::multi_run(timeout = 0, poll = TRUE, pool = pool)
    later::run_now(0.005)
  }
  results
}

# One request; errors (with the curl message) if it fails.
http_req <- function(url, method = NULL, headers = character(), body = NULL, opts = list(),
                     timeout = 10, forbid_reuse = FALSE) {
  spec <- list(url = url, method = method, headers = headers, body = body, opts = opts,
               forbid_reuse = forbid_reuse)
  r <- http_many(list(spec), timeout = timeout)[[1]]
  if (inherits(r, "error")) stop(r)
  r
}

# All values of a response header (case-insensitive name).
hdr_all <- function(resp, name) unname(resp$headers[names(resp$headers) == tolower(name)])
hdr <- function(resp, name) {
  v <- hdr_all(resp, name)
  if (length(v)) v[[1]] else NULL
}

# ---------------------------------------------------------------------------------------
# Byte-exact HTTP with a python3 client (keep-alive, pipelining, Expect, chunked uploads).
# The client runs in a child process while this process pumps the event loop.

raw_client_py <- '
import sys, json, socket, time, base64, http.client

class NoClose:
    """One shared buffered reader for every response (pipelining); never closed by
    http.client, which closes its fp once a body has been read."""
    def __init__(self, f): self.f = f
    def __getattr__(self, n): return getattr(self.f, n)
    def close(self): pass

class FakeSock:
    def __init__(self, f): self.f = f
    def makefile(self, *a, **k): return NoClose(self.f)

def main():
    spec = json.load(open(sys.argv[1]))
    out = {"steps": []}
    t0 = time.time()
    out["t0"] = t0
    try:
        sock = socket.create_connection((spec["host"], int(spec["port"])), timeout=spec["timeout"])
        sock.settimeout(spec["timeout"])
        out["local_port"] = sock.getsockname()[1]
        fp = sock.makefile("rb")
        for st in spec["steps"]:
            op = st["op"]
            r = {"op": op}
            if op == "send":
                sock.sendall(base64.b64decode(st["data"]))
            elif op == "send_file":
                data = open(st["path"], "rb").read()
                if st.get("chunked"):
                    cs = int(st.get("chunk_size", 65536))
                    for i in range(0, len(data), cs):
                        c = data[i:i + cs]
                        sock.sendall(b"%x\\r\\n" % len(c) + c + b"\\r\\n")
                    sock.sendall(b"0\\r\\n\\r\\n")
                else:
                    sock.sendall(data)
            elif op == "sleep":
                time.sleep(float(st["secs"]))
            elif op == "response":
                resp = http.client.HTTPResponse(FakeSock(fp), method=st.get("method", "GET"))
                resp.begin()
                body = resp.read()
                r.update(status=resp.status, reason=resp.reason, version=resp.version,
                         headers=[[k, v] for k, v in resp.getheaders()],
                         body=base64.b64encode(body).decode(), will_close=bool(resp.will_close))
            elif op == "head":
                lines = []
                while True:
                    line = fp.readline()
                    if not line:
                        break
                    if line in (b"\\r\\n", b"\\n"):
                        break
                    lines.append(line.decode("latin1").rstrip("\\r\\n"))
                r["lines"] = lines
            elif op == "read_all":
                data = b""
                try:
                    data = fp.read()
                except socket.timeout:
                    r["timeout"] = True
                r["data"] = base64.b64encode(data).decode()
            elif op == "shutdown_write":
                sock.shutdown(socket.SHUT_WR)
            r["t"] = time.time() - t0
            r["t_abs"] = time.time()
            out["steps"].append(r)
    except Exception as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)

main()
'

raw_client_file <- local({
  path <- NULL
  function() {
    if (is.null(path) || !file.exists(path)) {
      path <<- tempfile("rawclient", fileext = ".py")
      writeLines(raw_client_py, path)
    }
    path
  }
})

b64 <- function(x) {
  if (is.character(x)) x <- charToRaw(paste(x, collapse = ""))
  jsonlite::base64_enc(x)
}

# Steps for raw_http().
fmt_num <- function(x) if (is.numeric(x)) format(x, scientific = FALSE, trim = TRUE) else x
send <- function(...) list(op = "send", data = b64(paste0(lapply(list(...), fmt_num), collapse = "")))
send_raw <- function(x) list(op = "send", data = b64(x))
send_file <- function(path, chunked = FALSE, chunk_size = 65536) {
  list(op = "send_file", path = path, chunked = chunked, chunk_size = chunk_size)
}
response <- function(method = "GET") list(op = "response", method = method)
read_head <- function() list(op = "head")
read_all <- function() list(op = "read_all")
client_sleep <- function(secs) list(op = "sleep", secs = secs)

# Run a python3 client talking to host:port; pump the event loop until it is done.
# Returns list(error, local_port, steps) with "response" steps parsed.
raw_http <- function(port, steps, host = "127.0.0.1", timeout = 10, pump = TRUE) {
  skip_if_no_python()
  spec_file <- tempfile("spec", fileext = ".json")
  out_file <- tempfile("out", fileext = ".json")
  err_file <- tempfile("err", fileext = ".txt")
  on.exit(unlink(c(spec_file, out_file, err_file)), add = TRUE)
  jsonlite::write_json(list(host = host, port = port, timeout = timeout, steps = steps),
                       spec_file, auto_unbox = TRUE)
  p <- processx::process$new("python3", c(raw_client_file(), spec_file, out_file),
                             stdout = NULL, stderr = err_file, cleanup = TRUE)
  deadline <- Sys.time() + timeout + 5
  while (p$is_alive()) {
    if (Sys.time() > deadline) {
      p$kill()
      stop("raw_http: the python client did not finish in time", call. = FALSE)
    }
    if (pump) later::run_now(0.01) else Sys.sleep(0.01)
  }
  if (!file.exists(out_file)) {
    stop("raw_http: the python client failed: ", paste(readLines(err_file), collapse = "\n"),
         call. = FALSE)
  }
  out <- jsonlite::fromJSON(out_file, simplifyVector = FALSE)
  out$steps <- lapply(out$steps, function(st) {
    if (identical(st$op, "response")) {
      h <- vapply(st$headers, function(kv) kv[[2]], "")
      names(h) <- tolower(vapply(st$headers, function(kv) kv[[1]], ""))
      st$headers <- h
      st$body <- jsonlite::base64_dec(st$body)
      st$text <- rawToChar_safe(st$body)
    } else if (identical(st$op, "read_all")) {
      st$data <- jsonlite::base64_dec(st$data)
      st$text <- rawToChar_safe(st$data)
    } else if (identical(st$op, "head")) {
      st$lines <- unlist(st$lines) %||% character()
    }
    st
  })
  out$responses <- Filter(function(st) identical(st$op, "response"), out$steps)
  out
}

# A plain GET request as bytes.
get_request <- function(path = "/", host = "localhost", extra = character(), method = "GET",
                        version = "HTTP/1.1") {
  paste0(method, " ", path, " ", version, "\r\nHost: ", host, "\r\n",
         paste0(extra, "\r\n", collapse = ""), "\r\n")
}

# ---------------------------------------------------------------------------------------
# Any command as a child process while this process pumps the event loop (e.g. system
# curl --unix-socket). Returns list(status, stdout, stderr).
run_pumping <- function(command, args, timeout = 10) {
  out <- tempfile()
  err <- tempfile()
  on.exit(unlink(c(out, err)), add = TRUE)
  p <- processx::process$new(command, args, stdout = out, stderr = err, cleanup = TRUE)
  deadline <- Sys.time() + timeout
  while (p$is_alive()) {
    if (Sys.time() > deadline) {
      p$kill()
      stop(command, " did not finish within ", timeout, " s", call. = FALSE)
    }
    later::run_now(0.01)
  }
  list(status = p$get_exit_status(),
       stdout = paste(readLines(out, warn = FALSE), collapse = "\n"),
       stderr = paste(readLines(err, warn = FALSE), collapse = "\n"))
}

# Is something accepting connections on host:port? (bounded, no pumping needed)
port_accepts <- function(port, host = "127.0.0.1") {
  con <- tryCatch(suppressWarnings(socketConnection(host, port, blocking = TRUE, open = "r+b",
                                                    timeout = 2)),
                  error = function(e) NULL)
  if (is.null(con)) return(FALSE)
  close(con)
  TRUE
}

# A server in a child R process: `fun(port, ...)` starts it and serves (e.g. with
# service(0) or runServer()). Waits until the port accepts connections; the child is
# killed when the calling test ends.
child_server <- function(fun, args = list(), port = randomPort(), timeout = 30,
                         .env = parent.frame()) {
  child <- callr::r_bg(fun, args = c(list(port = port), args), supervise = TRUE)
  withr::defer(if (child$is_alive()) child$kill(), envir = .env)
  deadline <- Sys.time() + timeout
  while (!port_accepts(port)) {
    if (!child$is_alive()) {
      stop("the child R process exited early:\n", child$read_all_error(), call. = FALSE)
    }
    if (Sys.time() > deadline) stop("the child server did not start in ", timeout, " s", call. = FALSE)
    Sys.sleep(0.05)
  }
  list(process = child, port = port)
}

# A blocking request from this process (only for servers in other processes).
fetch_blocking <- function(url, timeout = 10, ...) {
  h <- curl::new_handle(timeout = timeout, connecttimeout = timeout, ...)
  curl::curl_fetch_memory(url, handle = h)
}
