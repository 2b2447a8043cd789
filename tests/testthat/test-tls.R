# HTTPS and WSS: real clients (curl, openssl s_client, Python) against a TLS server.

skip_if_no_openssl <- function() {
  if (!nzchar(Sys.which("openssl"))) testthat::skip("the openssl command is not installed")
}

# Run a command in the background, pumping the event loop until it ends (the app runs
# in this process). Returns list(status, stdout, stderr).
run_pumped <- function(cmd, args, stdin_text = NULL, timeout = 30) {
  stdin <- NULL
  if (!is.null(stdin_text)) {
    stdin <- tempfile("stdin")
    writeBin(charToRaw(stdin_text), stdin)
    on.exit(unlink(stdin), add = TRUE)
  }
  p <- processx::process$new(cmd, args, stdin = stdin, stdout = "|", stderr = "|", cleanup = TRUE)
  out <- character()
  err <- character()
  deadline <- Sys.time() + timeout
  while (p$is_alive()) {
    if (Sys.time() > deadline) {
      p$kill()
      stop(cmd, " did not finish within ", timeout, " s", call. = FALSE)
    }
    later::run_now(0.005)
    out <- c(out, p$read_output())
    err <- c(err, p$read_error())
  }
  out <- c(out, p$read_all_output())
  err <- c(err, p$read_all_error())
  list(status = p$get_exit_status(), stdout = paste(out, collapse = ""), stderr = paste(err, collapse = ""))
}

local_tls_server <- function(app, tls, options = rookdOptions(), .env = parent.frame()) {
  s <- startServer("127.0.0.1", 0, app, options = options, tls = tls)
  withr::defer(try(s$stop(), silent = TRUE), envir = .env)
  s
}

https_url <- function(s, path = "/") sprintf("https://127.0.0.1:%d%s", s$getPort(), path)

# What the app saw, as "NAME=value" lines.
env_app <- function(names) {
  function(req) {
    vals <- vapply(names, function(n) {
      v <- req[[n]]
      if (is.null(v)) "<unset>" else as.character(v)
    }, "")
    list(status = 200L, headers = list("Content-Type" = "text/plain"),
         body = paste0(names, "=", vals, collapse = "\n"))
  }
}

parse_env <- function(text) {
  lines <- strsplit(text, "\n", fixed = TRUE)[[1]]
  stats::setNames(sub("^[^=]*=", "", lines), sub("=.*$", "", lines))
}

s_client <- function(s, extra = character(), stdin_text = "", timeout = 20) {
  run_pumped("openssl", c("s_client", "-connect", sprintf("127.0.0.1:%d", s$getPort()),
                          "-servername", "localhost", extra),
             stdin_text = stdin_text, timeout = timeout)
}

leaf_fingerprint <- function(s_client_stdout) {
  pem <- regmatches(s_client_stdout,
                    regexpr("-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----", s_client_stdout))
  r <- processx::run("openssl", c("x509", "-noout", "-fingerprint", "-sha256"), stdin = {
    f <- tempfile(); writeLines(pem, f); f
  })
  trimws(r$stdout)
}

# A CA made by the openssl command, and certificates it signs (client certificates, a
# server certificate with a chosen validity period).
openssl_ca <- function(dir = tempfile("ca")) {
  dir.create(dir)
  ossl <- function(...) processx::run("openssl", c(...), wd = dir)
  ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/O=Test Org/CN=Test CA")
  writeLines(c("[ca]", "default_ca = d", "[d]", "database = index.txt", "new_certs_dir = .",
               "serial = serial", "default_md = sha256", "unique_subject = no", "policy = p", "copy_extensions = copy",
               "[p]", "commonName = supplied", "organizationName = optional"),
             file.path(dir, "ca.cnf"))
  file.create(file.path(dir, "index.txt"))
  writeLines("01", file.path(dir, "serial"))
  issue <- function(name, subject, ext, start = NULL, end = NULL) {
    ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", paste0(name, ".key"), "-out", paste0(name, ".csr"), "-subj", subject,
         "-addext", ext)
    dates <- if (is.null(start)) c("-days", "30") else c("-startdate", start, "-enddate", end)
    ossl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
         "-in", paste0(name, ".csr"), "-out", paste0(name, ".pem"), "-notext", dates)
    c(cert = file.path(dir, paste0(name, ".pem")), key = file.path(dir, paste0(name, ".key")))
  }
  list(dir = dir, ca = file.path(dir, "ca.pem"), issue = issue)
}

