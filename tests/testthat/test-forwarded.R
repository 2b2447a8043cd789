# Behind a reverse proxy: X-Forwarded-* and Forwarded are believed only from a peer in
# trusted_proxies (real curl requests over loopback; 127.0.0.2 plays an untrusted client).

fwd_app <- function(store) {
  function(req) {
    store$env <- mget(c("REMOTE_ADDR", "REMOTE_PORT", "rook.url_scheme", "HTTP_HOST",
                        "SERVER_NAME", "SERVER_PORT", "HTTP_X_FORWARDED_FOR"),
                      envir = req, ifnotfound = list(NULL))
    store$https <- req[["HTTPS"]]
    list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "ok")
  }
}

get_env <- function(s, store, headers = character(), from = NULL) {
  store$env <- NULL
  opts <- if (is.null(from)) list() else list(interface = from)
  r <- http_req(server_url(s, "/"), headers = headers, opts = opts)
  expect_identical(r$status, 200L)
  store$env
}

test_that("trusted_proxies is validated with a clear error", {
  expect_error(rookdOptions(trusted_proxies = "10.0.0.0/33"), "trusted_proxies.*prefix length")
  expect_error(rookdOptions(trusted_proxies = c("127.0.0.1", "localhost")), "trusted_proxies.*localhost")
  expect_error(rookdOptions(trusted_proxies = NA_character_), "trusted_proxies")
  expect_error(rookdOptions(trusted_proxies = 1), "trusted_proxies")
  o <- rookdOptions(trusted_proxies = c("127.0.0.1", "::1", "10.0.0.0/8", "2001:db8::/32", "unix"))
  expect_identical(o$trusted_proxies[3], "10.0.0.0/8")
  expect_error(rookdOptions(proxy_protocol = NA), "proxy_protocol")
})

test_that("X-Forwarded-* from a trusted peer set REMOTE_ADDR, scheme and host", {
  store <- new.env()
  s <- local_server(fwd_app(store), options = rookdOptions(trusted_proxies = "127.0.0.1"))
  e <- get_env(s, store, c("X-Forwarded-For: 6.6.6.6, 203.0.113.5",
                           "X-Forwarded-Proto: https", "X-Forwarded-Host: app.example.org"))
  expect_identical(e$REMOTE_ADDR, "203.0.113.5")
  expect_identical(e$REMOTE_PORT, "")
  expect_identical(e$rook.url_scheme, "https")
  expect_identical(store$https, "on")
  expect_identical(e$HTTP_HOST, "app.example.org")
  expect_identical(e$SERVER_NAME, "app.example.org")
  expect_identical(e$SERVER_PORT, "443")
  # The raw header stays visible.
  expect_identical(e$HTTP_X_FORWARDED_FOR, "6.6.6.6, 203.0.113.5")
  e <- get_env(s, store, c("X-Forwarded-For: [2001:db8::9]:4711", "X-Forwarded-Host: h.example:8443"))
  expect_identical(e$REMOTE_ADDR, "2001:db8::9")
  expect_identical(e$REMOTE_PORT, "4711")
  expect_identical(e$rook.url_scheme, "http")
  expect_identical(e$SERVER_PORT, "8443")
})

test_that("RFC 7239 Forwarded is used when no X-Forwarded-* is present", {
  store <- new.env()
  s <- local_server(fwd_app(store), options = rookdOptions(trusted_proxies = c("127.0.0.1", "10.0.0.0/8")))
  e <- get_env(s, store, 'Forwarded: for=6.6.6.6;proto=http, for="[2001:db8:cafe::17]:4711";proto=https;host=w.example, for=10.0.0.2')
  expect_identical(e$REMOTE_ADDR, "2001:db8:cafe::17")
  expect_identical(e$REMOTE_PORT, "4711")
  expect_identical(e$rook.url_scheme, "https")
  expect_identical(e$HTTP_HOST, "w.example")
  # Obfuscated identifiers and "unknown" are ignored: the socket's address stays.
  e <- get_env(s, store, "Forwarded: for=_hidden")
  expect_identical(e$REMOTE_ADDR, "127.0.0.1")
  e <- get_env(s, store, "Forwarded: for=unknown;proto=https")
  expect_identical(e$REMOTE_ADDR, "127.0.0.1")
  expect_identical(e$rook.url_scheme, "http")
})

test_that("headers from an untrusted peer are ignored, spoofing included", {
  store <- new.env()
  s <- local_server(fwd_app(store), options = rookdOptions(trusted_proxies = "127.0.0.1"))
  e <- get_env(s, store, c("X-Forwarded-For: 6.6.6.6", "X-Forwarded-Proto: https",
                           "X-Forwarded-Host: evil.example"), from = "127.0.0.2")
  expect_identical(e$REMOTE_ADDR, "127.0.0.2")
  expect_identical(e$rook.url_scheme, "http")
  expect_identical(e$SERVER_NAME, "127.0.0.1")
  expect_identical(e$HTTP_X_FORWARDED_FOR, "6.6.6.6")
  # Without trusted_proxies (the default), nothing is believed even from loopback.
  s2 <- local_server(fwd_app(store))
  e <- get_env(s2, store, "X-Forwarded-For: 6.6.6.6")
  expect_identical(e$REMOTE_ADDR, "127.0.0.1")
  # Garbage and forged hosts from a trusted peer change nothing.
  e <- get_env(s, store, c("X-Forwarded-For: <script>alert(1)</script>",
                           "X-Forwarded-Host: evil.example/x?y", "X-Forwarded-Proto: javascript"))
  expect_identical(e$REMOTE_ADDR, "127.0.0.1")
  expect_identical(e$rook.url_scheme, "http")
  expect_identical(e$SERVER_NAME, "127.0.0.1")
  # An overlong chain of trusted hops proves nothing.
  e <- get_env(s, store, paste0("X-Forwarded-For: 1.2.3.4, ", paste(rep("127.0.0.1", 200), collapse = ", ")))
  expect_identical(e$REMOTE_ADDR, "127.0.0.1")
})

test_that("the forwarded client reaches onWSOpen's env too", {
  skip_if_no_python_websockets()
  store <- new.env()
  app <- list(
    call = function(req) list(status = 404L, headers = list(), body = ""),
    onWSOpen = function(ws) {
      store$addr <- ws$request$REMOTE_ADDR
      store$scheme <- ws$request$rook.url_scheme
      ws$onMessage(function(binary, message) ws$send(message))
    }
  )
  s <- local_server(app, options = rookdOptions(trusted_proxies = "127.0.0.1"))
  got <- ws_py(s$getPort(), '
async def main():
    async with connect("/", {"X-Forwarded-For": "198.51.100.77", "X-Forwarded-Proto": "https"}) as ws:
        await ws.send("hi")
        return await ws.recv()
')
  expect_identical(got, "hi")
  expect_identical(store$addr, "198.51.100.77")
  expect_identical(store$scheme, "https")
})
