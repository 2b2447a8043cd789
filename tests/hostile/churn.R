# Start and stop N servers in one R session; print one JSON line with the process's
# threads, fds and RSS before (after a warm-up) and after, from /proc/self.
#
#   Rscript tests/hostile/churn.R [N] [LIB]
# Every 50th server answers one real request first (curl's multi interface, pumping the
# event loop meanwhile, with a deadline), so the cycle covers served connections too.
args <- commandArgs(trailingOnly = TRUE)
n <- if (length(args) >= 1) as.integer(args[1]) else 1000L
if (length(args) >= 2 && nzchar(args[2])) .libPaths(c(args[2], .libPaths()))
suppressPackageStartupMessages(library(rookd))

app <- function(req) list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "churn")
probe <- function(port) {
  ok <- FALSE
  done <- FALSE
  h <- curl::new_handle(timeout = 5, forbid_reuse = TRUE)
  curl::curl_fetch_multi(sprintf("http://127.0.0.1:%d/", port), handle = h,
                         done = function(r) { ok <<- r$status_code == 200L; done <<- TRUE },
                         fail = function(e) done <<- TRUE)
  deadline <- Sys.time() + 6
  while (!done && Sys.time() < deadline) {
    curl::multi_run(timeout = 0, poll = TRUE)
    later::run_now(0.002)
  }
  ok
}
proc_counts <- function() {
  st <- readLines("/proc/self/status")
  rss <- as.numeric(strsplit(trimws(sub("VmRSS:", "", grep("^VmRSS:", st, value = TRUE))), " ")[[1]][1]) * 1024
  c(threads = length(list.files("/proc/self/task")), fds = length(list.files("/proc/self/fd")), rss = rss)
}
# No gc() here: a full collection shrinks R's heap, which then grows back during the next
# cycles and would show up as RSS "growth" that has nothing to do with the servers.
settle <- function() { # let ServerClosed events and finished connections drain
  for (i in 1:50) later::run_now(0.01)
  invisible()
}
cycle <- function(i) {
  s <- startServer("127.0.0.1", 0, app)
  served <- if (i %% 50 == 0) probe(s$getPort()) else NA
  s$stop()
  later::run_now(0)  # R goes idle between servers, as it would at a prompt
  served
}
for (i in 1:500) cycle(i)         # warm-up: runtime threads, curl, allocator arenas
settle()
before <- proc_counts()
res <- vapply(seq_len(n), cycle, NA)
settle()
after <- proc_counts()
cat(sprintf('{"n": %d, "probes": %d, "served": %d, "threads_before": %d, "threads_after": %d, "fds_before": %d, "fds_after": %d, "rss_before": %.0f, "rss_after": %.0f, "running": %d}\n',
            n, sum(!is.na(res)), sum(res, na.rm = TRUE), before[["threads"]], after[["threads"]],
            before[["fds"]], after[["fds"]], before[["rss"]], after[["rss"]], length(listServers())))
