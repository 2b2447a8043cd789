#' rookd: HTTP and WebSocket server for R, with a Rust engine
#'
#' rookd serves [Rook](https://github.com/jeffreyhorner/Rook) applications over HTTP
#' and WebSockets. Sockets, parsing, limits, static files, compression and WebSocket
#' framing run on Rust threads (tokio and hyper); your app runs on R's main thread,
#' which is woken through the 'later' event loop whenever requests are waiting. While
#' R sits idle at the console prompt requests are served at once; in scripts, call
#' [service()] or [runServer()].
#'
#' The API is a drop-in for httpuv's: [startServer()], [startDaemonizedServer()],
#' [stopServer()], [service()], [runServer()], ... See `vignette`-free docs of each
#' function and `?rookdOptions` for limits and timeouts.
#'
#' @keywords internal
#' @useDynLib rookd, .registration = TRUE
#' @importFrom later run_now later
#' @importFrom utils globalVariables
"_PACKAGE"

.globals <- new.env(parent = emptyenv())
.globals$servers <- list()
.globals$paused <- FALSE

.onLoad <- function(libname, pkgname) {
  rookd_init(
    topenv(), rook_errors_stream(),
    input_read_template, input_read_lines_template, input_rewind_template,
    ws_new, ws_dispatch_message, ws_dispatch_close
  )
  # Quitting R with servers running: stop them and the I/O threads first.
  reg.finalizer(.globals, function(e) rookd_shutdown(), onexit = TRUE)
}

.onUnload <- function(libpath) {
  # Stops every server and the I/O threads, then lets go of the vectors lent to them.
  rookd_shutdown()
  # The shared library stays mapped even if R unloads it (pkgload::unload(),
  # library.dynam.unload()): it is pinned at load (RTLD_NODELETE), because later may
  # still hold a scheduled drain or release that points into it (each finds no engine and
  # returns). A later library(rookd) initialises it again with the new namespace.
}
