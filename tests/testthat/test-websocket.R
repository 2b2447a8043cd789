# WebSockets end to end: real sockets on loopback, Python clients (the `websockets`
# library, or a byte-level client on a plain socket) in a child process while this
# process runs the event loop (see helper-websocket.R).

test_that("text and binary messages echo; text arrives in R marked UTF-8", {
  store <- new.env()
  utf8 <- "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c \U0001F389"
  s <- local_server(ws_record_app(store, on_message = function(ws, binary, message) {
    if (!binary && identical(message, "latin1 please")) {
      ws$send(iconv("caf\u00e9", "UTF-8", "latin1"))  # a latin1 string goes out as UTF-8
    } else {
      ws$send(message)
    }
  }))
  res <- ws_py(s$getPort(), r"---(
async def main():
    msgs = ["hello", "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c \U0001F389", "",
            bytes([0, 1, 2, 255, 254, 0]), b""]
    out = []
    async with connect("/echo") as ws:
        for m in msgs:
            await ws.send(m)
            r = await asyncio.wait_for(ws.recv(), 10)
            out.append({"same": r == m, "type": type(r).__name__})
        await ws.send("latin1 please")
        out.append({"text": await asyncio.wait_for(ws.recv(), 10)})
    return out
)---")
  expect_true(all(vapply(res[1:5], function(r) isTRUE(r$same), TRUE)))
  expect_identical(vapply(res[1:5], function(r) r$type, ""), c("str", "str", "str", "bytes", "bytes"))
  expect_identical(res[[6]]$text, "caf\u00e9")

  m <- store$messages
  expect_length(m, 6)
  expect_identical(vapply(m, function(x) x$binary, TRUE), c(FALSE, FALSE, FALSE, TRUE, TRUE, FALSE))
  expect_identical(m[[1]]$message, "hello")
  expect_identical(m[[2]]$message, utf8)
  expect_identical(Encoding(m[[2]]$message), "UTF-8")
  expect_identical(nchar(m[[2]]$message), 18L)
  expect_identical(m[[3]]$message, "")
  expect_identical(m[[4]]$message, as.raw(c(0, 1, 2, 255, 254, 0)))
  expect_identical(m[[5]]$message, raw(0))
})

