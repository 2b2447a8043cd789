# Lifecycle edges, each in a child R process (callr) so that a crash fails the test
# instead of killing the runner: unloading the package (and its shared library) while
# servers and lent vectors are alive; unloadNamespace() + library() using the new
# namespace; a forked child never serving the parent's queued requests.

# In the child: GET `url` with curl, pumping later until it finishes; the body.
child_helpers <- function() {
  list(
    fetch = function(url, timeout = 10) {
      p <- processx::process$new("curl", c("-s", "-m", as.character(timeout), url),
                                 stdout = "|", stderr = NULL, cleanup = TRUE)
      deadline <- Sys.time() + timeout + 2
      while (p$is_alive() && Sys.time() < deadline) later::run_now(0.01)
      p$read_all_output()
    },
    port_accepts = function(port) {
      con <- tryCatch(suppressWarnings(socketConnection("127.0.0.1", port, blocking = TRUE,
                                                        open = "r+b", timeout = 1)),
                      error = function(e) NULL)
      if (is.null(con)) return(FALSE)
      close(con)
      TRUE
    }
  )
}

test_that("unloading rookd and its shared library with a server and a lent vector alive is safe", {
  skip_on_cran()
  skip_if_no_python()
  out <- callr::r(function(h) {
    library(rookd)
    big <- as.raw(rep_len(1:255, 8 * 1024^2))
    s <- startServer("127.0.0.1", 0, list(call = function(req) {
      list(status = 200L, headers = list("Content-Type" = "application/octet-stream"), body = big)
    }))
    port <- s$getPort()
    # A client that asks for 8 MB and reads none of it: the vector stays lent.
    p <- processx::process$new("python3", c("-c", sprintf(paste(
      "import socket, time",
      "s = socket.create_connection(('127.0.0.1', %d))",
      "s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)",
      "s.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')",
      "time.sleep(8)", sep = "\n"), port)), cleanup = TRUE)
    deadline <- Sys.time() + 10
    while (rookd:::rookd_stats()$lent_vectors < 1 && Sys.time() < deadline) later::run_now(0.01)
    lent_before <- rookd:::rookd_stats()$lent_vectors
    # What pkgload::unload() does: the namespace, then the shared library.
    path <- getNamespaceInfo("rookd", "path")
    unloadNamespace("rookd")
    library.dynam.unload("rookd", path)
    # Callbacks the engine queued on later's loop (lent vectors let go while stopping,
    # drains) now run; so do finalizers. Before: a call into unmapped code.
    for (i in 1:30) later::run_now(0.02)
    invisible(gc())
    for (i in 1:10) later::run_now(0.02)
    port_free <- !h$port_accepts(port)
    p$kill()
    # Loaded again, it serves.
    library(rookd)
    s2 <- startServer("127.0.0.1", 0, function(req) {
      list(status = 200L, headers = list(), body = "again")
    })
    body <- h$fetch(sprintf("http://127.0.0.1:%d/", s2$getPort()))
    s2$stop()
    list(lent_before = lent_before, port_free = port_free, body = body)
  }, args = list(h = child_helpers()), timeout = 60)
  expect_gte(out$lent_before, 1L)
  expect_true(out$port_free)
  expect_identical(out$body, "again")
})

test_that("pkgload's unload() with a server running is safe", {
  skip_on_cran()
  skip_if_not_installed("pkgload")
  out <- callr::r(function(h) {
    library(rookd)
    s <- startServer("127.0.0.1", 0, function(req) list(status = 200L, headers = list(), body = "one"))
    port <- s$getPort()
    first <- h$fetch(sprintf("http://127.0.0.1:%d/", port))
    # pkgload is not among rookd's Suggests (it comes with testthat): looked up by name.
    unload <- getExportedValue("pkgload", "unload")
    unload("rookd")
    for (i in 1:20) later::run_now(0.02)
    invisible(gc())
    list(first = first, port_free = !h$port_accepts(port), loaded = "rookd" %in% loadedNamespaces())
  }, args = list(h = child_helpers()), timeout = 60)
  expect_identical(out$first, "one")
  expect_true(out$port_free)
  expect_false(out$loaded)
})

test_that("unloadNamespace() + library(): requests use the new namespace", {
  skip_on_cran()
  out <- callr::r(function(h) {
    library(rookd)
    s <- startServer("127.0.0.1", 0, function(req) list(status = 200L, headers = list(), body = "x"))
    h$fetch(sprintf("http://127.0.0.1:%d/", s$getPort()))
    unloadNamespace("rookd")
    library(rookd)
    seen <- new.env()
    s <- startServer("127.0.0.1", 0, function(req) {
      seen$same <- identical(topenv(environment(req[["rook.input"]]$read)), asNamespace("rookd"))
      list(status = 200L, headers = list(), body = "y")
    })
    body <- h$fetch(sprintf("http://127.0.0.1:%d/", s$getPort()))
    s$stop()
    list(body = body, same = seen$same)
  }, args = list(h = child_helpers()), timeout = 60)
  expect_identical(out$body, "y")
  expect_true(out$same)
})

test_that("a forked child never runs or answers the parent's queued requests", {
  skip_on_cran()
  skip_on_os("windows")
  out <- callr::r(function() {
    library(rookd)
    log <- tempfile()
    s <- startServer("127.0.0.1", 0, function(req) {
      cat(Sys.getpid(), "\n", file = log, append = TRUE)
      list(status = 200L, headers = list(), body = paste("served by", Sys.getpid()))
    })
    url <- sprintf("http://127.0.0.1:%d/", s$getPort())
    p <- processx::process$new("curl", c("-s", "-m", "20", url), stdout = "|", cleanup = TRUE)
    # R is busy: the request waits in the Door and a drain is queued on later's loop.
    Sys.sleep(1)
    queued <- rookd:::rookd_stats()$queued_events
    # The child inherits both; its event loop runs the queued drain, which must do nothing.
    job <- parallel::mcparallel({
      later::run_now(0.5)
      list(pid = Sys.getpid(), running = length(rookd:::rookd_running_ids()))
    })
    child <- parallel::mccollect(job, wait = TRUE, timeout = 20)[[1]]
    deadline <- Sys.time() + 20
    while (p$is_alive() && Sys.time() < deadline) later::run_now(0.02)
    s$stop()
    list(parent = Sys.getpid(), child = child, queued = queued,
         served_by = as.integer(readLines(log)), body = p$read_all_output())
  }, timeout = 60)
  expect_gte(out$queued, 1L)
  expect_identical(out$child$running, 0L)
  expect_identical(out$served_by, out$parent)
  expect_identical(out$body, paste("served by", out$parent))
})
