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