test_that("a 16 MB message goes each way", {
  skip_if_slow_disabled()
  n <- 16 * 1024^2
  store <- new.env()
  s <- local_server(ws_record_app(store, on_message = function(ws, binary, message) {
    store$got_len <- length(message)
    store$got_ok <- identical(message, ws_pattern(n))
    ws$send(message)                      # 16 MB binary back
    ws$send(strrep("0123456789abcdef", n / 16))  # and 16 MB of text
  }))
  res <- ws_py(s$getPort(), r"---(
async def main():
    n = ARGS["n"]
    data = pattern(n)
    async with connect("/big") as ws:
        await ws.send(data)
        back = await asyncio.wait_for(ws.recv(), 30)
        text = await asyncio.wait_for(ws.recv(), 30)
    return {"binary_ok": back == data, "binary_len": len(back), "text_type": type(text).__name__,
            "text_ok": text == "0123456789abcdef" * (n // 16)}
)---", args = list(n = n), timeout = 60)
  expect_identical(store$got_len, as.integer(n))
  expect_true(store$got_ok)
  expect_true(res$binary_ok)
  expect_identical(res$binary_len, as.integer(n))
  expect_identical(res$text_type, "str")
  expect_true(res$text_ok)
  # Both 16 MB sends were lent to the engine without a copy, and let go once written.
  wait_until(function() rookd:::rookd_stats()$lent_vectors == 0L, timeout = 10,
             what = "lent messages to be released")
})

test_that("a fragmented message (raw client, pings in between) reaches R whole", {
  store <- new.env()
  s <- local_server(ws_record_app(store))
  res <- ws_py(s$getPort(), r"---(
def main():
    c = Raw("/frag")
    out = {"status": c.status, "accept_ok": c.accept_ok}
    text = "fr\u00e4gment \u2713 done".encode()
    # split inside the multi-byte characters, with a ping between fragments
    c.send_frame(1, text[:3], fin=False)
    c.send_frame(9, b"ping!")
    c.send_frame(0, text[3:12], fin=False)
    fin, rsv1, op, data = c.read_frame()
    out["pong"] = [op, data.decode()]
    c.send_frame(0, text[12:], fin=True)
    op, data, _ = c.recv_message()
    out["text"] = [op, data.decode()]
    c.send_frame(2, bytes([1, 2]), fin=False)
    c.send_frame(0, bytes([3]), fin=False)
    c.send_frame(0, bytes([4, 5]), fin=True)
    op, data, _ = c.recv_message()
    out["binary"] = [op, list(data)]
    out["close"] = c.close(1000, "done")[0]
    return out
)---")
  expect_identical(res$status, 101L)
  expect_true(res$accept_ok)
  expect_identical(res$pong, list(10L, "ping!"))
  expect_identical(res$text, list(1L, "fr\u00e4gment \u2713 done"))
  expect_identical(unlist(res$binary[[2]]), 1:5)
  expect_identical(res$binary[[1]], 2L)
  expect_identical(res$close, 1000L)  # the server echoes the code
  expect_length(store$messages, 2)
  expect_identical(store$messages[[1]]$message, "fr\u00e4gment \u2713 done")
  expect_identical(store$messages[[2]]$message, as.raw(1:5))
  wait_until(function() length(store$closes) == 1, what = "onClose")
  expect_identical(store$closes[[1]], list(code = 1000L, reason = "done"))
})

test_that("a close from the client reaches onClose(code, reason); no-arg onClose works too", {
  store <- new.env()
  store$noarg <- 0L
  s <- local_server(ws_record_app(store, on_open = function(ws) {
    ws$onClose(function() store$noarg <- store$noarg + 1L)
  }))
  res <- ws_py(s$getPort(), r"---(
async def main():
    async with connect("/c") as ws:
        await ws.send("hi")
        await asyncio.wait_for(ws.recv(), 10)
        await ws.close(code=4000, reason="client bye")
        return ws.close_code
)---")
  # the server answers the close with the same code
  expect_identical(res, 4000L)
  wait_until(function() length(store$closes) == 1 && store$noarg == 1L, what = "both onClose callbacks")
  expect_identical(store$closes[[1]], list(code = 4000L, reason = "client bye"))
  pump_for(0.2)
  expect_identical(store$noarg, 1L)  # once only
  expect_length(store$closes, 1)

  # A close frame without a code: R sees 1005 (no status received).
  res <- ws_py(s$getPort(), r"---(
def main():
    c = Raw("/c2")
    return c.close(None)
)---")
  wait_until(function() length(store$closes) == 2, what = "the second onClose")
  expect_identical(store$closes[[2]]$code, 1005L)
})

test_that("ws$close(4001, 'bye') from R reaches the client; send on a closed socket is a no-op", {
  store <- new.env()
  s <- local_server(ws_record_app(store, on_message = function(ws, binary, message) {
    if (identical(message, "close me")) ws$close(4001L, "bye") else ws$send(message)
  }))
  res <- ws_py(s$getPort(), r"---(
async def main():
    async with connect("/x") as ws:
        await ws.send("one")
        first = await asyncio.wait_for(ws.recv(), 10)
        await ws.send("close me")
        return {"first": first, "close": await recv_close(ws)}
)---")
  expect_identical(res$first, "one")
  expect_identical(res$close, list(4001L, "bye"))
  wait_until(function() length(store$closes) == 1, what = "onClose")
  expect_identical(store$closes[[1]]$code, 4001L)

  ws <- store$sockets[[1]]
  expect_false(ws$isOpen())
  expect_silent(ws$send("after close"))
  expect_silent(ws$send(as.raw(1:3)))
  expect_silent(ws$close())
  # A code that may not be sent is an R error, not a quiet 1000.
  expect_error(ws$close(99999), "1000-1003, 1007-1014 or 3000-4999")
  expect_error(ws$close(1005L, "x"), "may be sent")
  expect_error(ws$close(4000.5), "may be sent")
  expect_false(withVisible(ws$send("x"))$visible)
  # an onClose registered after the close still runs, with the code
  late <- NULL
  ws$onClose(function(code, reason) late <<- code)
  wait_until(function() !is.null(late), what = "the late onClose")
  expect_identical(late, 4001L)
})

test_that("several onMessage callbacks run in order; unregistering one stops it", {
  store <- new.env()
  store$log <- character()
  app <- list(
    call = text_app("ok"),
    onWSOpen = function(ws) {
      off_a <- ws$onMessage(function(binary, message) {
        store$log <- c(store$log, paste0("a:", message))
      })
      ws$onMessage(function(binary, message) {
        store$log <- c(store$log, paste0("b:", message))
        if (identical(message, "1")) off_a()
        ws$send(paste0("done ", message))
      })
    }
  )
  s <- local_server(app)
  res <- ws_py(s$getPort(), r"---(
async def main():
    out = []
    async with connect("/multi") as ws:
        for m in ["1", "2"]:
            await ws.send(m)
            out.append(await asyncio.wait_for(ws.recv(), 10))
    return out
)---")
  expect_identical(unlist(res), c("done 1", "done 2"))
  expect_identical(store$log, c("a:1", "b:1", "b:2"))
})

test_that("messages that arrive before onMessage is registered are kept, in order", {
  store <- new.env()
  store$got <- character()
  app <- list(
    call = text_app("ok"),
    onWSOpen = function(ws) {
      force(ws)  # see "onWSOpen's ws is still the WebSocket when used later" below
      later::later(function() {
        ws$onMessage(function(binary, message) {
          store$got <- c(store$got, message)
          ws$send(message)
        })
      }, 0.5)
    }
  )
  s <- local_server(app)
  res <- ws_py(s$getPort(), r"---(
async def main():
    async with connect("/late") as ws:
        for m in ["m1", "m2", "m3"]:
            await ws.send(m)
        out = [await asyncio.wait_for(ws.recv(), 10) for _ in range(3)]
        await ws.send("m4")
        out.append(await asyncio.wait_for(ws.recv(), 10))
        return out
)---")
  expect_identical(unlist(res), c("m1", "m2", "m3", "m4"))
  expect_identical(store$got, c("m1", "m2", "m3", "m4"))
})

test_that("onWSOpen's ws is still the WebSocket when first used later (lazy argument)", {
  # R passes arguments lazily: an app that only uses `ws` in a callback that runs after
  # onWSOpen returned forces the argument then, and must still get its WebSocket.
  store <- new.env()
  app <- list(
    call = text_app("ok"),
    onWSOpen = function(ws) {
      later::later(function() {
        store$class <- class(ws)
        ws$send("hello from later")
      }, 0.2)
    }
  )
  s <- local_server(app)
  res <- tryCatch(ws_py(s$getPort(), r"---(
async def main():
    async with connect("/lazy") as ws:
        return await asyncio.wait_for(ws.recv(), 5)
)---"), error = function(e) e)
  expect_no_loop_error(res)
  expect_identical(store$class[[1]], "WebSocket")
  expect_identical(res, "hello from later")
})

test_that("backlogged messages keep their order when more arrive in the same drain", {
  # Socket B has no onMessage yet; m1 waits in its backlog. R is then kept busy (A's
  # "sleep") while A's "register" and B's m2 queue up, so one drain delivers both: the
  # callback registered by "register" must see m1 before m2.
  store <- new.env()
  store$got <- character()
  app <- list(
    call = text_app("ok"),
    onWSOpen = function(ws) {
      if (identical(ws$request$PATH_INFO, "/b")) {
        store$b <- ws
        return(invisible())
      }
      ws$onMessage(function(binary, message) {
        if (identical(message, "sleep")) Sys.sleep(1)
        if (identical(message, "register")) {
          store$b$onMessage(function(binary, message) {
            store$got <- c(store$got, message)
            store$b$send(message)
          })
        }
        ws$send(paste("ack", message))
      })
    }
  )
  s <- local_server(app)
  res <- ws_py(s$getPort(), r"---(
async def main():
    async with connect("/a") as a, connect("/b") as b:
        await b.send("m1")
        await asyncio.sleep(0.3)
        await a.send("sleep")
        await asyncio.sleep(0.3)
        await a.send("register")
        await asyncio.sleep(0.2)
        await b.send("m2")
        acks = [await asyncio.wait_for(a.recv(), 10) for _ in range(2)]
        echoes = [await asyncio.wait_for(b.recv(), 10) for _ in range(2)]
        return {"acks": acks, "echoes": echoes}
)---")
  expect_identical(unlist(res$acks), c("ack sleep", "ack register"))
  expect_identical(store$got, c("m1", "m2"))
  expect_identical(unlist(res$echoes), c("m1", "m2"))
})

test_that("an error in onMessage for a backlogged message closes that socket with 1011", {
  # The same contract as for any other message: the error is reported, the socket
  # closes with 1011, and the event loop carries on (no error escapes run_now()).
  store <- new.env()
  app <- list(
    call = text_app("ok"),
    onWSOpen = function(ws) {
      force(ws)
      later::later(function() {
        ws$onMessage(function(binary, message) stop("boom in a backlogged message"))
      }, 0.5)
    }
  )
  s <- local_server(app)
  out <- with_stderr(tryCatch(ws_py(s$getPort(), r"---(
async def main():
    async with connect("/late-error") as ws:
        await ws.send("m1")
        return await recv_close(ws)
)---"), error = function(e) e))
  expect_no_loop_error(out$value)
  expect_identical(out$value, list(1011L, ""))
})

test_that("onHeaders can refuse an upgrade: its response is sent and no WebSocket opens", {
  store <- new.env()
  store$on_headers <- 0L
  s <- local_server(ws_record_app(store, on_headers = function(req) {
    store$on_headers <- store$on_headers + 1L
    if (identical(req$PATH_INFO, "/denied")) {
      return(list(status = 401L, headers = list("Content-Type" = "text/plain", "X-Why" = "no token"),
                  body = "no entry"))
    }
    NULL
  }))
  res <- ws_py(s$getPort(), r"---(
async def main():
    c = Raw("/denied")
    out = {"status": c.status, "body": c.body.decode(), "why": c.headers.get("x-why"),
           "upgrade": c.headers.get("upgrade")}
    try:
        async with connect("/denied") as ws:
            out["lib"] = "opened"
    except Exception as e:
        out["lib"] = type(e).__name__
    async with connect("/allowed") as ws:
        await ws.send("ok?")
        out["allowed"] = await asyncio.wait_for(ws.recv(), 10)
    return out
)---")
  expect_identical(res$status, 401L)
  expect_identical(res$body, "no entry")
  expect_identical(res$why, "no token")
  expect_null(res$upgrade)
  expect_match(res$lib, "^InvalidStatus")
  expect_identical(res$allowed, "ok?")
  expect_identical(store$on_headers, 3L)
  expect_identical(store$opened, 1L)  # only /allowed
  expect_identical(store$sockets[[1]]$request$PATH_INFO, "/allowed")
})

test_that("an R error in onMessage closes that socket with 1011; others and HTTP carry on", {
  store <- new.env()
  s <- local_server(ws_record_app(store, on_message = function(ws, binary, message) {
    if (identical(message, "fail")) stop("boom in onMessage")
    ws$send(message)
  }))
  out <- with_stderr(ws_py(s$getPort(), r"---(
async def main():
    async with connect("/good") as good, connect("/bad") as bad:
        await bad.send("fail")
        bad_close = await recv_close(bad)
        await good.send("still here")
        echo = await asyncio.wait_for(good.recv(), 10)
    async with connect("/new") as again:
        await again.send("new one")
        echo2 = await asyncio.wait_for(again.recv(), 10)
    return {"bad": bad_close, "echo": echo, "echo2": echo2}
)---"))
  res <- out$value
  expect_identical(res$bad, list(1011L, ""))
  expect_identical(res$echo, "still here")
  expect_identical(res$echo2, "new one")
  expect_match(out$stderr, "boom in onMessage")
  expect_match(out$stderr, "1011")
  r <- http_req(server_url(s, "/plain"))
  expect_identical(r$status, 200L)
  expect_identical(r$text, "http ok /plain")
  wait_until(function() length(store$closes) == 3, what = "three onClose")
  expect_setequal(vapply(store$closes, function(x) x$code, 1L), c(1011L, 1000L, 1000L))
})

test_that("an R error in onWSOpen closes the socket with 1011", {
  app <- list(
    call = text_app("ok"),
    onWSOpen = function(ws) {
      if (identical(ws$request$PATH_INFO, "/bad")) stop("boom in onWSOpen")
      ws$onMessage(function(binary, message) ws$send(message))
    }
  )
  s <- local_server(app)
  out <- with_stderr(ws_py(s$getPort(), r"---(
async def main():
    async with connect("/bad") as ws:
        bad = await recv_close(ws)
    async with connect("/good") as ws:
        await ws.send("fine")
        good = await asyncio.wait_for(ws.recv(), 10)
    return {"bad": bad, "good": good}
)---"))
  expect_identical(out$value$bad, list(1011L, ""))
  expect_identical(out$value$good, "fine")
  expect_match(out$stderr, "boom in onWSOpen")
})

test_that("200 concurrent sockets all echo", {
  skip_if_slow_disabled()
  store <- new.env()
  s <- local_server(ws_record_app(store))
  res <- ws_py(s$getPort(), r"---(
async def client(i, ready):
    async with connect("/c%d" % i, compression=None) as ws:
        ready.append(i)
        while len(ready) < ARGS["n"]:
            await asyncio.sleep(0.02)
        ok = 0
        for j in range(5):
            msg = "client %d message %d" % (i, j)
            await ws.send(msg)
            if await asyncio.wait_for(ws.recv(), 20) == msg:
                ok += 1
        await ws.send(bytes([i % 256]) * 1000)
        if await asyncio.wait_for(ws.recv(), 20) == bytes([i % 256]) * 1000:
            ok += 1
        return ok

async def main():
    ready = []
    oks = await asyncio.wait_for(asyncio.gather(*[client(i, ready) for i in range(ARGS["n"])]), 40)
    return oks
)---", args = list(n = 200), timeout = 60)
  oks <- unlist(res)
  expect_length(oks, 200)
  expect_true(all(oks == 6L))
  expect_identical(store$opened, 200L)
  expect_identical(store$max_open, 200L)
  expect_length(store$messages, 1200)
  wait_until(function() store$open_now == 0L, what = "every onClose")
})

test_that("subprotocols: the server's first choice among those offered", {
  store <- new.env()
  s <- local_server(ws_record_app(store),
                    options = rookdOptions(ws_subprotocols = c("v2.chat", "v1.chat")))
  res <- ws_py(s$getPort(), r"---(
async def main():
    out = {}
    async with connect("/p", subprotocols=["v1.chat", "v2.chat"]) as ws:
        out["both"] = ws.subprotocol
    async with connect("/p", subprotocols=["other", "v1.chat"]) as ws:
        out["v1"] = ws.subprotocol
    c = Raw("/p", headers=["Sec-WebSocket-Protocol: other"])
    out["none"] = [c.status, c.headers.get("sec-websocket-protocol")]
    c.close()
    return out
)---")
  expect_identical(res$both, "v2.chat")
  expect_identical(res$v1, "v1.chat")
  expect_identical(res$none, list(101L, NULL))
  expect_identical(store$sockets[[1]]$request$HTTP_SEC_WEBSOCKET_PROTOCOL, "v1.chat, v2.chat")
})

test_that("allowed origins: others get 403 and no socket opens", {
  store <- new.env()
  s <- local_server(ws_record_app(store),
                    options = rookdOptions(ws_allowed_origins = "http://good.example"))
  res <- ws_py(s$getPort(), r"---(
async def main():
    out = {}
    async with connect("/o", origin="http://good.example") as ws:
        await ws.send("hi")
        out["good"] = await asyncio.wait_for(ws.recv(), 10)
    evil = Raw("/o", headers=["Origin: http://evil.example"])
    out["evil"] = [evil.status, evil.body.decode()]
    out["missing"] = Raw("/o").status
    return out
)---")
  expect_identical(res$good, "hi")
  expect_identical(res$evil[[1]], 403L)
  expect_match(res$evil[[2]], "Origin")
  expect_identical(res$missing, 403L)
  expect_identical(store$opened, 1L)
})

deflate_py <- r"---(
def main():
    c = Raw("/d", headers=["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"])
    out = {"ext": c.headers.get("sec-websocket-extensions")}
    text = "compress me " * 200
    if out["ext"]:
        co = zlib.compressobj(wbits=-15)
        body = co.compress(text.encode()) + co.flush(zlib.Z_SYNC_FLUSH)
        c.send_frame(1, body[:-4], rsv1=True)
    else:
        c.send_frame(1, text)
    op, data, rsv1 = c.recv_message()
    out["rsv1"] = rsv1
    out["wire_bytes"] = len(data)
    if rsv1:
        data = zlib.decompressobj(wbits=-15).decompress(data + b"\x00\x00\xff\xff")
    out["same"] = data.decode() == text
    c.close()
    return out
)---"

test_that("permessage-deflate is negotiated when offered and used on the wire", {
  store <- new.env()
  s <- local_server(ws_record_app(store))
  res <- ws_py(s$getPort(), deflate_py)
  expect_match(res$ext, "^permessage-deflate")
  expect_true(res$rsv1)
  expect_lt(res$wire_bytes, 2400 / 4)
  expect_true(res$same)
  expect_identical(store$messages[[1]]$message, strrep("compress me ", 200))
  # and a library client agrees on it
  res <- ws_py(s$getPort(), r"---(
async def main():
    async with connect("/d") as ws:
        await ws.send("x" * 5000)
        back = await asyncio.wait_for(ws.recv(), 10)
        return [resp_headers(ws).get("Sec-WebSocket-Extensions"), back == "x" * 5000]
)---")
  expect_match(res[[1]], "^permessage-deflate")
  expect_true(res[[2]])
})

test_that("ws_permessage_deflate = FALSE turns it off", {
  store <- new.env()
  s <- local_server(ws_record_app(store), options = rookdOptions(ws_permessage_deflate = FALSE))
  res <- ws_py(s$getPort(), deflate_py)
  expect_null(res$ext)
  expect_false(res$rsv1)
  expect_identical(res$wire_bytes, 2400L)
  expect_true(res$same)
})

test_that("a message over ws_max_message_bytes closes with 1009 and never reaches R", {
  store <- new.env()
  s <- local_server(ws_record_app(store), options = rookdOptions(ws_max_message_bytes = 1024))
  res <- ws_py(s$getPort(), r"---(
async def main():
    async with connect("/m", compression=None) as ws:
        await ws.send("a" * 1024)
        ok = await asyncio.wait_for(ws.recv(), 10) == "a" * 1024
        await ws.send(b"b" * 1025)
        return {"ok": ok, "close": await recv_close(ws)}
)---")
  expect_true(res$ok)
  expect_identical(res$close[[1]], 1009L)
  expect_length(store$messages, 1)
  wait_until(function() length(store$closes) == 1, what = "onClose")
  expect_identical(store$closes[[1]]$code, 1009L)
  # fragments adding up to too much count too
  res <- ws_py(s$getPort(), r"---(
def main():
    c = Raw("/m")
    c.send_frame(2, b"x" * 600, fin=False)
    c.send_frame(0, b"x" * 600, fin=True)
    op, data, _ = c.recv_message()
    return [op, struct.unpack("!H", data[:2])[0]]
)---")
  expect_identical(res, list(8L, 1009L))
  expect_length(store$messages, 1)
})

test_that("ws$request is the upgrade request's Rook env", {
  store <- new.env()
  s <- local_server(ws_record_app(store))
  ws_py(s$getPort(), r"---(
async def main():
    async with connect("/some/path?a=1&b=two", headers={"X-Custom": "yes"}) as ws:
        await ws.send("hi")
        await asyncio.wait_for(ws.recv(), 10)
)---")
  req <- store$sockets[[1]]$request
  expect_true(is.environment(req))
  expect_identical(req$REQUEST_METHOD, "GET")
  expect_identical(req$PATH_INFO, "/some/path")
  expect_identical(req$QUERY_STRING, "a=1&b=two")
  expect_identical(req$HTTP_X_CUSTOM, "yes")
  expect_identical(tolower(req$HTTP_UPGRADE), "websocket")
  expect_match(req$HTTP_CONNECTION, "upgrade", ignore.case = TRUE)
  expect_identical(req$HTTP_SEC_WEBSOCKET_VERSION, "13")
  expect_identical(req$SERVER_PORT, as.character(s$getPort()))
  expect_identical(req$REMOTE_ADDR, "127.0.0.1")
  expect_identical(req[["rook.url_scheme"]], "http")
  expect_identical(req[["rook.input"]]$read(), raw(0))
  expect_s3_class(store$sockets[[1]], "WebSocket")
  expect_output(print(store$sockets[[1]]), "/some/path")
})
