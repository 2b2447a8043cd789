#' Run the event loop for a while
#'
#' Serves requests (and runs any other 'later' callbacks), as httpuv's `service()` does:
#' \itemize{
#'   \item `timeoutMs = 0` or `Inf` loops until [interrupt()] is called (from an app,
#'     say) or the user presses Ctrl-C;
#'   \item `timeoutMs = NA` runs what is ready now, without waiting;
#'   \item any other value waits up to `timeoutMs` milliseconds for something to run,
#'     once.
#' }
#' With `0` or `Inf`, a SIGTERM drains the running servers (see [drainServer()] and
#' the `drain_on_sigterm` option) and ends the loop.
#'
#' Each pass runs one 'later' callback (`later::run_now(all = FALSE)`), as httpuv
#' does; one callback of rookd answers every request waiting at that moment.
#'
#' At an idle console prompt there is no need to call it: requests are served as
#' they arrive. Scripts (`Rscript`) call it, or [runServer()], to let the app run.
#'
#' @param timeoutMs Milliseconds to wait for work: `0` or `Inf` loop until
#'   [interrupt()], `NA` does not wait.
#' @return `TRUE` (visibly, as httpuv).
#' @examples
#' service(10)
#' service(NA)
#' @export
service <- function(timeoutMs = ifelse(interactive(), 100, 1000)) {
  if (!(is.numeric(timeoutMs) || is.logical(timeoutMs)) || length(timeoutMs) != 1 ||
      (!is.na(timeoutMs) && timeoutMs < 0)) {
    stop("`timeoutMs` must be a single number >= 0, Inf or NA.", call. = FALSE)
  }
  if (is.na(timeoutMs)) {
    later::run_now(0, all = FALSE)
  } else if (timeoutMs == 0 || is.infinite(timeoutMs)) {
    .globals$paused <- FALSE
    # SIGTERM drains the servers and ends the loop (drain_on_sigterm; R/operations.R).
    sigterm <- sigterm_arm()
    if (sigterm) on.exit(sigterm_disarm(), add = TRUE)
    # A bounded wait, so that Ctrl-C and interrupt() from outside a callback are
    # noticed within 0.1 s.
    while (!.globals$paused) {
      later::run_now(0.1, all = FALSE)
      if (sigterm && sigterm_seen()) {
        drain_on_sigterm()
        break
      }
    }
  } else {
    later::run_now(timeoutMs / 1000, all = FALSE)
  }
  TRUE
}

#' Run a server until interrupted
#'
#' Starts a server, serves until [interrupt()] is called or the user presses
#' Ctrl-C, then stops it (also on an error or Ctrl-C).
#'
#' @inheritParams startServer
#' @param interruptIntervalMs Ignored, as by httpuv (which keeps it for compatibility
#'   with old code); `NULL` or a number.
#' @return `TRUE`, the value of `service(0)` (as httpuv).
#' @examples
#' # runServer() blocks until interrupt() (or Ctrl-C, or SIGTERM): here a 'later'
#' # callback calls interrupt() after half a second.
#' later::later(interrupt, 0.5)
#' runServer("127.0.0.1", 0, function(req) {
#'   list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "hi")
#' })
#' @export
runServer <- function(host, port, app, interruptIntervalMs = NULL, options = rookdOptions(),
                      tls = NULL) {
  if (!is.null(interruptIntervalMs) &&
      (!is.numeric(interruptIntervalMs) || length(interruptIntervalMs) != 1)) {
    stop("`interruptIntervalMs` must be NULL or a single number (it is ignored).",
         call. = FALSE)
  }
  server <- startServer(host, port, app, options = options, tls = tls)
  on.exit(stopServer(server))
  service(0)
}

#' Stop a running `service(0)` or `runServer()` loop
#'
#' @return `TRUE`, invisibly (as httpuv).
#' @examples
#' interrupt()
#' @export
interrupt <- function() {
  .globals$paused <- TRUE
  invisible(TRUE)
}
