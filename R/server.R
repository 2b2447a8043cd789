#' Start an HTTP and WebSocket server
#'
#' Binds `host:port` at once (a port that cannot be bound is an error naming the
#' address and the reason) and serves `app` from rookd's I/O threads. The app itself
#' runs on R's main thread whenever R is idle: at the console prompt, or inside
#' [service()], [runServer()] or any `later::run_now()` loop (Shiny's, for instance).
#' It is never run in the middle of other R code.
#'
#' `startServer()` and `startDaemonizedServer()` are the same function (as in httpuv
#' since 1.5); both names exist so httpuv code runs unchanged.
#'
#' @section The app:
#' A function `function(req)`, or a list, environment or reference class object with:
#' \describe{
#'   \item{`call(req)`}{returns `list(status = 200L, headers = list(...), body = ...)`.
#'     `body` is a character vector (joined with `"\\n"`), a raw vector,
#'     `c(file = path)` (streamed from disk) or `list(file = path, owned = TRUE)`
#'     (deleted after sending, or once the client has left: whatever file the R process
#'     may delete, so only ever a temporary file the app made itself). Returning anything else, or an R error, gives
#'     `500 Internal Server Error`; the message goes to stderr, never to the client.}
#'   \item{`onHeaders(req)`}{optional; runs once the headers are in, before the body is
#'     read. Return `NULL` to go on, or a response to send instead (e.g. `413` for an
#'     upload that is too large); `Expect: 100-continue` is only answered after it
#'     returns `NULL`. The same `req` then reaches `call()`.}
#'   \item{`onWSOpen(ws)`}{optional; makes the server accept WebSockets. See [WebSocket].}
#' }
#' `req` is a Rook environment: `REQUEST_METHOD`, `SCRIPT_NAME`, `PATH_INFO`,
#' `QUERY_STRING` (without the leading `"?"`, per the Rook spec; see
#' [rookdOptions()] for httpuv's form), `SERVER_NAME`, `SERVER_PORT`, `REMOTE_ADDR`,
#' `REMOTE_PORT`, `SERVER_PROTOCOL`, `HTTP_*` (repeated headers joined with `","`),
#' `CONTENT_TYPE`, `CONTENT_LENGTH`, `HEADERS` (named character vector, lower-case
#' names), `rook.version`, `rook.url_scheme`, `rook.input` (`read(l = -1L)`,
#' `read_lines(n = -1L)`, `rewind()`) and `rook.errors` (`cat()`, `flush()`).
#' Over TLS (`tls =`), `rook.url_scheme` is `"https"`, `HTTPS` is `"on"`, and
#' mod_ssl's `SSL_PROTOCOL`, `SSL_CIPHER`, `SSL_TLS_SNI`, `SSL_CLIENT_VERIFY`,
#' `SSL_CLIENT_S_DN`, ... are set (see [tlsConfig()]).
#'
#' Every request header is in `HEADERS`. A few get no `HTTP_*` variable: names that
#' contain `_` (CGI turns `-` into `_`, so `X_Forwarded_For` would otherwise set the
#' `HTTP_X_FORWARDED_FOR` that a proxy's `X-Forwarded-For` sets; nginx and Apache drop
#' such headers for the same reason), and names too long for an R variable name
#' (10,000 bytes). R never frees a variable name, so rookd creates at most 10,000
#' distinct `HTTP_*` names per process; once that many have been seen, a request
#' with yet another new header name is answered `431` rather than served with a
#' header missing.
#'
#' @param host An IPv4 or IPv6 address (`"127.0.0.1"`, `"::1"`), `"0.0.0.0"` or `"::"`
#'   for all interfaces, or `"localhost"`.
#' @param port A port number, `0` for any free port (see `server$getPort()`).
#' @param app The Rook app (see above).
#' @param quiet Accepted for compatibility with httpuv; errors are always raised.
#' @param options Limits and behaviour, from [rookdOptions()].
#' @param tls `NULL` (plain HTTP) or a [tlsConfig()]: serve HTTPS (and WebSockets as
#'   `wss://`). A TLS server object also has `reloadTls()` (see [tlsConfig()]).
#' @return A `WebServer` object with methods `stop()`, `isRunning()`, `getHost()`,
#'   `getPort()`, `drain(timeout, lag)` ([drainServer()]) and `stats()`
#'   ([serverStats()]).
#' @examples
#' app <- function(req) {
#'   list(status = 200L, headers = list("Content-Type" = "text/plain"),
#'        body = paste("Hello from", req$PATH_INFO))
#' }
#' s <- startServer("127.0.0.1", 0, app)
#' s$getPort()
#' s$stop()
#' @seealso [stopServer()], [service()], [rookdOptions()]
#' @export
startServer <- function(host, port, app, quiet = FALSE, options = rookdOptions(), tls = NULL) {
  check_host(host)
  port <- check_port(port)
  start_web_server("tcp", host, port, -1L, app, options, quiet, check_tls(tls))
}

