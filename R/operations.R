#' Drain a server gracefully
#'
#' For a rolling restart or a scale-down: readiness (`ready_path`, see
#' [rookdOptions()]) fails at once; the server keeps accepting connections for
#' `drain_lag` seconds (load balancers take a while to notice), then closes its listener.
#' Requests in flight and streamed responses get `timeout` seconds to finish, idle
#' keep-alive connections are closed at once, WebSockets are sent close `1001` (going
#' away); whatever is still open after `timeout` is cut. HTTP/2 connections get GOAWAY.
#'
#' The call serves R's event loop while it waits (as [service()] does), so the app keeps
#' answering the requests that are finishing; it returns once the server has closed its
#' last connection (or at the latest `drain_lag + 2 * timeout + 10` seconds later).
#' `server$drain(timeout)` is the same.
#'
#' On SIGTERM inside [runServer()] or `service(0)`, every server whose
#' `drain_on_sigterm` option is `TRUE` (the default) is drained this way, with its
#' `drain_lag` and a timeout of its `shutdown_grace`, and the loop returns.
#'
#' @param server A server from [startServer()] or [startPipeServer()].
#' @param timeout Seconds in-flight work may take to finish once the listener has
#'   closed. [0, 3600]
#' @param lag Seconds to keep accepting first; `NULL` (the default) uses the server's
#'   `drain_lag` option. [0, 3600]
#' @return Invisibly, a list: `requests` (requests finished during the drain), `streams`
#'   (streamed responses finished), `websockets_closed` (sent close 1001), `cut`
#'   (connections still open at the timeout, closed without waiting), `seconds` (how long
#'   the drain took) and `closed` (`TRUE` if the server closed within the bound).
#' @examples
#' s <- startServer("127.0.0.1", 0, function(req) list(status = 200L, headers = list(), body = "hi"))
#' str(drainServer(s, timeout = 1))
#' @seealso [serverStats()], [rookdOptions()] (`ready_path`, `drain_lag`,
#'   `drain_on_sigterm`)
#' @export
drainServer <- function(server, timeout = 30, lag = NULL) {
  check_server(server)
  timeout <- check_drain_secs("timeout", timeout)
  if (!is.null(lag)) lag <- check_drain_secs("lag", lag)
  invisible(drain_servers(list(server), timeout, lag)[[1]])
}

check_server <- function(server) {
  if (!inherits(server, "rookd_server")) {
    stop("`server` must be a server returned by startServer() or startPipeServer().",
         call. = FALSE)
  }
}

check_drain_secs <- function(nm, v) {
  if (!is.numeric(v) || length(v) != 1 || is.na(v) || v < 0 || v > 3600) {
    stop("`", nm, "` must be a single number of seconds in [0, 3600].", call. = FALSE)
  }
  as.numeric(v)
}

# Start draining every server at once, then serve the event loop until all have closed.
# `timeout`/`lag`: numbers, or NULL for each server's own shutdown_grace / drain_lag.
drain_servers <- function(servers, timeout = NULL, lag = NULL) {
  t0 <- proc.time()[["elapsed"]]
  ids <- vapply(servers, function(s) s$id, numeric(1))
  settings <- rookd_drain_settings()
  own <- function(field, id, given) {
    if (!is.null(given)) return(given)
    v <- settings[[field]][settings$id == id]
    if (length(v)) v[[1]] else 0
  }
  before <- lapply(ids, rookd_server_stats)
  bound <- 0
  for (id in ids) {
    l <- own("drain_lag", id, lag)
    t <- own("drain_timeout", id, timeout)
    rookd_drain(id, l, t)
    # ws close handshakes are bounded by 5 s after the grace period.
    bound <- max(bound, l + 2 * t + 10)
  }
  closed <- function(id) isTRUE(rookd_server_stats(id)$closed)
  while (!all(vapply(ids, closed, logical(1))) && proc.time()[["elapsed"]] - t0 < bound) {
    later::run_now(0.05, all = FALSE)
  }
  # Let queued close events (WebSocket onClose) run before returning.
  later::run_now(0, all = TRUE)
  for (id in ids) .globals$servers[[as.character(id)]] <- NULL
  secs <- proc.time()[["elapsed"]] - t0
  Map(function(id, b) {
    a <- rookd_server_stats(id)
    d <- function(f) if (is.null(a) || is.null(b)) NA_real_ else a[[f]] - b[[f]]
    list(
      requests = if (is.null(a)) NA_real_ else sum(a$requests) - sum(b$requests),
      streams = d("streams_finished"),
      websockets_closed = d("drain_websockets_closed"),
      cut = d("drain_cut"),
      seconds = secs,
      closed = closed(id)
    )
  }, ids, before)
}