test_that("HTTPS GET and POST with curl trusting the development CA; the env says https", {
  tls <- tlsSelfSigned()
  expect_s3_class(tls, "rookd_tls_config")
  printed <- paste(capture.output(print(tls)), collapse = "\n")
  expect_match(printed, "cert.pem", fixed = TRUE)
  expect_false(grepl("PRIVATE KEY", printed))
  names <- c("rook.url_scheme", "HTTPS", "SSL_PROTOCOL", "SSL_CIPHER", "SSL_TLS_SNI",
             "SSL_CLIENT_VERIFY", "SSL_CLIENT_S_DN")
  s <- local_tls_server(function(req) {
    if (req$REQUEST_METHOD == "POST") {
      body <- req[["rook.input"]]$read()
      return(list(status = 200L, headers = list("Content-Type" = "text/plain"),
                  body = paste("got", length(body), "bytes")))
    }
    env_app(names)(req)
  }, tls)
  expect_output(print(s), "<rookd WebServer https://127.0.0.1:")
  # SNI needs a host name: curl resolves localhost to the server's address.
  opts <- list(cainfo = tls$ca_file, resolve = sprintf("localhost:%d:127.0.0.1", s$getPort()))
  r <- http_req(sprintf("https://localhost:%d/", s$getPort()), opts = opts)
  expect_identical(r$status, 200L)
  env <- parse_env(r$text)
  expect_identical(env[["rook.url_scheme"]], "https")
  expect_identical(env[["HTTPS"]], "on")
  expect_identical(env[["SSL_PROTOCOL"]], "TLSv1.3")
  expect_match(env[["SSL_CIPHER"]], "^TLS_")
  expect_identical(env[["SSL_TLS_SNI"]], "localhost")
  expect_identical(env[["SSL_CLIENT_VERIFY"]], "NONE")
  expect_identical(env[["SSL_CLIENT_S_DN"]], "<unset>")
  r <- http_req(https_url(s), method = "POST", body = "hello", opts = list(cainfo = tls$ca_file))
  expect_identical(r$text, "got 5 bytes")
  # Plain HTTP to the TLS port is not served.
  expect_error(http_req(sprintf("http://127.0.0.1:%d/", s$getPort()), timeout = 5))
})

test_that("10 MB bodies go both ways over HTTPS", {
  tls <- tlsSelfSigned()
  big <- as.raw(rep_len(0:250, 10 * 1024^2))
  s <- local_tls_server(function(req) {
    body <- req[["rook.input"]]$read()
    list(status = 200L, headers = list("Content-Type" = "application/octet-stream",
                                       "X-Got" = as.character(length(body)),
                                       "X-Same" = as.character(identical(body, big))),
         body = rev(body))
  }, tls, options = rookdOptions(max_body_bytes = 64 * 1024^2))
  r <- http_req(https_url(s), method = "POST", body = big, opts = list(cainfo = tls$ca_file),
                timeout = 60)
  expect_identical(hdr(r, "X-Got"), as.character(length(big)))
  expect_identical(hdr(r, "X-Same"), "TRUE")
  expect_identical(r$body, rev(big))
})

test_that("TLS 1.2 is spoken when the client asks for it; TLS 1.1 is refused; ALPN h2 or http/1.1", {
  skip_if_no_openssl()
  tls <- tlsSelfSigned()
  s <- local_tls_server(env_app(c("SSL_PROTOCOL", "SSL_CIPHER")), tls)
  r <- run_pumped("curl", c("-sS", "--cacert", tls$ca_file, "--tls-max", "1.2", https_url(s)))
  expect_identical(r$status, 0L, info = r$stderr)
  env <- parse_env(r$stdout)
  expect_identical(env[["SSL_PROTOCOL"]], "TLSv1.2")
  expect_match(env[["SSL_CIPHER"]], "^TLS_ECDHE_")
  old <- s_client(s, "-tls1_1")
  expect_false(old$status == 0L && grepl("Cipher is TLS", old$stdout))
  for (v in c("-tls1_2", "-tls1_3")) {
    ok <- s_client(s, c(v, "-alpn", "http/1.1"))
    expect_identical(ok$status, 0L, info = paste(v, ok$stderr))
    expect_match(ok$stdout, "ALPN protocol: http/1.1", fixed = TRUE, info = v)
    h2 <- s_client(s, c(v, "-alpn", "h2,http/1.1"))
    expect_identical(h2$status, 0L, info = paste(v, h2$stderr))
    expect_match(h2$stdout, "ALPN protocol: h2", fixed = TRUE, info = v)
  }
})

