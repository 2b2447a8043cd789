#' Streaming responses and Server-Sent Events
#'
#' A response body may be a function. rookd then sends the response with chunked
#' encoding and calls the function for each next piece, only once the previous one has
#' been written to the client, so a body of any size (or one that never ends) streams
#' with flat memory. The function takes no arguments and returns:
#' \itemize{
#'   \item a raw vector or a character vector (the next chunk; empty ones are skipped),
#'   \item `NULL` to end the response,
#'   \item or a promise (from the promises package) of either, for data that is not there
#'     yet: Server-Sent Events, long polls, live feeds. Other requests are served while
#'     it is pending.
#' }
#' An error in the function (or a rejected promise) cuts the response short, so the
#' client can tell it is incomplete. When the client goes away the function is no
#' longer called. httpuv cannot stream responses.
#'
#' @name streaming
#' @seealso [sseEvent()] to format Server-Sent Events.
#' @examples
#' # 100 chunks of 1 MB, generated as the client reads them
#' big_app <- function(req) {
#'   i <- 0
#'   list(status = 200L,
#'        headers = list("Content-Type" = "application/octet-stream"),
#'        body = function() {
#'          i <<- i + 1
#'          if (i > 100) NULL else as.raw(rep(i %% 256, 1024^2))
#'        })
#' }
#'
#' # Server-Sent Events: one event a second, five in all
#' sse_app <- function(req) {
#'   n <- 0
#'   list(status = 200L,
#'        headers = list("Content-Type" = "text/event-stream", "Cache-Control" = "no-cache"),
#'        body = function() {
#'          n <<- n + 1
#'          if (n > 5) return(NULL)
#'          promises::promise(function(resolve, reject) {
#'            later::later(function() resolve(sseEvent(format(Sys.time()), id = n)), 1)
#'          })
#'        })
#' }
NULL

#' Format a Server-Sent Event
#'
#' @param data The event's data (a string; line breaks become several `data:` lines).
#' @param event Optional event type.
#' @param id Optional event id.
#' @param retry Optional reconnection time in milliseconds.
#' @return A single string, ready to be a chunk of a `text/event-stream` body
#'   (see [streaming]).
#' @examples
#' cat(sseEvent("hello\nworld", event = "greeting", id = 1))
#' @export
sseEvent <- function(data, event = NULL, id = NULL, retry = NULL) {
  if (!is.character(data) && !is.numeric(data)) {
    stop("`data` must be a string.", call. = FALSE)
  }
  lines <- strsplit(paste(data, collapse = "\n"), "\r\n|\r|\n")[[1]]
  if (!length(lines)) lines <- ""
  no_breaks <- function(x, what) {
    x <- as.character(x)
    if (length(x) != 1 || is.na(x) || grepl("[\r\n]", x)) {
      stop("`", what, "` must be a single line of text.", call. = FALSE)
    }
    x
  }
  out <- character()
  if (!is.null(event)) out <- c(out, paste0("event: ", no_breaks(event, "event")))
  if (!is.null(id)) out <- c(out, paste0("id: ", no_breaks(id, "id")))
  if (!is.null(retry)) out <- c(out, paste0("retry: ", no_breaks(as.integer(retry), "retry")))
  out <- c(out, paste0("data: ", lines))
  paste0(paste(out, collapse = "\n"), "\n\n")
}

# The bridge hands a generator's promise here (src/rust/bridge/src/stream.rs).
stream_promise_then <- function(promise, token) {
  promises::then(
    promise,
    onFulfilled = function(value) rookd_stream_settle(token, value, TRUE),
    onRejected = function(error) {
      message("rookd: error in a streamed body's promise: ", conditionMessage(error))
      rookd_stream_settle(token, NULL, FALSE)
    }
  )
  invisible()
}
