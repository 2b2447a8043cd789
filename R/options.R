#' Server limits, timeouts and behaviour
#'
#' Every limit rookd enforces, in one place. Pass the result as the `options`
#' argument of [startServer()], [startDaemonizedServer()] or [startPipeServer()];
#' any option not given keeps its default.
#'
#' @param max_header_bytes Request line plus headers, in bytes; more gets
#'   `431 Request Header Fields Too Large`. The default, 96 KiB, is above httpuv's
#'   80 KiB, so every request head httpuv accepts is accepted.
#' @param max_headers Number of request headers; more gets 431.
#' @param max_body_bytes Request body, in bytes. More gets `413 Payload Too Large`,
#'   decided before reading when Content-Length is known, else while reading.
#' @param header_timeout Seconds for a request's head to arrive, counted from its
#'   first byte; a head still incomplete then gets `408 Request Timeout` and the
#'   connection is closed (slowloris). A new connection that sends nothing for this
#'   long is closed without an answer.
#' @param keepalive_timeout Seconds an idle keep-alive connection is kept open between
#'   requests; then it is closed without an answer.
#' @param body_timeout Seconds for a request's body to arrive; then `408`.
#' @param max_connections Connections served at once; more wait in the kernel's backlog.
#' @param max_queued_requests Requests waiting for R at once; more get
#'   `503 Service Unavailable` with `Retry-After`.
#' @param shutdown_grace Seconds a stopped server lets in-flight requests finish.
#' @param query_string_question_mark If `TRUE`, `QUERY_STRING` keeps the leading `"?"`
#'   as httpuv's does; the Rook spec (and the default) leaves it out.
#' @param compression Gzip compressible responses (text, JSON, JavaScript, SVG, ...) of
#'   at least 1 KiB when the client accepts it.
#' @param threads I/O threads of the engine (fixed by the first server started).
#' @param ws_max_message_bytes Largest WebSocket message accepted; larger closes with 1009.
#' @param ws_max_outgoing_bytes Bytes queued towards one WebSocket client; a client
#'   that falls further behind is disconnected (close code 1008).
#' @param ws_ping_interval Seconds between server pings (`0` disables them).
#' @param ws_idle_timeout Seconds of silence after which a WebSocket peer is dropped
#'   (`0` disables).
#' @param ws_permessage_deflate Accept permessage-deflate compression (RFC 7692).
#' @param ws_allowed_origins If not empty, only these `Origin` values may open a
#'   WebSocket; others get 403.
#' @param ws_subprotocols Subprotocols the server speaks, preferred first; the first one
#'   the client offers is chosen and echoed in `Sec-WebSocket-Protocol`.
#' @return A list of class `rookd_options`.
#' @examples
#' rookdOptions(max_body_bytes = 10 * 1024^2, header_timeout = 10)
#' @export
rookdOptions <- function(max_header_bytes = 96 * 1024,
                         max_headers = 100,
                         max_body_bytes = 100 * 1024^2,
                         header_timeout = 30,
                         keepalive_timeout = 60,
                         body_timeout = 60,
                         max_connections = 10000,
                         max_queued_requests = 10000,
                         shutdown_grace = 5,
                         query_string_question_mark = FALSE,
                         compression = TRUE,
                         threads = 2,
                         ws_max_message_bytes = 64 * 1024^2,
                         ws_max_outgoing_bytes = 64 * 1024^2,
                         ws_ping_interval = 20,
                         ws_idle_timeout = 60,
                         ws_permessage_deflate = TRUE,
                         ws_allowed_origins = character(0),
                         ws_subprotocols = character(0)) {
  opts <- as.list(environment())
  counts <- c("max_header_bytes", "max_headers", "max_body_bytes", "max_connections",
              "max_queued_requests", "threads", "ws_max_message_bytes", "ws_max_outgoing_bytes")
  secs <- c("header_timeout", "keepalive_timeout", "body_timeout", "shutdown_grace", "ws_ping_interval", "ws_idle_timeout")
  flags <- c("query_string_question_mark", "compression", "ws_permessage_deflate")
  for (nm in counts) {
    v <- opts[[nm]]
    if (!is.numeric(v) || length(v) != 1 || is.na(v) || v < 1 || v != floor(v)) {
      stop("`", nm, "` must be a single whole number >= 1.", call. = FALSE)
    }
    opts[[nm]] <- as.numeric(v)
  }
  for (nm in secs) {
    v <- opts[[nm]]
    if (!is.numeric(v) || length(v) != 1 || is.na(v) || v < 0) {
      stop("`", nm, "` must be a single number of seconds >= 0 (Inf for none).", call. = FALSE)
    }
    opts[[nm]] <- as.numeric(v)
  }
  for (nm in flags) {
    v <- opts[[nm]]
    if (!is.logical(v) || length(v) != 1 || is.na(v)) {
      stop("`", nm, "` must be TRUE or FALSE.", call. = FALSE)
    }
  }
  for (nm in c("ws_allowed_origins", "ws_subprotocols")) {
    v <- opts[[nm]]
    if (!is.character(v) || anyNA(v)) stop("`", nm, "` must be a character vector.", call. = FALSE)
  }
  structure(opts, class = "rookd_options")
}

as_rookd_options <- function(options) {
  if (inherits(options, "rookd_options")) return(options)
  if (is.list(options)) return(do.call(rookdOptions, options))
  stop("`options` must come from rookdOptions() (or be a list of its arguments).", call. = FALSE)
}

#' @export
print.rookd_options <- function(x, ...) {
  cat("<rookd options>\n")
  for (nm in names(x)) {
    v <- x[[nm]]
    cat(sprintf("  %-28s %s\n", nm, if (length(v)) paste(format(v), collapse = ", ") else "(none)"))
  }
  invisible(x)
}
