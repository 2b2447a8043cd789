#' Moving from httpuv to rookd
#'
#' Code written for httpuv runs on rookd by loading rookd instead: the functions have
#' the same names, arguments and return values. This page lists what differs, and why.
#'
#' @section Differences you may notice:
#' \describe{
#'   \item{`QUERY_STRING`}{has no leading `"?"`, as the Rook specification says (httpuv
#'     keeps it). Code that strips it (`sub("^\\\\?", "", q)`, `shiny::parseQueryString()`)
#'     works either way; code that relies on it (plumber) can ask for httpuv's form with
#'     `options = rookdOptions(query_string_question_mark = TRUE)`.}
#'   \item{App errors}{give `500 Internal Server Error` with a generic body; the error
#'     message goes to stderr only (httpuv sends `"ERROR: <message>"` to the client,
#'     which can leak internals).}
#'   \item{A `call()` that returns `NULL`}{gets a 500 (httpuv never answers, leaving
#'     the client hanging).}
#'   \item{Header values with line breaks}{are refused with a 500, except Rook's
#'     convention of several cookies joined with `"\\n"` in one `Set-Cookie` value,
#'     which is sent as several `Set-Cookie` headers (httpuv writes the raw value,
#'     corrupting the response).}
#'   \item{Response header names}{are written in canonical case (`Content-Type`), and
#'     `Date` is always added; `Content-Length` and `Transfer-Encoding` set by the app
#'     are replaced by the real framing.}
#'   \item{IPv6}{`SERVER_NAME`, `SERVER_PORT`, `REMOTE_ADDR` and `REMOTE_PORT` are
#'     filled in for IPv6 connections too (httpuv leaves them empty).}
#'   \item{Malformed requests}{get a `400`/`431`/`505` answer and the connection is
#'     closed (httpuv closes it without a word).}
#'   \item{Compression}{app responses of compressible types (text, JSON, JavaScript,
#'     SVG, ...) of at least 1 KiB are gzipped when the client accepts it, with
#'     `Vary: Accept-Encoding`; turn it off with `rookdOptions(compression = FALSE)`.}
#'   \item{Limits and timeouts}{exist (httpuv has none): see [rookdOptions()] for the
#'     defaults, e.g. 100 MB request bodies and 30 s to send a request's headers.}
#'   \item{WebSocket close}{`onClose` callbacks may take `(code, reason)`; the close
#'     handshake is echoed; invalid UTF-8 text closes with 1007, oversized messages with
#'     1009; permessage-deflate is negotiated. An `onHeaders` rejection of an upgrade
#'     request really rejects it (httpuv opens the socket anyway).}
#'   \item{Header names with `_`}{such as `X_Forwarded_For` are in `HEADERS` but get no
#'     `HTTP_*` variable (httpuv maps them onto `HTTP_X_FORWARDED_FOR`, where a client
#'     can overwrite what a proxy set); see [startServer()].}
#'   \item{WebSocket text with U+0000}{closes the connection with 1003 (httpuv raises
#'     an R error); a close reason holding U+0000 is cut there. See [WebSocket].}
#'   \item{`startServer()` vs `startDaemonizedServer()`}{are the same function: both
#'     serve from background threads, and the app runs whenever R is idle.}
#' }
#'
#' @section What rookd adds:
#' Streaming responses and Server-Sent Events ([streaming]); Unix domain socket servers
#' from the daemonized API ([startPipeServer()]); Range requests, ETags and `304` for
#' static paths; per-server limits ([rookdOptions()]); promise-returning apps
#' (as httpuv).
#'
#' @name migrating-from-httpuv
#' @aliases rookd-vs-httpuv
NULL