test_that("with http2 = FALSE only http/1.1 is offered by ALPN", {
  skip_if_no_openssl()
  tls <- tlsSelfSigned()
  s <- local_tls_server(text_app("h1"), tls, options = rookdOptions(http2 = FALSE))
  r <- s_client(s, c("-alpn", "h2,http/1.1"))
  expect_identical(r$status, 0L, info = r$stderr)
  expect_match(r$stdout, "ALPN protocol: http/1.1", fixed = TRUE)
})

test_that("HTTPS speaks HTTP/2 by ALPN: curl, h2load with 100 streams, the Rook env", {
  tls <- tlsSelfSigned()
  s <- local_tls_server(env_app(c("SERVER_PROTOCOL", "HTTPS", "rook.url_scheme", "HTTP_HOST")), tls)
  r <- run_pumped("curl", c("-sS", "--http2", "--cacert", tls$ca_file, "-w", "\nVERSION=%{http_version}",
                            https_url(s)))
  expect_identical(r$status, 0L, info = r$stderr)
  env <- parse_env(r$stdout)
  expect_identical(env[["VERSION"]], "2")
  expect_identical(env[["SERVER_PROTOCOL"]], "HTTP/2.0")
  expect_identical(env[["HTTPS"]], "on")
  expect_identical(env[["rook.url_scheme"]], "https")
  expect_identical(env[["HTTP_HOST"]], sprintf("127.0.0.1:%d", s$getPort()))
  skip_if(!nzchar(Sys.which("h2load")), "h2load (nghttp2-client) is not installed")
  h <- run_pumped("h2load", c("-n", "1000", "-c", "1", "-m", "100", https_url(s)), timeout = 60)
  expect_identical(h$status, 0L, info = h$stderr)
  expect_match(h$stdout, "Application protocol: h2", fixed = TRUE)
  expect_match(h$stdout, "1000 succeeded, 0 failed", fixed = TRUE)
  expect_match(h$stdout, "status codes: 1000 2xx", fixed = TRUE)
})

test_that("garbage instead of a handshake is closed while another client is served", {
  skip_if_no_python()
  tls <- tlsSelfSigned()
  s <- local_tls_server(text_app("fine"), tls)
  code <- sprintf(paste(
    "import socket, time",
    "s = socket.create_connection(('127.0.0.1', %d))",
    "s.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' + b'\\x00' * 5000)",
    "s.settimeout(15)",
    "data = b''",
    "try:",
    "    while True:",
    "        b = s.recv(4096)",
    "        if not b: break",
    "        data += b",
    "except ConnectionResetError:",
    "    pass",
    "print('closed', len(data))", sep = "\n"), s$getPort())
  garbage <- processx::process$new("python3", c("-c", code), stdout = "|", stderr = "|", cleanup = TRUE)
  r <- http_req(https_url(s), opts = list(cainfo = tls$ca_file))
  expect_identical(r$text, "fine")
  wait_until(function() !garbage$is_alive(), timeout = 20, what = "the garbage client")
  expect_match(garbage$read_all_output(), "^closed")
  expect_identical(http_req(https_url(s), opts = list(cainfo = tls$ca_file))$text, "fine")
})

test_that("a client that sends nothing is closed after tls_handshake_timeout", {
  skip_if_no_python()
  tls <- tlsSelfSigned()
  s <- local_tls_server(text_app("fine"), tls,
                        options = rookdOptions(tls_handshake_timeout = 1, header_timeout = 60))
  code <- sprintf(paste(
    "import socket, time",
    "s = socket.create_connection(('127.0.0.1', %d))",
    "s.settimeout(20)",
    "t = time.time()",
    "try:",
    "    b = s.recv(10)",
    "    print('eof' if not b else 'data')",
    "except socket.timeout:",
    "    print('still open')",
    "except ConnectionResetError:",
    "    print('eof')", sep = "\n"), s$getPort())
  r <- run_pumped("python3", c("-c", code), timeout = 30)
  expect_identical(trimws(r$stdout), "eof")
})

