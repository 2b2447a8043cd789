#' Run the event loop for a while
#'
#' Serves requests (and runs any other 'later' callbacks) for up to `timeoutMs`
#' milliseconds, as httpuv's `service()` does. With `timeoutMs = 0` it loops until
#' [interrupt()] is called (from an app, say) or the user presses Ctrl-C.
#'
#' At an idle console prompt there is no need to call it: requests are served as
#' they arrive. Scripts (`Rscript`) call it, or [runServer()], to let the app run.
#'
#' @param timeoutMs Milliseconds to wait for work; `0` loops until [interrupt()].
#' @return `TRUE`, invisibly.
#' @examples
#' service(10)
#' @export
service <- function(timeoutMs = ifelse(interactive(), 100, 1000)) {
  if (!is.numeric(timeoutMs) || length(timeoutMs) != 1 || is.na(timeoutMs) || timeoutMs < 0) {
    stop("`timeoutMs` must be a single number >= 0.", call. = FALSE)
  }
  if (timeoutMs > 0) {
    later::run_now(timeoutMs / 1000)
  } else {
    .globals$paused <- FALSE
    while (!.globals$paused) {
      later::run_now(0.1)
    }
  }
  invisible(TRUE)
}

#' Run a server until interrupted
#'
#' Starts a server, serves until [interrupt()] is called or the user presses
#' Ctrl-C, then stops it.
#'
#' @inheritParams startServer
#' @param interruptIntervalMs Ignored; kept for compatibility with httpuv.
#' @return `NULL`, invisibly.
#' @examples
#' \dontrun{
#' runServer("127.0.0.1", 8080, function(req) {
#'   list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "hi")
#' })
#' }
#' @export
runServer <- function(host, port, app, interruptIntervalMs = NULL, options = rookdOptions()) {
  server <- startServer(host, port, app, options = options)
  on.exit(server$stop())
  service(0)
  invisible()
}

#' Stop a running `service(0)` or `runServer()` loop
#'
#' @return `NULL`, invisibly.
#' @examples
#' interrupt()
#' @export
interrupt <- function() {
  .globals$paused <- TRUE
  invisible()
}
