#' TLS settings for an HTTPS server
#'
#' Serve HTTPS (and WebSockets as `wss://`) by passing `tls = tlsConfig(...)` to
#' [startServer()], [startDaemonizedServer()], [runServer()] or [runStaticServer()].
#' TLS 1.2 and 1.3 only (rustls, with the `ring` provider); ALPN `http/1.1`.
#'
#' The files are read and checked when the server starts (and on each
#' `server$reloadTls()`): a missing or unreadable file, a file with no PEM certificate,
#' a key file with no private key, a key that does not match the certificate, or an
#' unusable `client_ca` is an error naming the file. A certificate that has expired or
#' is not yet valid gives a warning (the server still starts).
#'
#' @section Certificate replacement: A TLS server object has a `reloadTls()` method:
#'   `server$reloadTls()` re-reads the files of its current configuration (say, after
#'   a renewal wrote new ones); `server$reloadTls(tlsConfig(...))` switches to other
#'   files. New connections use the new certificate; connections already open keep
#'   theirs until they close. On error the old certificate stays in use.
#'
#' @section Rook environment: A request over TLS has `rook.url_scheme = "https"`,
#'   `HTTPS = "on"`, and these variables named as Apache's mod_ssl names them:
#'   \describe{
#'   \item{`SSL_PROTOCOL`}{`"TLSv1.3"` or `"TLSv1.2"`.}
#'   \item{`SSL_CIPHER`}{The cipher suite's IANA name, e.g. `"TLS_AES_256_GCM_SHA384"`.}
#'   \item{`SSL_TLS_SNI`}{The host name the client asked for (SNI), when it sent one.}
#'   \item{`SSL_CLIENT_VERIFY`}{`"SUCCESS"` when the client presented a certificate
#'     that was verified against `client_ca`, else `"NONE"`.}
#'   \item{`SSL_CLIENT_S_DN`, `SSL_CLIENT_I_DN`}{The client certificate's subject and
#'     issuer, RFC 4514 style (most specific first: `"CN=alice,O=Example"`).}
#'   \item{`SSL_CLIENT_M_SERIAL`}{Its serial number in upper-case hex.}
#'   \item{`SSL_CLIENT_V_END`}{Its end of validity, `"Dec  2 11:45:36 2027 GMT"`.}
#'   }
#'   The `SSL_CLIENT_*` variables other than `SSL_CLIENT_VERIFY` exist only when a
#'   client certificate was presented. A WebSocket's `request` env has the same.
#'
#' @param cert Path of a PEM file with the server's certificate, followed by any
#'   intermediate certificates (leaf first).
#' @param key Path of a PEM file with its private key (PKCS#8, PKCS#1 or SEC1;
#'   not encrypted).
#' @param client_ca `NULL` (no client certificates), or the path of a PEM file with the
#'   CA certificate(s) client certificates must chain to (mutual TLS).
#' @param client_auth With `client_ca`: `"optional"` (a client without a certificate is
#'   served, `SSL_CLIENT_VERIFY` is `"NONE"`) or `"required"` (its handshake fails).
#' @return A `rookd_tls_config` object (printing it shows the paths, never key material).
#' @seealso [tlsSelfSigned()] for a development certificate; the `tls_handshake_timeout`
#'   option of [rookdOptions()].
#' @examples
#' tls <- tlsSelfSigned()
#' tls
#' s <- startServer("127.0.0.1", 0, function(req) {
#'   list(status = 200L, headers = list(), body = req$SSL_PROTOCOL)
#' }, tls = tls)
#' s
#' s$stop()
#' @export
tlsConfig <- function(cert, key, client_ca = NULL, client_auth = c("optional", "required")) {
  cert <- check_pem_path(cert, "cert")
  key <- check_pem_path(key, "key")
  if (!is.null(client_ca)) {
    client_ca <- check_pem_path(client_ca, "client_ca")
    client_auth <- match.arg(client_auth)
  } else {
    client_auth <- "none"
  }
  structure(
    list(cert = cert, key = key, client_ca = client_ca, client_auth = client_auth, ca_file = NULL),
    class = "rookd_tls_config"
  )
}

