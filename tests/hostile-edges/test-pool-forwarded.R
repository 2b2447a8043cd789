# The app in a worker sees the client (address, port, scheme, host), never the front;
# a client cannot forge it; the workers are reachable only through the front (Unix
# sockets in a private directory); the sticky cookie is Secure on https.

py_as_client <- paste0(py_raw_request, '
port = int(sys.argv[1])
def show(data, src):
    r = request(port, data, src=src)
    head, _, body = r.partition("\\r\\n\\r\\n")
    print(body)
    print([l for l in head.split("\\r\\n") if l.lower().startswith("set-cookie:")])
')

test_that("REMOTE_ADDR, REMOTE_PORT, rook.url_scheme and HTTP_HOST are the client's; forged XFF is not believed", {
  skip_if_no_python()
  p <- edge_pool(workers = 1)
  out <- py_run(paste0(py_as_client, '
show(b"GET / HTTP/1.1\\r\\nHost: app.example:8080\\r\\n\\r\\n", "127.0.0.5")
show(b"GET / HTTP/1.1\\r\\nHost: app.example\\r\\nX-Forwarded-For: 6.6.6.6\\r\\nX-Forwarded-Proto: https\\r\\nX-Forwarded-Host: evil.example\\r\\nForwarded: for=7.7.7.7;proto=https\\r\\n\\r\\n", "127.0.0.6")
'), p$getPort())
  a <- edge_fields(out[1])
  expect_equal(a$remote_addr, "127.0.0.5")
  expect_true(as.integer(a$remote_port) > 0)
  expect_equal(a$scheme, "http")
  expect_equal(a$host, "app.example:8080")
  b <- edge_fields(out[3])
  expect_equal(b$remote_addr, "127.0.0.6")
  expect_equal(b$scheme, "http")
  expect_equal(b$host, "app.example")
  expect_false(grepl("6.6.6.6", b$xff, fixed = TRUE))
})

test_that("behind a trusted proxy the front believes it, and the cookie is Secure on https", {
  skip_if_no_python()
  p <- edge_pool(workers = 1, sticky = "cookie",
                 options = rookdOptions(trusted_proxies = "127.0.0.7"))
  out <- py_run(paste0(py_as_client, '
show(b"GET / HTTP/1.1\\r\\nHost: inner\\r\\nX-Forwarded-For: 1.2.3.4, 203.0.113.9\\r\\nX-Forwarded-Proto: https\\r\\nX-Forwarded-Host: shop.example\\r\\n\\r\\n", "127.0.0.7")
show(b"GET / HTTP/1.1\\r\\nHost: inner\\r\\nX-Forwarded-For: 203.0.113.9\\r\\nX-Forwarded-Proto: https\\r\\n\\r\\n", "127.0.0.8")
'), p$getPort())
  a <- edge_fields(out[1])
  expect_equal(a$remote_addr, "203.0.113.9")
  expect_equal(a$scheme, "https")
  expect_equal(a$host, "shop.example")
  expect_match(out[2], "rookd_worker=w[0-9]+; Path=/; HttpOnly; SameSite=Lax; Secure")
  b <- edge_fields(out[3])
  expect_equal(b$remote_addr, "127.0.0.8")     # not a trusted proxy: its word is ignored
  expect_equal(b$scheme, "http")
  expect_false(grepl("Secure", out[4]))
})

test_that("startWorkers(options =) reaches the workers' servers", {
  code <- 'app <- function(req) list(status = 200L, headers = list("Content-Type" = "text/plain"),
                                     body = strrep("x", 5000))'
  p <- edge_pool(code, workers = 1, options = rookdOptions(compression = FALSE))
  r <- http_req(paste0("http://127.0.0.1:", p$getPort(), "/"), headers = "Accept-Encoding: gzip")
  expect_null(hdr(r, "content-encoding"))
  q <- edge_pool(code, workers = 1)
  r <- http_req(paste0("http://127.0.0.1:", q$getPort(), "/"), headers = "Accept-Encoding: gzip")
  expect_equal(hdr(r, "content-encoding"), "gzip")
})

test_that("workers listen on Unix sockets in a 0700 directory, on no TCP port", {
  p <- edge_pool(workers = 2)
  w <- p$workers()
  socks <- w$socket
  expect_length(socks, 2)
  for (s in socks) {
    expect_true(file.exists(s))
    expect_equal(file.info(s)$mode & as.octmode("0077"), as.octmode("0"))
  }
  d <- unique(dirname(socks))
  expect_length(d, 1)
  expect_equal(format(file.info(d)$mode), "700")
  # No worker listens on TCP: /proc/<pid>/net/tcp{,6} lists the listening sockets of
  # the namespace; match their inodes against the worker's descriptors.
  for (pid in w$pid) {
    inodes <- sub("^socket:\\[([0-9]+)\\]$", "\\1",
                  Sys.readlink(list.files(sprintf("/proc/%d/fd", pid), full.names = TRUE)))
    listening <- unlist(lapply(c("tcp", "tcp6"), function(f) {
      l <- readLines(sprintf("/proc/%d/net/%s", pid, f))[-1]
      parts <- strsplit(trimws(l), " +")
      vapply(Filter(function(x) x[4] == "0A", parts), `[`, "", 10)
    }))
    expect_length(intersect(inodes, listening), 0)
  }
  expect_equal(http_req(paste0("http://127.0.0.1:", p$getPort(), "/"))$status, 200)
})

test_that("over TLS on the front the app sees https and the sticky cookie is Secure", {
  tls <- tlsSelfSigned()
  p <- edge_pool(workers = 1, sticky = "cookie", tls = tls)
  url <- paste0("https://127.0.0.1:", p$getPort(), "/")
  r <- http_req(url, opts = list(ssl_verifypeer = FALSE, ssl_verifyhost = FALSE))
  expect_equal(r$status, 200)
  f <- edge_fields(r$text)
  expect_equal(f$scheme, "https")
  expect_equal(f$remote_addr, "127.0.0.1")
  expect_match(hdr(r, "set-cookie"), "; Secure$")
  expect_error(startWorkers(edge_app_file(edge_app_code), port = 0, tls = "cert.pem"), "tlsConfig")
})
