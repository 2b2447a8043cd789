# Large response bodies and WebSocket messages are lent to the engine, not copied:
# what is sent must still be exactly what the app returned, even if R changes the
# vector while it is being sent, and every lent vector must be let go afterwards.

test_that("a large raw body changed by R while it is being sent goes out as returned", {
  skip_if_no_python()
  big <- raw(8 * 1024^2)   # all zeros
  app <- function(req) {
    if (identical(req$PATH_INFO, "/mutate")) {
      big[1:(4 * 1024^2)] <<- as.raw(0xff)   # R copies: the lent vector is shared
      return(list(status = 200L, headers = list(), body = "mutated"))
    }
    list(status = 200L, headers = list("Content-Type" = "application/octet-stream"), body = big)
  }
  s <- local_server(app)
  out <- tempfile()
  # A client that asks for the 8 MB body, then waits 1.5 s before reading it: the body
  # is still being sent (socket buffers are full) when /mutate runs.
  py <- sprintf('
import socket, time
s = socket.create_connection(("127.0.0.1", %d))
s.sendall(b"GET /big HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
time.sleep(1.5)
data = b""
while True:
    d = s.recv(1 << 20)
    if not d: break
    data += d
head, _, body = data.partition(b"\\r\\n\\r\\n")
open(%s, "w").write("%%d %%d" %% (len(body), sum(1 for b in body[:4 << 20] if b)))
', s$getPort(), deparse(out))
  p <- processx::process$new("python3", c("-c", py), stderr = "|")
  pump_for(0.5)
  r <- http_req(server_url(s, "/mutate"))
  expect_identical(r$text, "mutated")
  wait_until(function() !p$is_alive(), timeout = 20, what = "the slow client")
  got <- scan(out, quiet = TRUE)
  expect_identical(got, c(8 * 1024^2, 0))   # full length, and not one 0xff byte
  expect_identical(big[1], as.raw(0xff))    # R's own copy did change
})

test_that("lent vectors are let go once sent (raw and character bodies; streams and WebSockets: their own tests)", {
  big_raw <- as.raw(rep(1:255, length.out = 1024^2))
  big_chr <- strrep("abcdefgh", 64 * 1024)  # 512 KiB of ASCII
  app <- function(req) {
    body <- if (identical(req$PATH_INFO, "/chr")) big_chr else big_raw
    list(status = 200L, headers = list("Content-Type" = "application/octet-stream"), body = body)
  }
  s <- local_server(app)
  for (i in 1:20) {
    r <- http_req(server_url(s, if (i %% 2) "/raw" else "/chr"))
    if (i %% 2) expect_true(identical(r$body, big_raw)) else expect_identical(r$text, big_chr)
  }
  wait_until(function() rookd:::rookd_stats()$lent_vectors == 0L, timeout = 5,
             what = "lent vectors to be released")
  expect_identical(rookd:::rookd_stats()$lent_vectors, 0L)
})

test_that("a character body that is not ASCII or UTF-8 is still sent as UTF-8", {
  latin <- iconv(strrep("caf\u00e9 ", 20000), "UTF-8", "latin1")   # 100 KB, latin1
  expect_identical(Encoding(latin), "latin1")
  s <- local_server(function(req) list(status = 200L, headers = list(), body = latin))
  r <- http_req(server_url(s))
  expect_identical(r$text, strrep("caf\u00e9 ", 20000))
})
