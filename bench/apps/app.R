# The benchmark app: the SAME Rook app for httpuv and rookd (and the routes
# src/rust/engine/examples/bench_no_r.rs answers without R).
#   /echo        the request body back (read through rook.input)
#   /big         a 10 MB raw body (built once, outside the timed path)
#   /static/...  files from `static_dir`, served by the server itself (staticPaths)
#   anything else "Hello world!\n" as text/plain
#   WebSocket    every message echoed back as it came (text as text, binary as binary)
bench_app <- function(static_dir = NULL) {
  hello_headers <- list("Content-Type" = "text/plain")
  bin_headers <- list("Content-Type" = "application/octet-stream")
  big <- raw(10 * 1024 * 1024)
  app <- list(
    call = function(req) {
      path <- req$PATH_INFO
      if (identical(path, "/echo")) {
        list(status = 200L, headers = bin_headers, body = req$rook.input$read())
      } else if (identical(path, "/big")) {
        list(status = 200L, headers = bin_headers, body = big)
      } else {
        list(status = 200L, headers = hello_headers, body = "Hello world!\n")
      }
    },
    onWSOpen = function(ws) {
      ws$onMessage(function(binary, message) ws$send(message))
    }
  )
  if (!is.null(static_dir)) app$staticPaths <- list("/static" = static_dir)
  app
}
