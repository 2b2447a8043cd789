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
#' @param send_timeout Seconds a connection that has something to send may go without
#'   writing a byte (a client that stops reading: its socket stays full, or over HTTP/2
#'   it gives no flow-control window to a stream being answered); then the connection is
#'   closed and every answer it held is dropped (R vectors lent to it included). HTTP/1.1,
#'   HTTP/2 and WebSocket connections alike (through a worker pool's front too). Over
#'   HTTP/1.1 and WebSockets the rule is "no progress", not a pace: a client that reads
#'   slowly but steadily is served (on Linux, bytes the client took from the kernel's
#'   send queue count as progress, even while the kernel still refuses new writes). Over
#'   HTTP/2 an answer is handed to hyper in slices of 64 KiB, and a stream whose next
#'   slice is not taken within 1 to 1.5 times `send_timeout` closes the whole connection:
#'   a minimum pace of 64 KiB per `send_timeout` for each stream being answered. Between
#'   keep-alive requests, `keepalive_timeout` counts from the last byte of the answer
#'   written, not from when the app's body ended. What a stalled connection can hold
#'   until then: over HTTP/1.1 one answer; over HTTP/2 at most
#'   `h2_max_concurrent_streams` answers (each its answer's buffer and at most about
#'   400 KiB more). [0, 31536000] or `Inf`; `0`/`Inf`: none; at least 0.01 s otherwise.
#'   Default 30.
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
#' @param tls_handshake_timeout Seconds a client of an HTTPS server (see [tlsConfig()])
#'   has to complete its TLS handshake; one that has not is disconnected. [0, 31536000]
#'   or `Inf`; `0`/`Inf`: no limit.
#' @param http2 Serve HTTP/2 to a client that opens a connection with the HTTP/2
#'   preface: h2c with prior knowledge on plain TCP (`curl --http2-prior-knowledge`,
#'   `h2load`, proxies such as haproxy's `proto h2`). On by default: browsers never send
#'   the preface on plain http, so they and every HTTP/1.1 client are served as before,
#'   and telling the two apart costs HTTP/1.1 nothing measurable (see "HTTP/2" in the
#'   README). `FALSE`: a preface is answered as HTTP/1.1 (an error). HTTP/1.1's
#'   `Upgrade: h2c` is not honoured either way (the request is answered over HTTP/1.1).
#' @param h2_max_concurrent_streams HTTP/2 streams a client may have open at once on one
#'   connection (SETTINGS_MAX_CONCURRENT_STREAMS). [1, 10000]
#' @param h2_max_header_list_size Largest HTTP/2 header list in bytes (names + values +
#'   32 per field, SETTINGS_MAX_HEADER_LIST_SIZE); a larger request is refused, and a
#'   header block that keeps growing (a CONTINUATION flood) closes the connection. The
#'   HTTP/2 counterpart of `max_header_bytes`; `max_headers` applies to HTTP/2 too.
#'   [1024, 16777216 (16 MiB)]
#' @param h2_initial_stream_window HTTP/2 flow-control window of each stream, bytes
#'   (how much of a request body a client may send ahead). [65535, 2147483647]
#' @param h2_initial_connection_window HTTP/2 flow-control window of a whole connection,
#'   bytes. [65535, 2147483647]
#' @param h2_max_pending_reset_streams HTTP/2 streams a client may open and reset before
#'   the server has seen them; beyond it the connection is closed with GOAWAY (the
#'   "rapid reset" attack, CVE-2023-44487). [1, 10000]
#' @param h2_max_local_error_reset_streams HTTP/2 streams the server had to reset because
#'   of the client's errors, per connection, before it is closed with GOAWAY.
#'   [1, 1000000]
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
#' @param health_path Liveness endpoint answered by the engine itself, without R:
#'   `200 ok` while the process and its I/O threads are alive, also while R is busy.
#'   `""` or `NULL` (the default): off, so no path an app serves is ever taken over.
#'   See the Operations section.
#' @param ready_path Readiness endpoint answered by the engine: `200 ready`, or `503`
#'   with the reason in the body (`not ready: draining`, `not ready: R queue: ...`,
#'   `not ready: R busy: ...`). `""`/`NULL`: off (the default).
#' @param ready_max_queue Readiness fails while more requests than this wait for R.
#'   [1, 1000000]; default 100.
#' @param ready_max_stall Readiness fails when R has taken no event for this many seconds
#'   while events wait for it (R stuck in a long call, or blocked outside the event loop).
#'   [0, 31536000] or `Inf`; `0`/`Inf`: never for that reason. Default 10.
#' @param drain_lag Seconds a drain ([drainServer()], and SIGTERM) keeps accepting
#'   connections after readiness starts failing, so that load balancers stop sending
#'   first. [0, 3600]; default 0. Behind a load balancer, set it to about the probe
#'   interval times the failure threshold (e.g. 5 to 10).
#' @param drain_on_sigterm If `TRUE` (the default), a SIGTERM received while
#'   [service()] (`0` or `Inf`) or [runServer()] loops drains every server that has it
#'   set (lag `drain_lag`, timeout `shutdown_grace`) and ends the loop, so the script
#'   ends normally (exit status 0). The handler is installed only while such a loop runs.
#' @param metrics_path Prometheus metrics (text format 0.0.4), answered by the engine.
#'   `""`/`NULL`: off (the default). Loopback clients only, unless `metrics_allow`.
#' @param status_path A live status page (self-contained HTML, charts of requests/s,
#'   latency percentiles, R queue, R busy %, connections), polling `<status_path>?json`
#'   each second. `""`/`NULL`: off (the default). Loopback clients only, unless
#'   `metrics_allow`.
#' @param metrics_allow Clients, besides loopback and Unix-socket ones, that may read
#'   `metrics_path` and `status_path`: IP addresses, CIDR blocks (`"10.0.0.0/8"`) or
#'   `"*"` for everyone. Others get `403`. Behind a reverse proxy on the same machine every
#'   client looks local: do not forward these paths.
#' @param slow_request_warning Seconds: a request whose app call takes longer is
#'   reported on stderr after the call (`rookd: slow request: GET /path took 3.02 s in
#'   R ...`), at most once a minute per path and ten times a minute in all. `0`, `Inf`
#'   or `NULL`: off (the default).
#' @section Operations:
#' Health, readiness, metrics and the status page are answered on rookd's I/O threads
#' before static paths and the app, so they answer while R is busy; they accept `GET`
#' and `HEAD`, send `Cache-Control: no-store`, and are not counted as requests. See
#' also [drainServer()] and [serverStats()].
#' @param trusted_proxies Addresses and networks of reverse proxies whose word about the
#'   client is believed: IPv4/IPv6 addresses and CIDR networks (`"10.0.0.0/8"`,
#'   `"fd00::/8"`), and `"unix"` for peers on a Unix socket (pipe servers). Only from such
#'   a peer do `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and RFC 7239
#'   `Forwarded` set `REMOTE_ADDR`/`REMOTE_PORT`, `rook.url_scheme` (and `HTTPS = "on"`),
#'   `HTTP_HOST`/`SERVER_NAME`/`SERVER_PORT`, in HTTP and WebSocket envs alike; from any
#'   other peer they are ignored (the raw headers stay visible as `HTTP_X_FORWARDED_FOR`
#'   etc.). The client is the rightmost address of the list that is not itself trusted
#'   (entries further left were written by the client and are never used; an entry the
#'   walk does not reach, bad bytes and all, does not matter). If any
#'   `X-Forwarded-*` header is present, `Forwarded` is ignored. `"*"`: every peer that
#'   connects is a proxy (only where nothing else can reach the port); it trusts
#'   connections, not the addresses in a forwarded list or a PROXY header. Default: none.
#' @param proxy_protocol If `TRUE`, every connection must start with a PROXY protocol
#'   header (v1 or v2, as HAProxy's `send-proxy`/`send-proxy-v2` write it) within
#'   `header_timeout`, else it is closed; the client address it carries becomes
#'   `REMOTE_ADDR`/`REMOTE_PORT`. Requires `trusted_proxies` (an error otherwise: any
#'   client could claim any address, `127.0.0.1` included): connections from other peers
#'   are closed unread. `trusted_proxies = "*"` says every peer is a proxy. Behind the
#'   PROXY protocol, `X-Forwarded-*` are believed only when the address the PROXY header
#'   gave is listed in `trusted_proxies` by address (`"*"` does not count).
#' @param access_log The access log, written by the engine on its own thread (never by
#'   R, never blocking a connection): `NULL` (off, the default: no cost), `"stderr"`, or
#'   a file path (appended to; created `0640`, readable by owner and group only, if
#'   missing; an error at server start if it cannot be opened), or a function of one
#'   argument, called on R's main thread with batches of lines (a character vector of at
#'   most 10,000 lines and 4 MiB, at most one batch a second, never once per request,
#'   and never a new batch before the function has returned from the previous one; the
#'   last batch before the server has stopped; an error in it is reported and the batch
#'   dropped). One line per answered request, static files and the engine's own answers
#'   (413, 503, 408) included, and request heads refused before they became requests
#'   (400 malformed, 431 too large, 414, 408 for a stalled head: client, time and status
#'   known, method and path `-`). Lines are buffered and written at least every second
#'   and when the server stops. If the writer falls behind (more than 16,384 lines or
#'   8 MiB waiting), or the function has not taken its last batch while the next one is
#'   full, lines are dropped rather than slowing requests down or growing memory, and
#'   counted (`access_log_dropped` in [serverStats()]). After logrotate moved the file, call
#'   `server$reopenLog()` or send the R process SIGHUP (with a file log configured,
#'   SIGHUP reopens the log instead of ending R).
#' @param access_log_format `"combined"` (Apache/nginx combined: client, time, request
#'   line, status, body bytes, referer, user agent), `"common"` (the same without referer
#'   and user agent), or `"json"` (one JSON object per line: `time`, `client`, `method`,
#'   `path`, `protocol`, `status`, `bytes`, `total_s`, `queued_s`, `r_s`, `user_agent`,
#'   `referer`, `request_id`). The CLF formats end with rookd's own fields: total
#'   seconds, seconds queued for R, seconds in R (these two are `-`, `null` in JSON, for
#'   requests R never saw: static files, the engine's own answers) and the request id. The client is `REMOTE_ADDR` as the app sees it
#'   (after trusted proxies); path, user agent and referer are escaped, so no request can
#'   forge a line.
#' @return A list of class `rookd_options`.
#' @examples
#' rookdOptions(max_body_bytes = 10 * 1024^2, header_timeout = 10)
#' # No keep-alive timeout; at most 64 MiB waiting for R in all (so bodies of at most
#' # 64 MiB too: max_body_bytes may not exceed max_inflight_bytes).
#' rookdOptions(keepalive_timeout = Inf, max_inflight_bytes = 64 * 1024^2,
#'              max_body_bytes = 16 * 1024^2)
#' # Out of range: an error naming the option and its range.
#' try(rookdOptions(max_headers = 1e9))
#' # Behind nginx on the same host, or a load balancer in 10.0.0.0/8.
#' rookdOptions(trusted_proxies = c("127.0.0.1", "::1", "10.0.0.0/8"))
#' @export
rookdOptions <- function(max_header_bytes = 96 * 1024,
                         max_headers = 100,
                         max_body_bytes = 100 * 1024^2,
                         header_timeout = 30,
                         keepalive_timeout = 60,
                         body_timeout = 60,
                         send_timeout = 30,
                         max_connections = 10000,
                         max_queued_requests = 10000,
                         max_inflight_bytes = 256 * 1024^2,
                         shutdown_grace = 5,
                         query_string_question_mark = FALSE,
                         compression = TRUE,
                         tls_handshake_timeout = 10,
                         http2 = TRUE,
                         h2_max_concurrent_streams = 100,
                         h2_max_header_list_size = 96 * 1024,
                         h2_initial_stream_window = 1024^2,
                         h2_initial_connection_window = 1024^2,
                         h2_max_pending_reset_streams = 20,
                         h2_max_local_error_reset_streams = 1024,
                         reuse_port = FALSE,
                         threads = 2,
                         ws_max_message_bytes = 64 * 1024^2,
                         ws_max_outgoing_bytes = 64 * 1024^2,
                         ws_max_inflight_bytes = 16 * 1024^2,
                         ws_ping_interval = 20,
                         ws_idle_timeout = 60,
                         ws_permessage_deflate = TRUE,
                         ws_allowed_origins = character(0),
                         ws_subprotocols = character(0),
                         health_path = "",
                         ready_path = "",
                         ready_max_queue = 100,
                         ready_max_stall = 10,
                         drain_lag = 0,
                         drain_on_sigterm = TRUE,
                         metrics_path = "",
                         status_path = "",
                         metrics_allow = character(0),
                         slow_request_warning = 0,
                         trusted_proxies = character(0),
                         proxy_protocol = FALSE,
                         access_log = NULL,
                         access_log_format = "combined") {

  opts <- as.list(environment())
  table <- option_table()
  log_fun <- if (is.function(access_log)) access_log
  if (!is.null(log_fun)) opts$access_log <- NULL
  for (nm in names(table)) {
    opts[nm] <- list(check_option(nm, opts[[nm]], table[[nm]]))  # NULL stays an element
  }
  if (!is.null(log_fun)) {
    if (length(formals(log_fun)) < 1 && !"..." %in% names(formals(log_fun))) {
      stop("`access_log`: a function must take one argument (the lines).", call. = FALSE)
    }
    opts["access_log"] <- list(log_fun)
  }
  bad <- rookd_check_trusted_proxies(opts$trusted_proxies)
  if (nzchar(bad)) stop("`trusted_proxies`: ", bad, call. = FALSE)
  if (isTRUE(opts$proxy_protocol) && !length(opts$trusted_proxies)) {
    stop("`proxy_protocol = TRUE` needs `trusted_proxies`: the addresses of the proxies ",
         "that send PROXY headers (e.g. trusted_proxies = \"127.0.0.1\"), or \"*\" if every ",
         "peer that can reach this port is such a proxy; without it any client could claim ",
         "any address.", call. = FALSE)
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
    path = check_path(nm, v),
    choice = check_choice(nm, v, spec$choices),
    optional_string = check_optional_string(nm, v),
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
  if (is.null(v) && isTRUE(spec$no_limit)) return(0)
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

# A URL path the engine answers itself: "" (off) or one starting with "/"; NULL is "".
check_path <- function(nm, v) {
  if (is.null(v)) return("")
  if (!is.character(v) || length(v) != 1 || is.na(v) ||
      (nzchar(v) && (!startsWith(v, "/") || grepl("[?#[:cntrl:]]", v)))) {
    stop("`", nm, "` must be a single path starting with \"/\" (no \"?\" or \"#\"), ",
         "or \"\" or NULL (off).", call. = FALSE)
  }
  v
}

check_choice <- function(nm, v, choices) {
  if (!is.character(v) || length(v) != 1 || is.na(v) || !(v %in% choices)) {
    stop("`", nm, "` must be one of ", paste0('"', choices, '"', collapse = ", "), ".", call. = FALSE)
  }
  v
}

check_optional_string <- function(nm, v) {
  if (is.null(v)) return(NULL)
  if (!is.character(v) || length(v) != 1 || is.na(v) || !nzchar(v)) {
    stop("`", nm, "` must be NULL or a single non-empty string.", call. = FALSE)
  }
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
