#' Find a free TCP port
#'
#' Tries up to `n` random ports in `[min, max]` until one can be bound on `host`.
#' Ports that browsers refuse to connect to (Chrome's list of "unsafe" ports, such as
#' 6000 or 6666-6669) are never picked, as in httpuv.
#'
#' @param min,max The range to pick from (clamped to 1-65535, as in httpuv).
#' @param host The address the port must be free on.
#' @param n How many ports to try before giving up.
#' @return A port number (integer).
#' @section Errors:
#' When no port is free, an error of class
#' `c("rookd_unavailable_port", "httpuv_unavailable_port", "error", "condition")` with
#' a message starting `"Cannot find an available port."` (as recent httpuv versions).
#' @examples
#' randomPort()
#' randomPort(8000, 8100)
#' @export
randomPort <- function(min = 1024L, max = 49151L, host = "127.0.0.1", n = 20) {
  check_host(host)
  ok_number <- function(x) is.numeric(x) && length(x) == 1 && !is.na(x)
  if (!ok_number(min) || !ok_number(max) || !ok_number(n)) {
    stop("`min`, `max` and `n` must be single numbers.", call. = FALSE)
  }
  min <- max(1L, as.integer(min))
  max <- min(as.integer(max), 65535L)
  if (min > max) stop("`min` and `max` must give a range: `min` is greater than `max`.", call. = FALSE)
  valid <- setdiff(seq.int(min, max), unsafe_ports)
  n <- min(n, length(valid))
  candidates <- if (n < 2) valid else valid[sample.int(length(valid), n)]
  for (port in candidates) {
    if (isTRUE(rookd_port_available(host, as.integer(port)))) return(as.integer(port))
  }
  # httpuv's message first, for code that matches it; then what was tried.
  unavailable_port(sprintf("Cannot find an available port. Tried %d port(s) in %d-%d on %s.",
                           length(candidates), min, max, host))
}

# An error of the class httpuv's randomPort()/runStaticServer() signal, plus our own.
unavailable_port <- function(message) {
  cond <- structure(list(message = message, call = NULL),
                    class = c("rookd_unavailable_port", "httpuv_unavailable_port",
                              "error", "condition"))
  stop(cond)
}

# Ports browsers refuse (Chrome's restricted list, the one httpuv avoids too).
unsafe_ports <- c(
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 77, 79, 87, 95, 101,
  102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 139, 143, 179, 389, 427,
  465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 556, 563, 587, 601, 636, 993,
  995, 2049, 3659, 4045, 6000, 6665, 6666, 6667, 6668, 6669, 6697
)

#' IP address family
#'
#' IPv6 addresses may carry a zone ID (`"fe80::1%eth0"`, `"::1%lo0"`): they are IPv6.
#'
#' @param ip A character vector of addresses.
#' @return `4` for IPv4, `6` for IPv6, `-1` for anything else (a host name, `NA`).
#'   Vectorised, where httpuv takes a single string.
#' @examples
#' ipFamily(c("127.0.0.1", "::1", "fe80::1%eth0", "localhost"))
#' @export
ipFamily <- function(ip) {
  if (!is.character(ip)) stop("`ip` must be a character vector.", call. = FALSE)
  one <- function(x) {
    if (is.na(x)) return(-1L)
    family <- rookd_ip_family(x)
    # A zone ID ("%eth0") follows an IPv6 address only: judge the address before it.
    if (family == -1L && grepl("%", x, fixed = TRUE)) {
      addr <- sub("%.*$", "", x)
      if (rookd_ip_family(addr) == 6L) family <- 6L
    }
    family
  }
  vapply(ip, one, integer(1), USE.NAMES = FALSE)
}

#' Load R's random number generator state
#'
#' Makes R's random number generator take its state from `.Random.seed`, as httpuv's
#' `getRNGState()` (which Shiny calls) does. Nothing is created when `.Random.seed` does
#' not exist yet.
#'
#' @return `NULL`, invisibly.
#' @examples
#' set.seed(1)
#' getRNGState()
#' @export
getRNGState <- function() {
  if (exists(".Random.seed", envir = globalenv(), inherits = FALSE)) {
    # RNGkind() reads .Random.seed into the generator and writes the same state back.
    RNGkind()
  }
  invisible(NULL)
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
#' `NA`. `encodeURI()` leaves characters with a meaning in a URI (`;,/?:@&=+$`)
#' alone; `encodeURIComponent()` encodes them too. `decodeURI()` does not decode
#' escapes of those characters; `decodeURIComponent()` decodes everything. As in httpuv
#' (and unlike JavaScript), `#` is not among them: `encodeURI()` encodes it as `%23`
#' and `decodeURI()` decodes `%23`. A `%` not
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
encodeURI <- function(value) {
  out <- uri_op(value, 1L, "encoded")
  # httpuv encodes "#" (JavaScript keeps it); the only "#" left in the output are the
  # input's own.
  out[] <- gsub("#", "%23", out, fixed = TRUE)
  out
}

#' @rdname encodeURI
#' @export
encodeURIComponent <- function(value) uri_op(value, 2L, "encoded")

#' @rdname encodeURI
#' @export
decodeURI <- function(value) {
  if (is.character(value)) {
    # httpuv decodes "%23" (JavaScript keeps it): turn it into "#" first, which the
    # decoder then leaves alone. "%2523" has no "%23" in it, so it still gives "%23".
    value[] <- gsub("%23", "#", value, ignore.case = TRUE)
  }
  uri_op(value, 3L, "decoded")
}

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