#' @rdname startServer
#' @export
startDaemonizedServer <- startServer

#' Serve an app on a Unix domain socket
#'
#' Like [startServer()], on a Unix domain socket (for a reverse proxy such as nginx
#' on the same machine). `SERVER_NAME` is `"localhost"`; `SERVER_PORT`, `REMOTE_ADDR`
#' and `REMOTE_PORT` are `""` since a Unix socket has none.
#'
#' @param name Path of the socket file to create (it must not exist).
#' @param mask The umask applied while creating it (e.g. `strtoi("077", 8)`), or `NULL`.
#' @inheritParams startServer
#' @param quiet Accepted for compatibility with httpuv; errors are always raised.
#' @return A `PipeServer` object (`stop()`, `isRunning()`, `getName()`, `getMask()`).
#' @examples
#' path <- tempfile(fileext = ".sock")
#' s <- startPipeServer(path, NULL, function(req) list(status = 200L, headers = list(), body = "hi"))
#' s$stop()
#' @export
startPipeServer <- function(name, mask, app, quiet = FALSE, options = rookdOptions()) {
  if (!is.character(name) || length(name) != 1 || is.na(name) || !nzchar(name)) {
    stop("`name` must be the path of the socket file, a single string.", call. = FALSE)
  }
  if (is.null(mask)) {
    mask <- -1L
  } else if (!is.numeric(mask) || length(mask) != 1 || is.na(mask) || mask < 0 || mask > 511) {
    stop("`mask` must be NULL or a umask between 0 and 511 (octal 777).", call. = FALSE)
  }
  start_web_server("unix", path.expand(name), 0L, as.integer(mask), app, options, FALSE)
}

start_web_server <- function(kind, host, port, mask, app, options, quiet, tls = NULL) {
  app_env <- as_rookd_app(app)
  options <- as_rookd_options(options)
  if (!is.null(tls) && isTRUE(options$proxy_protocol)) {
    # The PROXY header comes before the TLS handshake on the wire; rookd reads it after.
    stop("`proxy_protocol = TRUE` cannot be combined with `tls` yet: terminate TLS at the ",
         "proxy, or use X-Forwarded-* with `trusted_proxies`.", call. = FALSE)
  }
  # An access_log function is called from the app's eval env (see dispatch.rs).
  if (is.function(options$access_log)) assign(".rookd_access_log", options$access_log, envir = app_env)
  res <- rookd_start(kind, host, as.integer(port), as.integer(mask), app_env, options, tls)
  if (!is.null(res$error)) {
    stop("Failed to create server: ", res$error, call. = FALSE)
  }
  tls_warnings(res$warnings)
  id <- res$id
  server <- new_server(id, kind, host, mask, tls)
  .globals$servers[[as.character(id)]] <- server
  server
}