test_that("reloadTls: new connections get the new certificate, an open keep-alive one still works", {
  skip_if_no_openssl()
  dir <- tempfile("reload")
  tls1 <- tlsSelfSigned(dir = dir)
  s <- local_tls_server(function(req) {
    list(status = 200L, headers = list("Content-Type" = "text/plain"), body = req$REMOTE_PORT)
  }, tls1)
  fp1 <- leaf_fingerprint(s_client(s, "-showcerts")$stdout)
  expect_match(fp1, "Fingerprint")
  # A keep-alive connection, idle past the parking delay (250 ms) before and after the reload.
  pool <- curl::new_pool()
  h <- curl::new_handle(cainfo = tls1$ca_file, timeout = 10)
  fetch <- function() {
    res <- NULL
    curl::curl_fetch_multi(https_url(s), handle = h, pool = pool,
                           done = function(r) res <<- r, fail = function(e) stop(e))
    wait_until(function() {
      curl::multi_run(timeout = 0, poll = TRUE, pool = pool)
      !is.null(res)
    }, what = "the keep-alive request")
    rawToChar(res$content)
  }
  port1 <- fetch()
  pump_for(1.2)
  expect_identical(fetch(), port1)
  # Same files, new contents (a renewal), then re-read.
  tls2 <- tlsSelfSigned(dir = tempfile("reload2"))
  file.copy(tls2$cert, tls1$cert, overwrite = TRUE)
  file.copy(tls2$key, tls1$key, overwrite = TRUE)
  s$reloadTls()
  fp2 <- leaf_fingerprint(s_client(s, "-showcerts")$stdout)
  expect_false(identical(fp1, fp2))
  pump_for(1.2)
  expect_identical(fetch(), port1)
  # Another config; a bad one leaves the current certificate in place.
  tls3 <- tlsSelfSigned()
  s$reloadTls(tls3)
  fp3 <- leaf_fingerprint(s_client(s, "-showcerts")$stdout)
  expect_false(fp3 %in% c(fp1, fp2))
  bad <- tempfile(fileext = ".pem")
  writeLines("not a certificate", bad)
  expect_error(s$reloadTls(tlsConfig(bad, tls3$key)), "not PEM or holds no certificate")
  expect_identical(leaf_fingerprint(s_client(s, "-showcerts")$stdout), fp3)
  r <- http_req(https_url(s), opts = list(cainfo = tls3$ca_file))
  expect_identical(r$status, 200L)
  plain <- startServer("127.0.0.1", 0, text_app())
  on.exit(plain$stop())
  expect_null(plain$reloadTls)
})

test_that("mutual TLS: required refuses a client without a certificate; the subject reaches the app", {
  skip_if_no_openssl()
  ca <- openssl_ca()
  client <- ca$issue("client", "/O=Test Org/CN=alice", "extendedKeyUsage=clientAuth")
  server <- tlsSelfSigned()
  names <- c("SSL_CLIENT_VERIFY", "SSL_CLIENT_S_DN", "SSL_CLIENT_I_DN", "SSL_CLIENT_M_SERIAL",
             "SSL_CLIENT_V_END")
  tls <- tlsConfig(server$cert, server$key, client_ca = ca$ca, client_auth = "required")
  s <- local_tls_server(env_app(names), tls)
  no_cert <- run_pumped("curl", c("-sS", "--cacert", server$ca_file, https_url(s)))
  expect_false(no_cert$status == 0L)
  with_cert <- run_pumped("curl", c("-sS", "--cacert", server$ca_file, "--cert", client[["cert"]],
                                    "--key", client[["key"]], https_url(s)))
  expect_identical(with_cert$status, 0L, info = with_cert$stderr)
  env <- parse_env(with_cert$stdout)
  expect_identical(env[["SSL_CLIENT_VERIFY"]], "SUCCESS")
  # As OpenSSL writes them in RFC 2253 form (what Apache's mod_ssl shows).
  rfc2253 <- function(what) {
    out <- processx::run("openssl", c("x509", "-in", client[["cert"]], "-noout", what,
                                      "-nameopt", "RFC2253"))$stdout
    sub("^[a-z]+=", "", trimws(out))
  }
  expect_identical(env[["SSL_CLIENT_S_DN"]], rfc2253("-subject"))
  expect_identical(env[["SSL_CLIENT_I_DN"]], rfc2253("-issuer"))
  expect_match(env[["SSL_CLIENT_S_DN"]], "CN=alice", fixed = TRUE)
  serial <- processx::run("openssl", c("x509", "-in", client[["cert"]], "-noout", "-serial"))$stdout
  expect_identical(env[["SSL_CLIENT_M_SERIAL"]], sub("^serial=", "", trimws(serial)))
  expect_match(env[["SSL_CLIENT_V_END"]], "^[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} [0-9]{4} GMT$")
  s$stop()
  optional <- local_tls_server(env_app(names),
                               tlsConfig(server$cert, server$key, client_ca = ca$ca))
  r <- run_pumped("curl", c("-sS", "--cacert", server$ca_file, https_url(optional)))
  expect_identical(r$status, 0L, info = r$stderr)
  env <- parse_env(r$stdout)
  expect_identical(env[["SSL_CLIENT_VERIFY"]], "NONE")
  expect_identical(env[["SSL_CLIENT_S_DN"]], "<unset>")
})

