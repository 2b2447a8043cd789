#' Moving from httpuv to rookd
#'
#' Code written for httpuv runs on rookd by loading rookd instead: the functions have
#' the same names, arguments (rookd adds `options` last) and return values, visible or
#' invisible as in httpuv. Code that calls `httpuv::` functions, or packages that import
#' them (Shiny, plumber), run on rookd through [with_rookd()] or [use_rookd()], without a
#' change. This page lists what differs, and why.
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
#'     defaults, e.g. 100 MB request bodies and 30 s to send a request's headers. A
#'     framework's own upload limit cannot raise rookd's: for Shiny uploads above 100 MB
#'     (`options(shiny.maxRequestSize = ...)`) or large plumber bodies, pass
#'     `with_rookd(..., options = rookdOptions(max_body_bytes = ...,
#'     max_inflight_bytes = ...))`. A slow upload is not cut at a fixed time:
#'     `body_timeout` bounds each wait and the pace (500 bytes/s), not the whole body.}
#'   \item{Small differences in what apps see}{`CONTENT_LENGTH` is set for a chunked
#'     request body (its real length; httpuv leaves it unset); an unknown status code's
#'     reason phrase is "Unknown" (httpuv: "Dunno"); `rook.errors` has class
#'     `rookd_errors`; a character body of several strings is sent joined with `"\\n"`
#'     (httpuv sends the first).}
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
#'   \item{Server objects}{are environments with httpuv's methods (`stop()`,
#'     `isRunning()`, `getHost()`, `getPort()`, `getStaticPaths()`, ...), not R6
#'     objects: rookd does not depend on R6. `inherits(s, "WebServer")` and
#'     `inherits(s, "Server")` hold as with httpuv.}
#'   \item{`WebSocket`}{httpuv exports its R6 class generator; rookd does not, since
#'     apps never create sockets themselves. The objects `onWSOpen()` receives have the
#'     same fields and methods (see [WebSocket]).}
#'   \item{`ipFamily()`}{is vectorised (httpuv's takes a single string and errors on
#'     more), so `ipFamily(c("::1", "127.0.0.1"))` works.}
#'   \item{`decodeURI()`, `decodeURIComponent()`}{give `NA` with a warning when the
#'     decoded bytes are not valid UTF-8 (httpuv returns a string R cannot print
#'     safely); all four URI functions keep `NA` as `NA` and are vectorised.}
#'   \item{`service()`}{with a negative `timeoutMs` is an R error naming the argument.}
#'   \item{`randomPort()`}{its error has httpuv's class (`httpuv_unavailable_port`, plus
#'     `rookd_unavailable_port`) and message, followed by what was tried.}
#'   \item{`stopServer()`}{on a non-server: the error starts with httpuv's message and
#'     then says what is expected.}
#'   \item{`runStaticServer()`}{prints an IPv6 host in brackets (`http://[::1]:7446`), a
#'     URL that works; httpuv prints `http://::1:7446`.}
#'   \item{Static paths}{answer as httpuv's do (the same request paths, the same
#'     `400`/`403`/`404` bodies; symlinks followed), except where rookd is deliberately
#'     better: other methods than `GET`/`HEAD` get `405` with `Allow` (RFC 9110; httpuv:
#'     `400`); a directory without its trailing slash is redirected (`301`) so relative
#'     links work, as nginx and Apache do (httpuv serves `index.html` at the bare path); a
#'     NUL byte in the path is `400` (httpuv cuts the name at the NUL and serves another
#'     file); a path below a single-file static path is `404` (httpuv: `500`); `HEAD` of
#'     a missing file has no body; registered media types (`text/javascript` for `.mjs`,
#'     `application/wasm`, `font/woff2`, ...; httpuv sends `application/octet-stream`,
#'     which browsers refuse for modules and streamed wasm); error answers carry
#'     `Content-Type: text/plain`; a leading `//` is read as `/`; `ETag`,
#'     `Last-Modified`, `304`/`412` and Range (`206`) are extra; gzip only from 1 KiB,
#'     with `Vary: Accept-Encoding`. The `symlinks` option ("follow", the default and
#'     httpuv's behaviour; "inside"; "refuse") is rookd's own. An app with only
#'     `staticPaths` answers other paths as httpuv does.}
#'   \item{Loading both packages}{when httpuv is loaded after rookd, R prints
#'     "Registered S3 methods overwritten by 'httpuv'" for `format`/`print` of
#'     `staticPath` objects: both packages define them; the objects print either way.}
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
