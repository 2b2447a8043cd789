#' Server limits, timeouts and behaviour
#'
#' Every limit rookd enforces, in one place. Pass the result as the `options`
#' argument of [startServer()], [startDaemonizedServer()] or [startPipeServer()];
#' any option not given keeps its default.
#'
#' Each option has a range, given in brackets below; a value outside it (or of the wrong
#' type, or `NA`) is an R error that names the option and its range. Counts and sizes are
#' whole numbers. Times are in seconds and may be fractional. For the timeouts (and
#' `ws_ping_interval`), `0` and `Inf` both mean "no limit" (no timeout, no pings); any other
#' value is at most a year. The engine applies the same ranges again when a server
#' starts, so no value can make it overflow or allocate without bound.
#'
#' @section Memory:
#' Requests and messages waiting for R are bounded in bytes, not only in number:
#' `max_inflight_bytes` counts every HTTP request body and WebSocket message the engine
#' holds for R (received, not yet handled), over all servers of the session. When it is
#' full, new HTTP requests are answered `503 Service Unavailable` with `Retry-After: 1`,
#' and WebSocket connections stop reading (TCP pushes back on their clients) until R
#' catches up. `ws_max_inflight_bytes` bounds one WebSocket connection the same way: it
#' stops reading while that many bytes of its messages wait for R. A connection may in
#' addition hold one message it is still receiving (at most `ws_max_message_bytes`).
#'
#' @param max_header_bytes Request line plus headers, in bytes; more gets
#'   `431 Request Header Fields Too Large`. The default, 96 KiB, is above httpuv's
#'   80 KiB, so every request head httpuv accepts is accepted. [1024, 67108864 (64 MiB)]
#' @param max_headers Number of request headers; more gets 431. [1, 10000]
#' @param max_body_bytes Request body, in bytes. More gets `413 Payload Too Large`,
#'   decided before reading when Content-Length is known, else while reading.
#'   [1, 2^40], and at most `max_inflight_bytes`.
#' @param header_timeout Seconds for a request's head to arrive, counted from its
#'   first byte; a head still incomplete then gets `408 Request Timeout` and the
#'   connection is closed (slowloris). A new connection that sends nothing for this
#'   long is closed without an answer. [0, 31536000] or `Inf`; `0`/`Inf`: none.
#' @param keepalive_timeout Seconds an idle keep-alive connection is kept open between
#'   requests; then it is closed without an answer. [0, 31536000] or `Inf`; `0`/`Inf`:
#'   kept until the client closes it.
#' @param body_timeout Seconds a request's body may go without sending a byte; then
#'   `408` and the connection is closed. Past its first `body_timeout`, a body must also
#'   keep arriving at 500 bytes/s on average (as Apache's `mod_reqtimeout`), so a slow but
#'   steady upload is served however long it takes, and one that trickles a few bytes at a
#'   time is cut. [0, 31536000] or `Inf`; `0`/`Inf`: none.
#' @param max_connections Connections served at once; more wait in the kernel's backlog.
#'   [1, 1000000]
#' @param max_queued_requests Requests waiting for R at once; more get
#'   `503 Service Unavailable` with `Retry-After`. [1, 1000000]
#' @param max_inflight_bytes Bytes of request bodies and WebSocket messages waiting for
#'   R, in total (see Memory). [1048576 (1 MiB), 2^40]; default 256 MiB.
#' @param shutdown_grace Seconds a stopped server lets in-flight requests finish; `0`
#'   closes them at once. [0, 3600]
#' @param query_string_question_mark If `TRUE`, `QUERY_STRING` keeps the leading `"?"`
#'   as httpuv's does; the Rook spec (and the default) leaves it out.
#' @param compression Gzip compressible responses (text, JSON, JavaScript, SVG, ...) of
#'   at least 1 KiB when the client accepts it. Bodies of 64 KiB or more are compressed
#'   on a worker thread, never on the threads that serve connections.
#' @param reuse_port Bind with `SO_REUSEPORT`, so that several processes (each started
#'   with it) share one port and the kernel spreads connections over them: N independent
#'   rookd processes under systemd or Kubernetes. Without it a second bind is an
#'   "address in use" error. (One machine's pool: see [serveWorkers()].)
#' @param threads I/O threads of the engine (fixed by the first server started).
#'   [1, 64]
#' @param ws_max_message_bytes Largest WebSocket message accepted; larger closes with 1009.
#'   [1, 2147483647]
#' @param ws_max_outgoing_bytes Bytes queued towards one WebSocket client; a client
#'   that falls further behind is disconnected (close code 1008). [1024, 2^40]
#' @param ws_max_inflight_bytes Bytes of one WebSocket connection's messages waiting for
#'   R before that connection stops reading (see Memory). [1024, 4294967295]; default
#'   16 MiB.
#' @param ws_ping_interval Seconds between server pings. [0, 31536000] or `Inf`;
#'   `0`/`Inf`: no pings.
#' @param ws_idle_timeout Seconds of silence after which a WebSocket peer is dropped.
#'   [0, 31536000] or `Inf`; `0`/`Inf`: never.
#' @param ws_permessage_deflate Accept permessage-deflate compression (RFC 7692).
#' @param ws_allowed_origins If not empty, only these `Origin` values may open a
#'   WebSocket; others get 403.
#' @param ws_subprotocols Subprotocols the server speaks, preferred first; the first one
#'   the client offers is chosen and echoed in `Sec-WebSocket-Protocol`.
#' @return A list of class `rookd_options`.
#' @examples
#' rookdOptions(max_body_bytes = 10 * 1024^2, header_timeout = 10)
#' # No keep-alive timeout; at most 64 MiB waiting for R in all (so bodies of at most
#' # 64 MiB too: max_body_bytes may not exceed max_inflight_bytes).
#' rookdOptions(keepalive_timeout = Inf, max_inflight_bytes = 64 * 1024^2,
#'              max_body_bytes = 16 * 1024^2)
#' # Out of range: an error naming the option and its range.
#' try(rookdOptions(max_headers = 1e9))
#' @export
rookdOptions <- function(max_header_bytes = 96 * 1024,
                         max_headers = 100,
                         max_body_bytes = 100 * 1024^2,
                         header_timeout = 30,
                         keepalive_timeout = 60,
                         body_timeout = 60,
                         max_connections = 10000,
                         max_queued_requests = 10000,
                         max_inflight_bytes = 256 * 1024^2,
                         shutdown_grace = 5,
                         query_string_question_mark = FALSE,
                         compression = TRUE,
                         reuse_port = FALSE,
                         threads = 2,
                         ws_max_message_bytes = 64 * 1024^2,
                         ws_max_outgoing_bytes = 64 * 1024^2,
                         ws_max_inflight_bytes = 16 * 1024^2,
                         ws_ping_interval = 20,
                         ws_idle_timeout = 60,
                         ws_permessage_deflate = TRUE,
                         ws_allowed_origins = character(0),
                         ws_subprotocols = character(0)) {
  opts <- as.list(environment())
  table <- option_table()
  for (nm in names(table)) {
    opts[[nm]] <- check_option(nm, opts[[nm]], table[[nm]])
  }
  if (opts$max_body_bytes > opts$max_inflight_bytes) {
    stop("`max_body_bytes` (", format(opts$max_body_bytes, scientific = FALSE),
         ") must not exceed `max_inflight_bytes` (", format(opts$max_inflight_bytes, scientific = FALSE),
         "): a larger body could never be accepted.", call. = FALSE)
  }
  structure(opts, class = "rookd_options")
}

