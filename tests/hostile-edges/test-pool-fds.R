# Running the front out of file descriptors must not look like dead workers: the front
# caps its connections (503 + Retry-After beyond), tells its own EMFILE from a worker's
# failure, and raises its soft RLIMIT_NOFILE to the hard limit (workers keep the original).

# serveWorkers() in a child Rscript started under `prlimit --nofile=SOFT:HARD`.
fd_front <- function(app, port, soft, hard, extra = "", .env = parent.frame()) {
  code <- sprintf('rookd::serveWorkers(%s, workers = 2L, port = %dL, quiet = TRUE%s)',
                  deparse(app), port, extra)
  p <- processx::process$new("prlimit", c(sprintf("--nofile=%d:%d", soft, hard), "--",
                                           file.path(R.home("bin"), "Rscript"), "-e", code),
                             env = c("current", R_LIBS = paste(.libPaths(), collapse = ":")),
                             stdout = "|", stderr = "|", cleanup_tree = TRUE)
  withr::defer(p$kill_tree(), envir = .env)
  wait_until(function() port_accepts(port), timeout = 60, what = "the pool front")
  # Both workers up: two Rscript children of the front.
  wait_until(function() length(worker_pids(p$get_pid())) == 2, timeout = 60, what = "two workers")
  p
}

worker_pids <- function(front) {
  kids <- suppressWarnings(system2("pgrep", c("-P", front), stdout = TRUE))
  sort(as.integer(kids))
}

soft_nofile <- function(pid) {
  l <- readLines(sprintf("/proc/%d/limits", pid))
  as.numeric(strsplit(trimws(sub("^Max open files", "", grep("^Max open files", l, value = TRUE))), " +")[[1]][1])
}

test_that("more idle connections than descriptors: 503 for the excess, workers untouched, served after", {
  skip_if_no_python()
  skip_if(!nzchar(Sys.which("prlimit")), "prlimit is not installed")
  port <- randomPort()
  f <- edge_app_file(edge_app_code)
  front <- fd_front(f, port, soft = 256, hard = 256)
  pids <- worker_pids(front$get_pid())
  out <- py_run(paste0(py_raw_request, '
import time
port = int(sys.argv[1])
held = []
for i in range(400):
    try:
        s = socket.socket(); s.settimeout(5); s.connect(("127.0.0.1", port)); held.append(s)
    except OSError as e:
        print("connect-error", e); break
time.sleep(8)   # longer than the front health check (2 s), several times
r = request(port, b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n", timeout=10)
print("fresh:", r.split("\\r\\n")[0])
print("retry-after:", "retry-after: 1" in r.lower())
# What the held ones got: a 503 (beyond the cap) or an answer to a request (within it).
codes = {}
for s in held:
    try:
        s.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    except OSError:
        pass
for s in held:
    try:
        line = s.recv(64).split(b"\\r\\n")[0].decode()
    except OSError as e:
        line = "error"
    codes[line[:12]] = codes.get(line[:12], 0) + 1
    s.close()
print("held:", sorted(codes.items()))
time.sleep(1)
print("after:", request(port, b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n", timeout=10).split("\\r\\n")[0])
'), port, timeout = 90)
  expect_true("fresh: HTTP/1.1 503 Service Unavailable" %in% out, info = paste(out, collapse = "\n"))
  expect_true("retry-after: True" %in% out, info = paste(out, collapse = "\n"))
  expect_match(grep("^held:", out, value = TRUE), "HTTP/1.1 503", info = paste(out, collapse = "\n"))
  expect_true("after: HTTP/1.1 200 OK" %in% out, info = paste(out, collapse = "\n"))
  expect_equal(worker_pids(front$get_pid()), pids)
})

test_that("max_connections caps the front's client connections with 503 + Retry-After", {
  skip_if_no_python()
  p <- edge_pool(workers = 1, max_connections = 5)
  pid <- p$workers()$pid
  out <- py_run(paste0(py_raw_request, '
import time
port = int(sys.argv[1])
held = [socket.create_connection(("127.0.0.1", port)) for i in range(5)]
time.sleep(0.5)
r = request(port, b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n", timeout=10)
print(r.split("\\r\\n")[0]); print("retry-after: 1" in r.lower())
for s in held: s.close()
time.sleep(0.5)
print(request(port, b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n", timeout=10).split("\\r\\n")[0])
'), p$getPort())
  expect_equal(out, c("HTTP/1.1 503 Service Unavailable", "True", "HTTP/1.1 200 OK"))
  expect_equal(p$workers()$pid, pid)
  expect_error(startWorkers(edge_app_file(edge_app_code), port = 0, max_connections = 0), "max_connections")
})

test_that("the front raises its soft open-files limit to the hard one; workers keep the original", {
  skip_if(!nzchar(Sys.which("prlimit")), "prlimit is not installed")
  hard <- as.numeric(system2("sh", c("-c", shQuote("ulimit -Hn")), stdout = TRUE))
  skip_if(!is.finite(hard) || hard <= 512, "the hard open-files limit is too low to raise")
  port <- randomPort()
  front <- fd_front(edge_app_file(edge_app_code), port, soft = 300, hard = hard)
  expect_equal(soft_nofile(front$get_pid()), hard)
  # R raises a soft limit below 1024 itself at start-up; past that the workers keep
  # what the front was started with, not the hard limit.
  for (w in worker_pids(front$get_pid())) expect_lt(soft_nofile(w), hard)
})

test_that("a WebSocket keeps a slot under max_connections after its handshake", {
  code <- 'app <- list(call = function(req) list(status = 200L, headers = list(), body = "ok"),
                   onWSOpen = function(ws) ws$send("hi"))'
  p <- edge_pool(code, workers = 1, max_connections = 2)
  got <- ws_py(p$getPort(), '
import http.client, socket
def status():
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    c.request("GET", "/", headers={"Connection": "close"})
    return c.getresponse().status
async def main():
    loop = asyncio.get_running_loop()
    async with connect("/") as a:
        await asyncio.wait_for(a.recv(), 10)
        await asyncio.sleep(0.3)
        held = socket.create_connection(("127.0.0.1", PORT))
        await asyncio.sleep(0.3)
        during = await loop.run_in_executor(None, status)
        held.close()
    await asyncio.sleep(0.3)
    after = await loop.run_in_executor(None, status)
    return [during, after]
')
  # The tunnel and the held connection fill both slots; once they close, all is free.
  expect_equal(unlist(got), c(503, 200))
})
