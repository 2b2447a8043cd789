# A real interactive R session under a pseudo-terminal (tmux), serving an app while it
# sits idle at the prompt. Used by test-interactive.R and test-wakeup.R.

skip_if_no_tmux <- function() {
  if (!nzchar(Sys.which("tmux"))) {
    testthat::skip("tmux is not installed: the interactive-session tests need it for a pseudo-terminal")
  }
}

# The app the interactive session serves: counts hits and says when it ran.
interactive_app_code <- c(
  "hits <- 0L",
  "app <- function(req) {",
  "  hits <<- hits + 1L",
  "  list(status = 200L, headers = list(\"Content-Type\" = \"text/plain\"),",
  "       body = sprintf(\"%d %.6f %s %s\", hits, as.numeric(Sys.time()), req$PATH_INFO, req$REMOTE_PORT))",
  "}"
)

# Parse the app's body: hits, time it ran, path, client port.
parse_app_body <- function(text) {
  p <- strsplit(text, " ", fixed = TRUE)[[1]]
  list(hits = as.integer(p[1]), time = as.numeric(p[2]), path = p[3], remote_port = p[4])
}

# Start `R --quiet` in a detached tmux session, define the app, then (as a user would type
# it) `library(rookd); s <- startDaemonizedServer("127.0.0.1", PORT, app)`. Returns
# list(port, send(line), capture(), file(name), wait_file(path)). `env`: a named character
# vector of environment variables for the session. Everything is torn down when the calling
# test ends.
tmux_r_session <- function(app_code = interactive_app_code, timeout = 30, env = character(),
                           .env = parent.frame()) {
  skip_if_no_tmux()
  dir <- tempfile("rookd-tmux")
  dir.create(dir)
  sock <- sprintf("rookd-test-%d-%s", Sys.getpid(), basename(dir))
  name <- "rookd"
  tmux <- function(...) {
    processx::run("tmux", c("-L", sock, ...), timeout = 10, error_on_status = FALSE)
  }
  withr::defer({
    tmux("kill-server")
    unlink(dir, recursive = TRUE)
  }, envir = .env)

  setup <- file.path(dir, "app.R")
  writeLines(app_code, setup)
  r_bin <- file.path(R.home("bin"), "R")
  res <- tmux("new-session", "-d", "-s", name, "-x", "220", "-y", "50",
              "-e", paste0("R_LIBS=", paste(.libPaths(), collapse = ":")),
              "-e", "R_PROFILE_USER=/dev/null",
              if (length(env)) as.vector(rbind("-e", paste0(names(env), "=", env))),
              paste(shQuote(r_bin), "--no-save --no-restore --quiet"))
  if (res$status != 0) stop("tmux new-session failed: ", res$stderr, call. = FALSE)

  capture <- function() tmux("capture-pane", "-p", "-t", name)$stdout
  send <- function(line) {
    tmux("send-keys", "-t", name, "-l", line)
    tmux("send-keys", "-t", name, "Enter")
    invisible()
  }
  file <- function(nm) file.path(dir, nm)
  wait_file <- function(path, lines = 1, timeout = 30) {
    deadline <- Sys.time() + timeout
    repeat {
      if (file.exists(path)) {
        x <- readLines(path, warn = FALSE)
        if (length(x) >= lines) return(x)
      }
      if (Sys.time() > deadline) {
        stop("the tmux R session did not write ", basename(path), " within ", timeout,
             " s; its screen:\n", capture(), call. = FALSE)
      }
      Sys.sleep(0.01)
    }
  }
  # The prompt.
  deadline <- Sys.time() + timeout
  while (!any(grepl("^>", strsplit(capture(), "\n")[[1]]))) {
    if (Sys.time() > deadline) stop("no R prompt in the tmux session:\n", capture(), call. = FALSE)
    Sys.sleep(0.05)
  }
  port <- randomPort()
  send(sprintf("source(%s)", deparse(setup)))
  send(sprintf("library(rookd); s <- startDaemonizedServer(\"127.0.0.1\", %d, app)", port))
  ready <- file("ready")
  send(sprintf("writeLines(c(as.character(s$getPort()), interactive()), %s)", deparse(ready)))
  info <- wait_file(ready, lines = 2, timeout = timeout)
  if (!identical(info[1], as.character(port))) {
    stop("the session's server is not on port ", port, ":\n", capture(), call. = FALSE)
  }
  list(port = port, interactive = identical(info[2], "TRUE"), send = send, capture = capture,
       file = file, wait_file = wait_file, url = sprintf("http://127.0.0.1:%d", port))
}

# Is the session sitting at an empty prompt (the last non-empty screen line is ">")?
at_prompt <- function(screen) {
  lines <- strsplit(screen, "\n")[[1]]
  lines <- lines[nzchar(trimws(lines))]
  length(lines) > 0 && grepl("^>\\s*$", lines[length(lines)])
}