check_pem_path <- function(x, arg) {
  if (!is.character(x) || length(x) != 1 || is.na(x) || !nzchar(x)) {
    stop("`", arg, "` must be the path of a PEM file, a single string.", call. = FALSE)
  }
  if (!file.exists(x)) {
    stop("`", arg, "`: file ", x, " does not exist.", call. = FALSE)
  }
  if (dir.exists(x)) {
    stop("`", arg, "`: ", x, " is a directory, not a PEM file.", call. = FALSE)
  }
  normalizePath(x, mustWork = TRUE)
}

#' @export
print.rookd_tls_config <- function(x, ...) {
  cat("<rookd tlsConfig>\n")
  cat("  cert:        ", x$cert, "\n", sep = "")
  cat("  key:         ", x$key, "\n", sep = "")
  if (!is.null(x$client_ca)) {
    cat("  client_ca:   ", x$client_ca, " (client_auth: ", x$client_auth, ")\n", sep = "")
  }
  if (!is.null(x$ca_file)) {
    cat("  ca_file:     ", x$ca_file, " (the development CA clients should trust)\n", sep = "")
  }
  invisible(x)
}

#' A throwaway certificate for local development
#'
#' Makes a new local certificate authority and a server certificate for `hosts` signed
#' by it (ECDSA P-256 keys), writes them as PEM files in `dir` (`ca.pem`, `cert.pem`
#' (the server's certificate followed by the CA's), `key.pem`) and returns a
#' [tlsConfig()] for them whose `ca_file` field is the CA certificate to tell clients
#' to trust (`curl --cacert`, Python's `ssl.create_default_context(cafile = )`).
#' **Development only**: nothing is secret about a CA that tests create and leave on disk.
#'
#' @param hosts DNS names and IP addresses the certificate is for.
#' @param days How many days it is valid (from an hour ago).
#' @param dir Directory for the files (created if needed).
#' @return A `rookd_tls_config`, with `ca_file` set.
#' @examples
#' tls <- tlsSelfSigned(days = 1)
#' tls$ca_file
#' @export
tlsSelfSigned <- function(hosts = c("localhost", "127.0.0.1", "::1"), days = 30, dir = tempfile()) {
  if (!is.character(hosts) || length(hosts) < 1 || anyNA(hosts) || !all(nzchar(hosts))) {
    stop("`hosts` must be a character vector of host names or IP addresses.", call. = FALSE)
  }
  if (!is.numeric(days) || length(days) != 1 || is.na(days) || days < 1 || days > 36500 ||
      days != round(days)) {
    stop("`days` must be a whole number of days from 1 to 36500.", call. = FALSE)
  }
  if (!is.character(dir) || length(dir) != 1 || is.na(dir)) {
    stop("`dir` must be a directory path, a single string.", call. = FALSE)
  }
  pki <- rookd_tls_self_signed(hosts, as.integer(days))
  if (!is.null(pki$error)) stop(pki$error, call. = FALSE)
  dir.create(dir, showWarnings = FALSE, recursive = TRUE)
  paths <- file.path(dir, c("ca.pem", "cert.pem", "key.pem"))
  key_file <- paths[3]
  file.create(key_file)
  Sys.chmod(key_file, "0600")
  writeLines(pki$ca, paths[1], sep = "")
  writeLines(pki$cert, paths[2], sep = "")
  writeLines(pki$key, key_file, sep = "")
  cfg <- tlsConfig(paths[2], key_file)
  cfg$ca_file <- normalizePath(paths[1])
  cfg
}

check_tls <- function(tls) {
  if (!is.null(tls) && !inherits(tls, "rookd_tls_config")) {
    stop("`tls` must be NULL or a tlsConfig().", call. = FALSE)
  }
  tls
}

# Turn the engine's certificate warnings into R warnings.
tls_warnings <- function(w) {
  for (m in w) warning("TLS: ", m, call. = FALSE)
}
