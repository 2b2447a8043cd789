#' A pool of R worker processes behind one port
#'
#' R runs an app on one thread: a handler that spends 5 ms in R caps a process at about
#' 200 requests a second. `startWorkers()` starts `workers` R processes, each serving the
#' app on its own Unix socket in a private (0700) directory, and a front (rookd's engine,
#' no R on its path) that accepts clients on `host:port`, reads each request's body
#' (with a plain server's limits) and hands the request to a worker, streaming answers
#' back and forwarding WebSocket upgrades (which stay on their worker).
#' `serveWorkers()` does the same and blocks until [interrupt()] or Ctrl-C (SIGTERM:
#' drains first), then stops the workers.
#'
#' @section Routing:
#' By default each request goes to the worker with the fewest requests in flight.
#' `sticky = "cookie"` (the default for Shiny apps, whose sessions live in one worker)
#' sets a cookie (`rookd_worker`, HttpOnly, SameSite=Lax, Path=/, and Secure when the
#' client's scheme is https) naming the client's
#' worker and routes by it while that worker lives; `sticky = "ip"` hashes the client's
#' address over the workers.
#'
#' @section Health and recovery:
#' A worker that exits, refuses a connection (checked every 2 s, and on every new
#' connection to it) or does not answer a request within `worker_timeout` seconds is
#' replaced; its requests in flight get `502` at once (when
#' it exits) or after `worker_timeout` (when it hangs). A worker is recycled, the new
#' one first and the old one drained, after `max_requests` requests or above
#' `max_rss_mb` MiB resident. `$reload()` starts a new generation of workers (which load
#' the app file afresh), sends new clients to them once all serve, and drains the old
#' ones (requests and WebSockets in flight finish, for up to `drain_timeout` seconds).
#'
#' @section Backpressure:
#' A worker takes `worker_concurrency` requests at once. R serves one at a time, but
#' with 2 (the default) the next request is already at the worker while R answers the
#' current one, so the hop to the worker overlaps R's work (hello world through the front
#' measured 5,100 to 6,300 req/s with 2 against 3,200 to 4,900 with 1); 1 gives the
#' strictest least-busy routing (a request never waits behind a slow one while another
#' worker is free); more helps apps that answer with promises. When all are full, up to `queue_max`
#' requests wait, each up to `queue_timeout` seconds; others get
#' `503 Service Unavailable` with `Retry-After: 1`.
#'
#' The front holds at most `max_connections` client connections; more are answered
#' `503` with `Retry-After: 1` at once. It raises its soft limit on open files to the
#' hard one at start (the workers keep the original) and lowers `max_connections` to
#' what that limit leaves. Running out of descriptors anyway is a `503` for the
#' request, never a reason to replace a worker.
#'
#' @param app An app file (`app.R` defining `app`, a Rook app as [startServer()] takes),
#'   a Shiny app directory (with `app.R`, or `ui.R` and `server.R`), or a plumber file
#'   (with `#*` annotations): whatever a fresh R process can load by itself.
#' @param workers Number of worker processes. [1, 1024]
#' @param host,port Where the front listens (`port = 0`: a free port; see `$getPort()`).
#' @param type `"auto"` (from the path: a directory is Shiny, a file with `#*` lines is
#'   plumber, any other file is a Rook app file), `"rook"`, `"shiny"` or `"plumber"`.
#' @param sticky `"none"`, `"cookie"` or `"ip"`; `NULL`: `"cookie"` for Shiny, else
#'   `"none"`.
#' @param worker_concurrency Requests in flight per worker. [1, 100000]
#' @param queue_max Requests that may wait for a worker. [0, 1000000]
#' @param queue_timeout,worker_timeout,startup_timeout,drain_timeout Seconds (> 0): how
#'   long a request waits for a worker, a worker may take to answer a request's head, a
#'   new worker may take to start serving, and a draining worker may keep requests.
#' @param max_requests,max_rss_mb Recycle a worker after this many requests, or above
#'   this many MiB resident (`0`: never).
#' @param threads The front's I/O threads. [1, 64]; 1 (the default) costs least per
#'   request (no wake-ups across threads); more for many workers on many cores.
#' @param reuse_port Bind the front with `SO_REUSEPORT` (see [rookdOptions()]).
#' @param quiet If `FALSE`, the workers' output goes to this process's stderr, each
#'   line prefixed with `[worker N]` (bytes that are not UTF-8 are replaced, and a line
#'   is cut every 8 KiB).
#' @param options Options ([rookdOptions()]) for the workers' servers (compression,
#'   WebSocket limits, access log, ...) and for the front: `header_timeout`,
#'   `body_timeout`, `max_body_bytes`, `max_inflight_bytes` and `trusted_proxies` apply
#'   at the front too, and `send_timeout` to WebSocket tunnels (a client that takes
#'   nothing that long while the front has bytes for it is closed). The workers' `trusted_proxies` is always their front alone.
#'   `proxy_protocol` is not supported by the front.
#' @param max_connections Client connections the front holds at once (beyond: `503`);
#'   `NULL`: `options$max_connections`. [1, 1000000]
#' @param tls `NULL` (plain HTTP) or a [tlsConfig()]: HTTPS on the front (HTTP/1.1),
#'   within `options$tls_handshake_timeout`. The app then sees `rook.url_scheme`
#'   `"https"`, and the sticky cookie is `Secure` (as it is when a trusted proxy says
#'   the client came over https).
#' @return `startWorkers()`: a handle with `$stop()`, `$reload()`, `$workers()` (a data
#'   frame: id, pid, state, generation, in_flight, served, websockets, rss_mb, socket),
#'   `$stats()`, `$getPort()` and `$isRunning()`. `serveWorkers()`: `TRUE` once stopped.
#' @examples
#' \donttest{
#' f <- tempfile(fileext = ".R")
#' writeLines('app <- function(req) list(status = 200L, headers = list(),
#'   body = as.character(Sys.getpid()))', f)
#' pool <- startWorkers(f, workers = 2, port = 0)
#' pool$workers()
#' pool$stop()
#' }
#' @export
startWorkers <- function(app, workers = 2L, host = "127.0.0.1", port = 8080L,
                         type = c("auto", "rook", "shiny", "plumber"), sticky = NULL,
                         worker_concurrency = 2L, queue_max = 1000L, queue_timeout = 30,
                         worker_timeout = 60, max_requests = 0, max_rss_mb = 0,
                         startup_timeout = 60, drain_timeout = 30, reuse_port = FALSE,
                         threads = 1L, quiet = FALSE, options = rookdOptions(),
                         max_connections = NULL, tls = NULL) {
  if (!is.character(app) || length(app) != 1 || is.na(app) || !file.exists(app)) {
    stop("`app` must be the path of an existing app file or Shiny app directory.", call. = FALSE)
  }
  app <- normalizePath(app, mustWork = TRUE)
  type <- match.arg(type)
  if (type == "auto") type <- detect_app_type(app)
  if (type == "shiny" && !dir.exists(app)) {
    stop("`app` must be a Shiny app directory for type = \"shiny\".", call. = FALSE)
  }
  if (type != "shiny" && dir.exists(app)) {
    stop("`app` must be a file for type = \"", type, "\".", call. = FALSE)
  }
  options <- as_rookd_options(options)
  tls <- check_tls(tls)
  if (isTRUE(options$proxy_protocol)) {
    stop("`options$proxy_protocol` is not supported by the worker pool's front.", call. = FALSE)
  }
  if (is.null(max_connections)) max_connections <- options$max_connections
  if (is.null(sticky)) sticky <- if (type == "shiny") "cookie" else "none"
  if (!is.character(sticky) || length(sticky) != 1 || !sticky %in% c("none", "cookie", "ip")) {
    stop("`sticky` must be \"none\", \"cookie\", \"ip\" or NULL.", call. = FALSE)
  }
  for (nm in c("workers", "port", "worker_concurrency", "queue_max", "queue_timeout",
               "worker_timeout", "max_requests", "max_rss_mb", "startup_timeout",
               "drain_timeout", "threads", "max_connections")) {
    v <- get(nm)
    if (!is.numeric(v) || length(v) != 1 || is.na(v)) {
      stop("`", nm, "` must be a single number.", call. = FALSE)
    }
  }
  if (!isTRUE(reuse_port) && !isFALSE(reuse_port)) stop("`reuse_port` must be TRUE or FALSE.", call. = FALSE)
  if (!isTRUE(quiet) && !isFALSE(quiet)) stop("`quiet` must be TRUE or FALSE.", call. = FALSE)
  # The workers' servers: the caller's options, but they trust their front (on their
  # Unix socket) and nobody else, and each binds its own socket.
  worker_options <- options
  worker_options$trusted_proxies <- "unix"
  worker_options$proxy_protocol <- FALSE
  worker_options$reuse_port <- FALSE
  options_file <- tempfile("rookd-worker-options-", fileext = ".rds")
  saveRDS(worker_options, options_file)
  env <- c(ROOKD_WORKER_APP = app, ROOKD_WORKER_TYPE = type,
           ROOKD_WORKER_OPTIONS = options_file,
           R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep))
  program <- file.path(R.home("bin"), "Rscript")
  args <- c("--no-save", "--no-restore", "-e", "rookd:::worker_main()")
  settings <- as.numeric(c(workers, worker_concurrency, queue_max, queue_timeout,
                           worker_timeout, max_requests, max_rss_mb, startup_timeout,
                           drain_timeout, threads, max_connections))
  # Short: a Unix socket's path has at most 107 bytes.
  socket_dir <- file.path(tempdir(), paste0("pool-", basename(tempfile(""))))
  res <- tryCatch(
    rookd_pool_start(host, as.numeric(port), program, args, names(env), unname(env),
                     sticky, "rookd_worker", settings, !quiet, reuse_port, options, socket_dir,
                     tls),
    error = function(e) { unlink(options_file); stop(e) })
  tls_warnings(res$warnings)
  id <- res$id
  pool <- new_pool(id, app, type, drain_timeout, options_file)
  tryCatch(wait_generation(id, app, startup_timeout),
           error = function(e) { pool$stop(); stop(e) })
  pool
}

