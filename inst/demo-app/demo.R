# rookd's demo app: a hello page at /, an echo route at /echo and a WebSocket chat at /chat.
# (Not inst/demo/: R CMD check warns that demo/ is a directory R itself uses.)
#
#   Rscript inst/demo-app/demo.R          # from a checkout, with rookd installed
#   Rscript "$(Rscript -e 'cat(system.file("demo-app", "demo.R", package = "rookd"))')"
#
# Env: ROOKD_DEMO_HOST (default 127.0.0.1), ROOKD_DEMO_PORT (default 8080).
# It starts the server with startDaemonizedServer() and keeps the process serving with
# service() until it is interrupted (Ctrl-C).

library(rookd)

host <- Sys.getenv("ROOKD_DEMO_HOST", "127.0.0.1")
port <- as.integer(Sys.getenv("ROOKD_DEMO_PORT", "8080"))

html_escape <- function(x) {
  x <- gsub("&", "&amp;", x, fixed = TRUE)
  x <- gsub("<", "&lt;", x, fixed = TRUE)
  gsub(">", "&gt;", x, fixed = TRUE)
}

# Routes: PATH_INFO -> function(req) returning a Rook response. Add pages here.
routes <- list(
  "/" = function(req) {
    list(
      status = 200L,
      headers = list("Content-Type" = "text/html; charset=utf-8"),
      body = paste0(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>rookd demo</title></head>\n",
        "<body>\n<h1>Hello from rookd</h1>\n",
        "<p>This page was made by R (", html_escape(R.version.string), ") and served by ",
        "rookd's Rust engine.</p>\n",
        "<ul>\n<li><a href=\"/echo?hello=world\">/echo</a>: echoes the request back ",
        "(try <code>curl -d 'some text' http://", host, ":", port, "/echo</code>)</li>\n",
        "<li><a href=\"/chat\">/chat</a>: a chat room over a WebSocket, broadcast by R</li>\n</ul>\n",
        "</body></html>\n"
      )
    )
  },
  "/echo" = function(req) {
    body <- req[["rook.input"]]$read()
    headers <- req$HEADERS
    lines <- c(
      paste(req$REQUEST_METHOD, req$PATH_INFO, req$SERVER_PROTOCOL),
      paste0("query: ", req$QUERY_STRING),
      paste0(names(headers), ": ", headers),
      "",
      if (length(body)) rawToChar(body) else character()
    )
    list(
      status = 200L,
      headers = list("Content-Type" = "text/plain; charset=utf-8"),
      body = paste0(paste(lines, collapse = "\n"), "\n")
    )
  },
  "/chat" = function(req) {
    list(status = 200L, headers = list("Content-Type" = "text/html; charset=utf-8"),
         body = paste(readLines(chat_page, encoding = "UTF-8", warn = FALSE), collapse = "\n"))
  }
)

# The chat room (page at /chat, WebSocket at /chat/ws): each message, a text frame
# "name\ntext", is broadcast by R as JSON to every open socket, with the last 50 kept for
# newcomers; "presence" messages carry the number of people online.
chat_page <- local({
  script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
  paths <- c(if (!is.na(script)) file.path(dirname(script), "www", "chat.html"),
             system.file("demo-app", "www", "chat.html", package = "rookd"))
  paths[file.exists(paths)][1]
})
chat <- new.env()
chat$sockets <- list()
chat$history <- character()
chat$next_id <- 0L
json_string <- function(x) {
  escapes <- list(c("\\", "\\\\"), c("\"", "\\\""), c("\n", "\\n"), c("\r", "\\r"), c("\t", "\\t"))
  for (r in escapes) {
    x <- gsub(r[1], r[2], x, fixed = TRUE)
  }
  paste0("\"", gsub("[[:cntrl:]]", "", x), "\"")
}
chat_broadcast <- function(json) for (ws in chat$sockets) ws$send(json)
chat_presence <- function() {
  chat_broadcast(sprintf("{\"type\":\"presence\",\"count\":%d}", length(chat$sockets)))
}
chat_open <- function(ws) {
  if (!identical(ws$request$PATH_INFO, "/chat/ws")) return(ws$close(1008L, "unknown WebSocket path"))
  chat$next_id <- chat$next_id + 1L
  id <- as.character(chat$next_id)
  chat$sockets[[id]] <- ws
  for (json in chat$history) ws$send(json)
  chat_presence()
  ws$onMessage(function(binary, message) {
    if (binary) return()
    nl <- regexpr("\n", message, fixed = TRUE)
    name <- if (nl > 0) substr(message, 1, min(nl - 1, 32)) else "anonymous"
    text <- if (nl > 0) substr(message, nl + 1, nl + 2000) else substr(message, 1, 2000)
    json <- sprintf("{\"type\":\"chat\",\"name\":%s,\"text\":%s,\"time\":\"%s\"}",
                    json_string(name), json_string(text), format(Sys.time(), "%H:%M:%S"))
    chat$history <- utils::tail(c(chat$history, json), 50)
    chat_broadcast(json)
  })
  ws$onClose(function() {
    chat$sockets[[id]] <- NULL
    chat_presence()
  })
}

app <- list(
  call = function(req) {
    route <- routes[[req$PATH_INFO]]
    if (is.null(route)) {
      return(list(status = 404L, headers = list("Content-Type" = "text/plain"),
                  body = paste0("Not found: ", req$PATH_INFO, "\n")))
    }
    route(req)
  },
  onWSOpen = chat_open
)

server <- startDaemonizedServer(host, port, app)
url_host <- if (grepl(":", host, fixed = TRUE)) paste0("[", host, "]") else host
cat(sprintf("rookd demo: serving on http://%s:%d/ (echo: http://%s:%d/echo); Ctrl-C stops it\n",
            url_host, port, url_host, port))
flush(stdout())

# Keep the process alive and serving.
while (TRUE) service(1000)
