#' WebSocket connections
#'
#' When an app has `onWSOpen(ws)`, each WebSocket that opens reaches it as a
#' `WebSocket` object (compatible with httpuv's):
#' \describe{
#'   \item{`ws$onMessage(func)`}{`func(binary, message)` runs for each message:
#'     `binary` is `TRUE` with a raw vector, or `FALSE` with a UTF-8 string. A text
#'     message containing U+0000 (NUL), which no R string can hold, is not delivered:
#'     the connection is closed with code 1003 ("cannot accept this data") and a
#'     message goes to stderr, so nothing is silently cut (send such data as binary).
#'     Several callbacks may be registered; messages that arrive before the first one are kept
#'     and delivered to it. Returns a function that unregisters `func`.}
#'   \item{`ws$onClose(func)`}{runs once when the connection closes, by either side.
#'     `func()` or `func(code, reason)`: callbacks that take arguments get the close
#'     code (1000 normal, 1001 going away, 1005 no code given, 1006 dropped, ...) and
#'     reason (cut at U+0000, if the peer's reason holds one).}
#'   \item{`ws$send(message)`}{a raw vector goes as a binary frame, a string as text
#'     (converted to UTF-8). Sending on a closed socket does nothing.}
#'   \item{`ws$close(code = 1000L, reason = "")`}{starts the close handshake. `code`
#'     must be one an endpoint may send (RFC 6455: 1000-1003, 1007-1014, 3000-4999);
#'     another is an R error.}
#'   \item{`ws$request`}{the Rook env of the upgrade request.}
#'   \item{`ws$handle`}{an opaque handle of the connection (an external pointer tagged
#'     as a WebSocket's: passing any other object where it is expected is an R error).}
#' }
#' An R error in a callback is printed to stderr and the socket is closed with code
#' 1011; the server and other sockets carry on.
#' @name WebSocket
#' @examples
#' app <- list(
#'   call = function(req) list(status = 200L, headers = list(), body = "ws only"),
#'   onWSOpen = function(ws) {
#'     ws$onMessage(function(binary, message) ws$send(message))
#'     ws$onClose(function(code, reason) message("closed ", code))
#'   }
#' )
#' s <- startServer("127.0.0.1", 0, app)
#' s$stop()
NULL

# Built by the bridge for each WebSocket that opens.
ws_new <- function(handle, request) {
  self <- new.env(parent = emptyenv())
  self$handle <- handle
  self$request <- request
  self$.message_callbacks <- list()
  self$.close_callbacks <- list()
  self$.backlog <- list()
  self$.flushing <- FALSE
  self$.closed <- NULL
  self$onMessage <- function(func) {
    if (!is.function(func)) stop("`func` must be a function(binary, message).", call. = FALSE)
    key <- ws_callback_key()
    self$.message_callbacks[[key]] <- func
    if (length(self$.backlog) && !self$.flushing) {
      # Delivered from the event loop, after the caller has finished registering; messages
      # arriving meanwhile queue behind the backlog (ws_dispatch_message).
      self$.flushing <- TRUE
      later::later(function() ws_flush_backlog(self))
    }
    invisible(function() self$.message_callbacks[[key]] <- NULL)
  }
  self$onClose <- function(func) {
    if (!is.function(func)) stop("`func` must be a function.", call. = FALSE)
    key <- ws_callback_key()
    self$.close_callbacks[[key]] <- func
    if (!is.null(self$.closed)) {
      closed <- self$.closed
      later::later(function() {
        tryCatch(ws_call_close(func, closed$code, closed$reason), error = function(e) {
          message("rookd: error in a WebSocket onClose callback: ", conditionMessage(e))
        })
      })
    }
    invisible(function() self$.close_callbacks[[key]] <- NULL)
  }
  self$send <- function(message) {
    # Fast path: the bridge converts a single string to UTF-8 itself.
    if (is.raw(message) || (is.character(message) && length(message) == 1L && !is.na(message))) {
      return(invisible(.Call(wrap__rookd_ws_send, handle, message)))
    }
    if (is.character(message)) {
      message <- paste(enc2utf8(message), collapse = "\n")
    } else if (!is.raw(message)) {
      stop("`message` must be a character string or a raw vector.", call. = FALSE)
    }
    invisible(rookd_ws_send(handle, message))
  }
  self$close <- function(code = 1000L, reason = "") {
    if (!is.numeric(code) || length(code) != 1 || is.na(code)) {
      stop("`code` must be a close code such as 1000L.", call. = FALSE)
    }
    # RFC 6455 7.4: an endpoint may send 1000-1003, 1007-1014 and 3000-4999; 1004-1006
    # and 1015 are reserved (never sent), the rest unassigned. Refused here rather than
    # quietly sent as 1000.
    if (code != trunc(code) || !(code %in% c(1000:1003, 1007:1014) || (code >= 3000 && code <= 4999))) {
      stop("`code` must be a WebSocket close code that may be sent: 1000-1003, 1007-1014 ",
           "or 3000-4999; got ", code, ".", call. = FALSE)
    }
    if (!is.character(reason) || length(reason) != 1 || is.na(reason)) {
      stop("`reason` must be a single string.", call. = FALSE)
    }
    rookd_ws_close(handle, as.integer(code), enc2utf8(reason))
    invisible()
  }
  self$isOpen <- function() rookd_ws_is_open(handle)
  class(self) <- c("WebSocket", "rookd_websocket")
  self
}

ws_callback_key <- local({
  n <- 0
  function() {
    n <<- n + 1
    paste0("cb", n)
  }
})

ws_flush_backlog <- function(ws) {
  on.exit(ws$.flushing <- FALSE)
  while (length(ws$.backlog) && length(ws$.message_callbacks)) {
    m <- ws$.backlog[[1]]
    ws$.backlog[[1]] <- NULL
    ok <- tryCatch({
      for (f in ws$.message_callbacks) f(m$binary, m$message)
      TRUE
    }, error = function(e) {
      message("rookd: error in a WebSocket onMessage callback: ", conditionMessage(e),
              "; closing it (1011)")
      FALSE
    })
    if (!ok) {
      ws$.backlog <- list()
      try(ws$close(1011L, ""), silent = TRUE)
      return(invisible())
    }
  }
}

ws_dispatch_message <- function(ws, binary, message) {
  callbacks <- ws$.message_callbacks
  if (!length(callbacks) || isTRUE(ws$.flushing)) {
    ws$.backlog[[length(ws$.backlog) + 1L]] <- list(binary = binary, message = message)
    return(invisible())
  }
  for (f in callbacks) f(binary, message)
  invisible()
}

ws_call_close <- function(func, code, reason) {
  if (length(formals(func)) == 0) func() else func(code, reason)
}

ws_dispatch_close <- function(ws, code, reason) {
  ws$.closed <- list(code = code, reason = reason)
  errors <- 0L
  for (f in ws$.close_callbacks) {
    ok <- tryCatch({
      ws_call_close(f, code, reason)
      TRUE
    }, error = function(e) {
      message("rookd: error in a WebSocket onClose callback: ", conditionMessage(e))
      FALSE
    })
    if (!ok) errors <- errors + 1L
  }
  invisible(errors == 0L)
}

# For rookd's own class only: httpuv's R6 WebSocket objects keep httpuv's printing.
#' @export
print.rookd_websocket <- function(x, ...) {
  cat(sprintf("<rookd WebSocket %s (%s)>\n", x$request$PATH_INFO,
              if (x$isOpen()) "open" else "closed"))
  invisible(x)
}