#' @rdname startWorkers
#' @param ... Passed to `startWorkers()`.
#' @export
serveWorkers <- function(app, workers = 2L, host = "127.0.0.1", port = 8080L, ...) {
  pool <- startWorkers(app, workers = workers, host = host, port = port, ...)
  on.exit(pool$stop())
  # As service(0), and SIGTERM drains the pool (as it drains a plain server).
  .globals$paused <- FALSE
  sigterm <- rookd_sigterm(1L)
  if (sigterm) on.exit(rookd_sigterm(0L), add = TRUE)
  while (!.globals$paused) {
    later::run_now(0.1, all = FALSE)
    if (sigterm && rookd_sigterm(2L)) {
      message("rookd: SIGTERM: draining the worker pool")
      pool$drain()
      break
    }
  }
  invisible(TRUE)
}

detect_app_type <- function(app) {
  if (dir.exists(app)) {
    if (file.exists(file.path(app, "app.R")) ||
        (file.exists(file.path(app, "ui.R")) && file.exists(file.path(app, "server.R")))) {
      return("shiny")
    }
    stop("`app` is a directory without app.R or ui.R/server.R: not a Shiny app.", call. = FALSE)
  }
  lines <- readLines(app, warn = FALSE)
  if (any(grepl("^\\s*#\\*", lines))) "plumber" else "rook"
}