new_server <- function(id, kind, host, mask, tls = NULL) {
  self <- new.env(parent = emptyenv())
  self$id <- id
  if (!is.null(tls)) {
    self$reloadTls <- function(tls = NULL) {
      res <- rookd_reload_tls(id, check_tls(tls))
      if (!is.null(res$error)) stop("Failed to reload TLS: ", res$error, call. = FALSE)
      tls_warnings(res$warnings)
      invisible(TRUE)
    }
  }
  self$stop <- function() {
    rookd_stop(id)
    .globals$servers[[as.character(id)]] <- NULL
    invisible()
  }
  self$isRunning <- function() isTRUE(rookd_server_info(id)$running)
  self$drain <- function(timeout = 30, lag = NULL) drainServer(self, timeout, lag)
  self$stats <- function() serverStats(self)
  # Reopen the access log file after logrotate moved it (as SIGHUP does).
  self$reopenLog <- function() invisible(isTRUE(rookd_reopen_log(id)$reopened))
  if (kind == "tcp") {
    self$getHost <- function() host
    port <- rookd_server_info(id)$port
    self$getPort <- function() port
    class(self) <- c("WebServer", "Server", "rookd_server")
  } else {
    self$getName <- function() host
    self$getMask <- function() if (mask < 0) NULL else mask
    class(self) <- c("PipeServer", "Server", "rookd_server")
  }
  add_static_path_methods(self, id)
  lockEnvironment(self)
  self
}

# Registered for rookd's own class, not httpuv's "Server": httpuv's R6 servers carry
# "Server" too, and must keep printing as httpuv prints them once rookd is loaded.
#' @export
print.rookd_server <- function(x, ...) {
  state <- if (x$isRunning()) "running" else "stopped"
  if (inherits(x, "WebServer")) {
    host <- x$getHost()
    if (grepl(":", host, fixed = TRUE)) host <- paste0("[", host, "]")
    scheme <- if (is.function(x$reloadTls)) "https" else "http"
    cat(sprintf("<rookd WebServer %s://%s:%d (%s)>\n", scheme, host, x$getPort(), state))
  } else {
    cat(sprintf("<rookd PipeServer %s (%s)>\n", x$getName(), state))
  }
  invisible(x)
}

#' Stop a server
#'
#' Closes the listening socket at once (the port can be bound again straight away);
#' requests already in flight get `shutdown_grace` seconds (see [rookdOptions()]) to
#' finish. Stopping a server that is already stopped does nothing.
#'
#' @param server A server returned by [startServer()], [startDaemonizedServer()] or
#'   [startPipeServer()].
#' @return `NULL`, invisibly.
#' @examples
#' s <- startServer("127.0.0.1", 0, function(req) list(status = 204L, headers = list(), body = NULL))
#' stopServer(s)
#' @export
stopServer <- function(server) {
  if (!inherits(server, "Server")) {
    # Starts with httpuv's message, for code that matches it.
    stop("Object must be an object of class Server: `server` must be a server returned ",
         "by startServer(), startDaemonizedServer() or startPipeServer().", call. = FALSE)
  }
  server$stop()
}

#' @rdname stopServer
#' @export
stopDaemonizedServer <- stopServer

#' @rdname stopServer
#' @export
stopAllServers <- function() {
  for (s in listServers()) s$stop()
  invisible()
}

#' List running servers
#'
#' @return A list of the servers that are running.
#' @examples
#' length(listServers())
#' @export
listServers <- function() {
  running <- as.character(rookd_running_ids())
  keep <- names(.globals$servers) %in% running
  unname(.globals$servers[keep])
}

check_host <- function(host) {
  if (!is.character(host) || length(host) != 1 || is.na(host) || !nzchar(host)) {
    stop("`host` must be a single string such as \"127.0.0.1\", \"::1\" or \"0.0.0.0\".",
         call. = FALSE)
  }
}

check_port <- function(port) {
  if (!is.numeric(port) || length(port) != 1 || is.na(port) || port != floor(port) ||
      port < 0 || port > 65535) {
    stop("`port` must be a whole number from 0 to 65535 (0 picks a free port); got ",
         paste(format(port), collapse = ", "), ".", call. = FALSE)
  }
  as.integer(port)
}
