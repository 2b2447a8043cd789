# The HTTPS site of tls.test.mjs: a page with 40 assets under a static path, served over
# TLS with a development certificate (tlsSelfSigned()). Writes "PORT CERT_FILE" to the
# file named by the first argument once listening, then serves until killed.
library(rookd)
info <- commandArgs(trailingOnly = TRUE)[[1]]
site <- tempfile("tls-site")
dir.create(site)
assets <- character()
for (i in 1:20) {
  f <- sprintf("style%02d.css", i)
  writeLines(sprintf(".c%d { color: #%06x; }", i, i * 4093L), file.path(site, f))
  assets <- c(assets, sprintf('<link rel="stylesheet" href="%s">', f))
}
for (i in 1:20) {
  f <- sprintf("script%02d.js", i)
  writeLines(sprintf("window.loaded = (window.loaded || 0) + 1; // %d %s", i, strrep("x", 2000)),
             file.path(site, f))
  assets <- c(assets, sprintf('<script src="%s"></script>', f))
}
writeLines(c("<!doctype html><html><head><title>tls</title>", assets,
             "</head><body><h1>over TLS</h1></body></html>"), file.path(site, "index.html"))
tls <- tlsSelfSigned(hosts = c("localhost", "127.0.0.1"))
s <- startServer("127.0.0.1", 0, list(staticPaths = list("/site" = site)), tls = tls)
writeLines(paste(s$getPort(), tls$cert), paste0(info, ".tmp"))
file.rename(paste0(info, ".tmp"), info)
repeat service(100)
