# Helpers of the test-net-*.R files: net_client.py (python3-h2 and raw sockets).

# A python3 that has the h2 package, or NA.
net_python <- local({
  found <- NULL
  function() {
    if (is.null(found)) {
      candidates <- unique(c(Sys.which("python3"), "/usr/bin/python3"))
      candidates <- candidates[nzchar(candidates) & file.exists(candidates)]
      ok <- vapply(candidates, function(py) {
        identical(suppressWarnings(system2(py, c("-c", shQuote("import h2, hpack")),
                                           stdout = FALSE, stderr = FALSE)), 0L)
      }, logical(1))
      found <<- if (any(ok)) candidates[ok][[1]] else NA_character_
    }
    found
  }
})

skip_if_no_net_python <- function() {
  if (is.na(net_python())) testthat::skip("no python3 with the h2 package (Debian: python3-h2)")
}

net_script <- function() normalizePath(testthat::test_path("net_client.py"))

# Run net_client.py MODE PORT ARGS... while pumping; its JSON answer (last stdout line).
net_py <- function(mode, port, ..., timeout = 30) {
  skip_if_no_net_python()
  out <- run_pumping(net_python(), c(net_script(), mode, port, ...), timeout = timeout)
  line <- tail(strsplit(out$stdout, "\n", fixed = TRUE)[[1]], 1)
  if (out$status != 0 || !length(line)) stop("net_client.py ", mode, " failed:\n", out$stderr, call. = FALSE)
  jsonlite::fromJSON(line, simplifyVector = FALSE)
}

# The same in the background: a processx process (killed when the calling test ends).
net_py_bg <- function(mode, port, ..., .env = parent.frame()) {
  skip_if_no_net_python()
  p <- processx::process$new(net_python(), c(net_script(), mode, port, ...),
                             stdout = "|", stderr = "|", cleanup = TRUE)
  withr::defer(if (p$is_alive()) p$kill(), envir = .env)
  p
}

net_py_result <- function(p, timeout = 30) {
  deadline <- Sys.time() + timeout
  while (p$is_alive()) {
    if (Sys.time() > deadline) stop("net_client.py did not finish within ", timeout, " s", call. = FALSE)
    later::run_now(0.01)
  }
  out <- p$read_all_output()
  line <- tail(strsplit(out, "\n", fixed = TRUE)[[1]], 1)
  if (!length(line)) stop("net_client.py failed:\n", p$read_all_error(), call. = FALSE)
  jsonlite::fromJSON(line, simplifyVector = FALSE)
}

# A PROXY v2 header (TCP over IPv4) as raw bytes.
proxy_v2 <- function(src, dst, sport, dport, command = 0x21) {
  addrs <- c(as.raw(as.integer(strsplit(src, ".", fixed = TRUE)[[1]])),
             as.raw(as.integer(strsplit(dst, ".", fixed = TRUE)[[1]])),
             as.raw(c(sport %/% 256, sport %% 256, dport %/% 256, dport %% 256)))
  c(as.raw(c(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a)),
    as.raw(c(command, 0x11, 0x00, length(addrs))), addrs)
}

to_hex <- function(x) paste(format(as.hexmode(as.integer(x)), width = 2), collapse = "")
