# An R-hosted WebSocket echo app for Autobahn|Testsuite: every message goes through
# R's main thread (the bridge, the WebSocket object, onMessage, ws$send).
#
#   tests/autobahn/run.sh --summary tests/autobahn/summary-r.md -- \
#     Rscript tests/autobahn/r_echo.R 9001
args <- commandArgs(trailingOnly = TRUE)
port <- as.integer(if (length(args)) args[length(args)] else 9001)
suppressPackageStartupMessages(library(rookd))
app <- list(
  call = function(req) list(status = 200L, headers = list("Content-Type" = "text/plain"),
                            body = "WebSocket echo\n"),
  onWSOpen = function(ws) ws$onMessage(function(binary, message) ws$send(message))
)
# Autobahn sends messages of up to 16 MiB and expects them back whole.
s <- startServer("127.0.0.1", port, app,
                 options = rookdOptions(ws_max_message_bytes = 64 * 1024^2, ws_ping_interval = 0))
message("r_echo: listening on ", port)
service(0)