#' A server's counters
#'
#' What the engine counts for one server, read without stopping it (atomic reads):
#' the same numbers `metrics_path` exposes to Prometheus. `server$stats()` is the same.
#'
#' @param server A server from [startServer()] or [startPipeServer()].
#' @return A list: `requests` (total), `requests_by_method` and `requests_by_status`
#'   (named counts: methods `GET`..`OPTIONS`, `other`; classes `1xx`..`5xx`),
#'   `latency` and `r_latency` (seconds: `p50`, `p90`, `p99` estimated from the
#'   histogram buckets, and `mean`; total time per request, and the part R spent on it;
#'   `NA` before any request), `queue_latency` (time waiting for R),
#'   `queued_requests` (waiting for or handled by R, all servers), `r_busy_seconds` (time
#'   R spent handling events, all servers), `connections_open`, `connections_total`,
#'   `websockets_open`, `websockets_total`, `bytes_in`, `bytes_out` (socket bytes),
#'   `static_hits`, `streams_finished`, `rejects` (named: `408`, `413`, `431`, `503`:
#'   requests the engine refused itself), `drains`, `drain_cut`, `uptime` (seconds),
#'   `running`, `draining`, `ready` and `not_ready` (the readiness verdict and its reason),
#'   `access_log_dropped` (access-log lines dropped because the writer, or the R function
#'   given as `access_log`, fell behind; see [rookdOptions()]).
#'   A server that has closed keeps its last counters (with `running = FALSE`).
#' @examples
#' s <- startServer("127.0.0.1", 0, function(req) list(status = 200L, headers = list(), body = "hi"))
#' serverStats(s)$requests
#' s$stop()
#' @export
serverStats <- function(server) {
  check_server(server)
  x <- rookd_server_stats(server$id)
  if (is.null(x)) stop("rookd: no such server.", call. = FALSE)
  na <- function(v) ifelse(v < 0, NA_real_, v)
  lat <- function(q, m) c(p50 = na(q[1]), p90 = na(q[2]), p99 = na(q[3]), mean = na(m))
  by <- matrix(x$requests, nrow = 5, dimnames = list(c("1xx", "2xx", "3xx", "4xx", "5xx"), x$methods))
  rejects <- x$rejects
  names(rejects) <- c("408", "413", "431", "503")
  list(
    requests = sum(x$requests),
    requests_by_method = colSums(by),
    requests_by_status = rowSums(by),
    latency = lat(x$latency, x$latency_mean),
    r_latency = lat(x$r_latency, x$r_latency_mean),
    queue_latency = lat(x$queue_latency, -1)[1:3],
    queued_requests = x$queued_requests,
    r_busy_seconds = x$r_busy_seconds,
    connections_open = x$connections_open,
    connections_total = x$connections_total,
    websockets_open = x$websockets_open,
    websockets_total = x$websockets_total,
    bytes_in = x$bytes_in,
    bytes_out = x$bytes_out,
    static_hits = x$static_hits,
    streams_finished = x$streams_finished,
    rejects = rejects,
    drains = x$drains,
    drain_cut = x$drain_cut,
    uptime = x$uptime,
    running = x$running,
    draining = x$draining,
    ready = !nzchar(x$not_ready),
    not_ready = if (nzchar(x$not_ready)) x$not_ready else NA_character_,
    access_log_dropped = x$access_log_dropped
  )
}

# SIGTERM while service(0) loops: installed only if a running server asks for it
# (drain_on_sigterm); TRUE if this call installed it (the caller then restores).
sigterm_arm <- function() {
  s <- rookd_drain_settings()
  any(s$drain_on_sigterm) && rookd_sigterm(1L)
}

sigterm_disarm <- function() invisible(rookd_sigterm(0L))

sigterm_seen <- function() rookd_sigterm(2L)

# Drain every running server that has drain_on_sigterm, each with its own lag and
# shutdown_grace.
drain_on_sigterm <- function() {
  s <- rookd_drain_settings()
  ids <- s$id[s$drain_on_sigterm]
  servers <- Filter(function(x) x$id %in% ids, .globals$servers)
  message("rookd: SIGTERM: draining ", length(servers), " server(s)")
  drain_servers(unname(servers))
  invisible()
}
