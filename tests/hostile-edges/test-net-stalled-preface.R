# A connection that stops inside what could be the HTTP/2 preface (with `http2` on, the
# engine reads the first bytes to tell HTTP/2 from HTTP/1.1) gets its 408 after
# header_timeout, counted as a reject like any stalled head (before: answered and logged,
# but not counted).

test_that("a head stalled inside the HTTP/2 preface: its 408 is counted in the rejects", {
  skip_if_no_python()
  app <- function(req) list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "ok")
  s <- local_server(app, options = rookdOptions(header_timeout = 1))
  code <- tempfile(fileext = ".py")
  writeLines(c(
    "import socket, sys",
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)",
    "s.sendall(b'PRI * HT')",
    "buf = b''",
    "while True:",
    "    c = s.recv(4096)",
    "    if not c: break",
    "    buf += c",
    "print(buf.split(b'\\r\\n')[0].decode())"), code)
  p <- processx::process$new("python3", c(code, s$getPort()), stdout = "|")
  deadline <- Sys.time() + 15
  while (p$is_alive() && Sys.time() < deadline) later::run_now(0.05)
  expect_match(p$read_all_output_lines()[1], "^HTTP/1.1 408")
  expect_identical(s$stats()$rejects[["408"]], 1)
})