test_that("bad TLS input is a clear R error naming the file; an expired certificate a warning", {
  skip_if_no_openssl()
  good <- tlsSelfSigned()
  app <- text_app()
  missing <- file.path(tempdir(), "no-such-cert.pem")
  expect_error(tlsConfig(missing, good$key), "`cert`: file .*no-such-cert.pem does not exist")
  expect_error(tlsConfig(good$cert, tempdir()), "is a directory")
  expect_error(startServer("127.0.0.1", 0, app, tls = list(cert = "x")), "must be NULL or a tlsConfig")
  not_pem <- tempfile(fileext = ".pem")
  writeLines("hello", not_pem)
  expect_error(startServer("127.0.0.1", 0, app, tls = tlsConfig(not_pem, good$key)),
               paste0(basename(not_pem), " is not PEM or holds no certificate"))
  expect_error(startServer("127.0.0.1", 0, app, tls = tlsConfig(good$cert, good$cert)),
               "cert.pem holds no private key")
  other <- tlsSelfSigned()
  expect_error(startServer("127.0.0.1", 0, app, tls = tlsConfig(good$cert, other$key)),
               "the key in .*key.pem does not match the certificate in .*cert.pem")
  expect_error(startServer("127.0.0.1", 0, app,
                           tls = tlsConfig(good$cert, good$key, client_ca = not_pem)),
               "is not PEM or holds no certificate")
  expect_error(tlsConfig(good$cert, good$key, client_ca = good$ca_file, client_auth = "maybe"),
               "should be one of")
  ca <- openssl_ca()
  old <- ca$issue("expired", "/CN=localhost", "subjectAltName=DNS:localhost",
                  start = "20200101000000Z", end = "20200201000000Z")
  expect_warning(s <- startServer("127.0.0.1", 0, app, tls = tlsConfig(old[["cert"]], old[["key"]])),
                 "expired.pem expired on Feb  1 00:00:00 2020")
  s$stop()
  future <- ca$issue("future", "/CN=localhost", "subjectAltName=DNS:localhost",
                     start = "20990101000000Z", end = "20990201000000Z")
  expect_warning(s <- startServer("127.0.0.1", 0, app,
                                  tls = tlsConfig(future[["cert"]], future[["key"]])),
                 "is not valid before")
  s$stop()
  expect_error(tlsSelfSigned(days = 0), "`days`")
  expect_error(tlsSelfSigned(hosts = character()), "`hosts`")
})

test_that("a WebSocket echoes over wss:// with a client trusting the CA", {
  skip_if_no_python_websockets()
  tls <- tlsSelfSigned()
  store <- new.env()
  s <- local_tls_server(list(
    call = text_app("http"),
    onWSOpen = function(ws) {
      store$scheme <- ws$request$rook.url_scheme
      store$https <- ws$request$HTTPS
      ws$onMessage(function(binary, message) ws$send(message))
    }
  ), tls)
  res <- ws_py(s$getPort(), r"---(
import ssl
async def main():
    ctx = ssl.create_default_context(cafile=ARGS["ca"])
    async with _connect("wss://127.0.0.1:%d/" % PORT, ssl=ctx, open_timeout=10) as ws:
        await ws.send("hello over tls")
        text = await ws.recv()
        await ws.send(b"\x00\x01\x02" * 50000)
        data = await ws.recv()
        return [text, len(data)]
)---", args = list(ca = tls$ca_file))
  expect_identical(res[[1]], "hello over tls")
  expect_identical(res[[2]], 150000L)
  expect_identical(store$scheme, "https")
  expect_identical(store$https, "on")
})

test_that("static paths and streamed bodies are served over HTTPS", {
  tls <- tlsSelfSigned()
  site <- tempfile("site")
  dir.create(site)
  writeLines("<h1>static over tls</h1>", file.path(site, "index.html"))
  i <- 0
  s <- local_tls_server(list(
    call = function(req) {
      i <<- 0
      list(status = 200L, headers = list("Content-Type" = "text/plain"),
           body = function() {
             i <<- i + 1
             if (i > 50) NULL else paste0(strrep("x", 10000), "\n")
           })
    },
    staticPaths = list("/www" = site)
  ), tls)
  r <- http_req(https_url(s, "/www/"), opts = list(cainfo = tls$ca_file))
  expect_identical(r$status, 200L)
  expect_match(r$text, "static over tls", fixed = TRUE)
  r <- http_req(https_url(s, "/stream"), opts = list(cainfo = tls$ca_file))
  expect_identical(nchar(r$text), 50L * 10001L)
})
