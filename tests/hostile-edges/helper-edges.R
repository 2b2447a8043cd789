# Helpers for the edges suite: those of tests/testthat, and a busy machine on demand.
for (f in list.files(file.path("..", "testthat"), pattern = "^helper-.*[.]R$", full.names = TRUE)) {
  sys.source(f, envir = environment())
}

# Keep every core busy (one spinning process per core) while `expr` runs: races that a quiet
# machine hides show up when the threads that must meet are not scheduled at once.
with_busy_cores <- function(expr, n = max(2L, parallel::detectCores())) {
  spinners <- lapply(seq_len(n), function(i) {
    processx::process$new("python3", c("-c", "while True: pass"), cleanup = TRUE)
  })
  on.exit(for (p in spinners) try(p$kill(), silent = TRUE), add = TRUE)
  force(expr)
}
