#' Find a free TCP port
#'
#' Tries random ports in `[min, max]` until one can be bound on `host`.
#'
#' @param min,max The range to pick from.
#' @param host The address the port must be free on.
#' @param n How many ports to try before giving up.
#' @return A port number (integer).
#' @examples
#' randomPort()
#' @export
randomPort <- function(min = 1024L, max = 49151L, host = "127.0.0.1", n = 20) {
  check_host(host)
  if (!is.numeric(min) || !is.numeric(max) || min < 1 || max > 65535 || min > max) {
    stop("`min` and `max` must give a range within 1-65535.", call. = FALSE)
  }
  candidates <- if (max - min + 1 <= n) seq.int(min, max) else sample.int(max - min + 1, n) + min - 1
  for (port in candidates) {
    if (rookd_port_available(host, as.integer(port))) return(as.integer(port))
  }
  stop("Cannot find an available port on ", host, " in ", min, "-", max, " after ", n,
       " tries.", call. = FALSE)
}

#' IP address family
#'
#' @param ip A character vector of addresses.
#' @return `4` for IPv4, `6` for IPv6, `-1` for anything else (vectorised; `NA` gives `-1`).
#' @examples
#' ipFamily(c("127.0.0.1", "::1", "localhost"))
#' @export
ipFamily <- function(ip) {
  if (!is.character(ip)) stop("`ip` must be a character vector.", call. = FALSE)
  vapply(ip, function(x) if (is.na(x)) -1L else rookd_ip_family(x), integer(1), USE.NAMES = FALSE)
}

uri_op <- function(value, op, what) {
  if (!is.character(value)) {
    stop("`value` must be a character vector.", call. = FALSE)
  }
  res <- rookd_uri(enc2utf8(value), op)
  if (res$malformed > 0) {
    warning(res$malformed, " value(s) could not be ", what,
            " (malformed UTF-8 after decoding); NA returned for them.", call. = FALSE)
  }
  out <- res$value
  attributes(out) <- attributes(value)
  out
}

#' URI encoding and decoding
#'
#' The JavaScript functions of the same names, over UTF-8 and vectorised: `NA` stays
#' `NA`. `encodeURI()` leaves characters with a meaning in a URI (`;,/?:@&=+$#`)
#' alone; `encodeURIComponent()` encodes them too. `decodeURI()` does not decode
#' escapes of those characters; `decodeURIComponent()` decodes everything. A `%` not
#' followed by two hex digits is kept as it is; an escape sequence that is not valid
#' UTF-8 gives `NA` with a warning (where JavaScript throws).
#'
#' @param value A character vector.
#' @return A character vector the same shape as `value`.
#' @examples
#' encodeURI("http://example.com/a b?q=ü#top")
#' encodeURIComponent("a/b?c=d")
#' decodeURIComponent("%C3%BC%20x")
#' @export
encodeURI <- function(value) uri_op(value, 1L, "encoded")

#' @rdname encodeURI
#' @export
encodeURIComponent <- function(value) uri_op(value, 2L, "encoded")

#' @rdname encodeURI
#' @export
decodeURI <- function(value) uri_op(value, 3L, "decoded")

#' @rdname encodeURI
#' @export
decodeURIComponent <- function(value) uri_op(value, 4L, "decoded")

#' Base64 encoding of a raw vector
#'
#' @param x A raw vector.
#' @return A single string.
#' @examples
#' rawToBase64(charToRaw("hello"))
#' @export
rawToBase64 <- function(x) {
  if (!is.raw(x)) stop("`x` must be a raw vector.", call. = FALSE)
  rookd_base64(x)
}