# Wait until the current generation serves in full, or one of its workers failed.
wait_generation <- function(id, app, timeout) {
  before <- rookd_pool_readiness(id)$failures
  deadline <- Sys.time() + timeout + 5
  repeat {
    r <- rookd_pool_readiness(id)
    if (r$ready >= r$wanted) return(invisible(TRUE))
    if (r$failures > before) {
      stop("the workers could not serve ", app, ":\n", r$last_failure, call. = FALSE)
    }
    if (Sys.time() > deadline) {
      stop("the workers did not start serving ", app, " within ", timeout, " s.", call. = FALSE)
    }
    Sys.sleep(0.05)
  }
}

new_pool <- function(id, app, type, drain_timeout, options_file) {
  self <- new.env(parent = emptyenv())
  self$app <- app
  self$type <- type
  self$stop <- function() {
    on.exit(unlink(options_file))
    invisible(rookd_pool_stop(id))
  }
  self$drain <- function(timeout = drain_timeout) {
    on.exit(unlink(options_file))
    invisible(rookd_pool_drain(id, timeout))
  }
  self$isRunning <- function() {
    tryCatch({ rookd_pool_port(id); TRUE }, error = function(e) FALSE)
  }
  self$getPort <- function() rookd_pool_port(id)
  self$workers <- function() as.data.frame(rookd_pool_workers(id), stringsAsFactors = FALSE)
  self$stats <- function() rookd_pool_stats(id)
  self$reload <- function(timeout = 60) {
    rookd_pool_reload(id)
    tryCatch(wait_generation(id, app, timeout), error = function(e) {
      rookd_pool_cancel_reload(id)
      stop(conditionMessage(e), "\nThe reload was given up; the previous workers serve on.",
           call. = FALSE)
    })
    invisible(self)
  }
  class(self) <- "rookd_workers"
  self
}