# The option table: kind, default, range and "no limit" meaning of every option, defined
# once in the engine (src/rust/engine/src/config.rs, `options::OPTIONS`) and read through
# the bridge. rookdOptions()'s formals repeat the defaults for users and their docs;
# test-options-validation.R checks that they equal the table's.
option_table <- function() {
  if (is.null(the_option_table$table)) the_option_table$table <- rookd_option_limits()
  the_option_table$table
}
the_option_table <- new.env(parent = emptyenv())

check_option <- function(nm, v, spec) {
  switch(spec$kind,
    count = check_count(nm, v, spec$range),
    seconds = check_secs(nm, v, spec),
    flag = check_flag(nm, v),
    strings = check_strings(nm, v),
    stop("rookd: unknown kind of option `", nm, "`.", call. = FALSE)
  )
}

fmt_num <- function(x) format(x, scientific = FALSE, big.mark = "")

check_count <- function(nm, v, range) {
  if (!is.numeric(v) || length(v) != 1 || is.na(v) || !is.finite(v) || v != floor(v) ||
      v < range[1] || v > range[2]) {
    stop("`", nm, "` must be a single whole number in [", fmt_num(range[1]), ", ",
         fmt_num(range[2]), "].", call. = FALSE)
  }
  as.numeric(v)
}

# Seconds in spec$range; with spec$no_limit, 0 and Inf both mean "no limit" (the engine
# reads them so: config.rs, `Seconds::check`).
check_secs <- function(nm, v, spec) {
  max <- spec$range[2]
  ok <- is.numeric(v) && length(v) == 1 && !is.na(v) && v >= spec$range[1] &&
    (v <= max || (spec$no_limit && is.infinite(v)))
  if (!ok) {
    stop("`", nm, "` must be a single number of seconds in [", fmt_num(spec$range[1]), ", ",
         fmt_num(max), "]", if (spec$no_limit) " or Inf (0 and Inf: no limit)" else "", ".",
         call. = FALSE)
  }
  as.numeric(v)
}

check_flag <- function(nm, v) {
  if (!is.logical(v) || length(v) != 1 || is.na(v)) {
    stop("`", nm, "` must be TRUE or FALSE.", call. = FALSE)
  }
  v
}

check_strings <- function(nm, v) {
  if (!is.character(v) || anyNA(v)) stop("`", nm, "` must be a character vector.", call. = FALSE)
  v
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
