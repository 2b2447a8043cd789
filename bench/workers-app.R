# The app of bench/workers: GET /cpu burns 5 ms of R CPU, anything else is hello world.
app <- function(req) {
  if (identical(req$PATH_INFO, "/cpu")) {
    end <- proc.time()[["elapsed"]] + 0.005
    x <- 0
    while (proc.time()[["elapsed"]] < end) x <- x + sum(sqrt(seq_len(200)))
  }
  list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "hello")
}