#' @export
print.rookd_workers <- function(x, ...) {
  if (x$isRunning()) {
    w <- x$workers()
    cat("<rookd worker pool> ", x$type, " app ", x$app, " on port ", x$getPort(), ": ",
        sum(w$state == "ready"), " ready of ", nrow(w), " workers\n", sep = "")
  } else {
    cat("<rookd worker pool> stopped\n")
  }
  invisible(x)
}

# The entry point of a worker process (Rscript -e 'rookd:::worker_main()'): load the app
# named by ROOKD_WORKER_APP and serve it on the Unix socket ROOKD_WORKER_SOCKET until
# stopped (SIGTERM drains), with the options in ROOKD_WORKER_OPTIONS. Shiny and plumber
# call httpuv's startServer(host, port) / runServer(host, port): with_rookd() routes
# those to rookd, and .globals$worker_socket sends them to the socket.
worker_main <- function() {
  app_path <- Sys.getenv("ROOKD_WORKER_APP")
  type <- Sys.getenv("ROOKD_WORKER_TYPE")
  socket <- Sys.getenv("ROOKD_WORKER_SOCKET")
  opts_file <- Sys.getenv("ROOKD_WORKER_OPTIONS")
  options <- if (nzchar(opts_file) && file.exists(opts_file)) readRDS(opts_file) else rookdOptions(trusted_proxies = "unix")
  .globals$worker_socket <- socket
  # A placeholder: the routed server functions bind the socket instead.
  host <- "127.0.0.1"
  port <- 8080L
  fail <- function(e) {
    message("Error loading ", app_path, ": ", conditionMessage(e))
    quit(save = "no", status = 3)
  }
  switch(type,
    rook = {
      app <- tryCatch({
        env <- new.env(parent = globalenv())
        sys.source(app_path, envir = env)
        if (!exists("app", envir = env, inherits = FALSE)) {
          stop("the file does not define `app`")
        }
        get("app", envir = env)
      }, error = fail)
      server <- startPipeServer(socket, strtoi("077", 8L), app, options = options)
      on.exit(stopServer(server))
      service(0)
    },
    shiny = {
      shiny_app <- tryCatch(shiny::shinyAppDir(app_path), error = fail)
      with_rookd(shiny::runApp(shiny_app, host = host, port = port, launch.browser = FALSE),
                 options = options)
    },
    plumber = {
      pr <- tryCatch(plumber::pr(app_path), error = fail)
      with_rookd(plumber::pr_run(pr, host = host, port = port, docs = FALSE, quiet = TRUE),
                 options = options)
    },
    fail(simpleError(paste0("unknown app type ", type)))
  )
}
