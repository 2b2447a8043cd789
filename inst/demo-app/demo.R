# rookd's demo app: a hello page at / and an echo route at /echo.
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
        "(try <code>curl -d 'some text' http://", host, ":", port, "/echo</code>)</li>\n</ul>\n",
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
  }
)

app <- list(
  call = function(req) {
    route <- routes[[req$PATH_INFO]]
    if (is.null(route)) {
      return(list(status = 404L, headers = list("Content-Type" = "text/plain"),
                  body = paste0("Not found: ", req$PATH_INFO, "\n")))
    }
    route(req)
  }
)

server <- startDaemonizedServer(host, port, app)
url_host <- if (grepl(":", host, fixed = TRUE)) paste0("[", host, "]") else host
cat(sprintf("rookd demo: serving on http://%s:%d/ (echo: http://%s:%d/echo); Ctrl-C stops it\n",
            url_host, port, url_host, port))
flush(stdout())

# Keep the process alive and serving.
while (TRUE) service(1000)
