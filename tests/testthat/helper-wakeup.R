# Lock-step at the idle prompt: one keep-alive connection sends a request, waits for its
# answer, sends the next (test-wakeup.R, and tests/hostile-edges on a busy machine).
#
# A lost wake-up leaves a request waiting until something else wakes R; at an idle prompt
# nothing does, so the client would wait for ever. The client gives each answer `patience`
# seconds: one that does not come in time is counted as lost, and the client reconnects
# and goes on, so one run counts every loss instead of stopping at the first.

wakeup_client_py <- '
import http.client, json, random, sys, time
host, port, secs, patience = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
pause_every = int(sys.argv[5])
def connect():
    return http.client.HTTPConnection(host, port, timeout=patience)
conn = connect()
lat, slow, errors, lost, ports = [], [], [], [], set()
start = time.monotonic()
end = start + secs
i = 0
while time.monotonic() < end:
    i += 1
    # Back to back, or after a short pause that lets R go back to sleep at the prompt.
    if pause_every and i % pause_every == 0:
        time.sleep(random.uniform(0, 0.005))
    t = time.perf_counter()
    t_abs = time.time()
    try:
        conn.request("GET", "/w%d" % i)
        r = conn.getresponse()
        body = r.read().decode()
    except TimeoutError:
        lost.append(round(time.monotonic() - start, 3))
        conn.close()
        conn = connect()
        continue
    except Exception as e:
        errors.append("%s: %s" % (type(e).__name__, e))
        if len(errors) > 10:
            break
        conn.close()
        conn = connect()
        continue
    d = time.perf_counter() - t
    lat.append(d)
    if r.status != 200:
        errors.append("status %d" % r.status)
    ports.add(body.split(" ")[3] if len(body.split(" ")) > 3 else "?")
    if d > 0.1:
        # How much of it was waiting for R to run the app (the app reports Sys.time()).
        try:
            to_app = (float(body.split(" ")[1]) - t_abs) * 1000
        except Exception:
            to_app = -1
        slow.append([round(time.monotonic() - start, 3), round(d * 1000, 1), round(to_app, 1)])
lat.sort()
n = len(lat)
q = lambda p: lat[min(n - 1, int(p * n))] * 1000 if n else None
json.dump({"count": n, "seconds": time.monotonic() - start, "p50_ms": q(0.5), "p99_ms": q(0.99),
           "max_ms": lat[-1] * 1000 if n else None, "slow": slow[:50], "n_slow": len(slow),
           "lost": lost[:50], "n_lost": len(lost), "errors": errors[:10],
           "connections": len(ports)}, sys.stdout)
'

# A control run alongside: two plain processes ping-ponging a byte over pipes with the same
# rhythm. Its worst round trip shows how much of any slowness is the machine (CPU
# contention), not rookd.
pingpong_py <- '
import json, os, random, sys, time
secs = float(sys.argv[1])
r1, w1 = os.pipe(); r2, w2 = os.pipe()
if os.fork() == 0:
    while True:
        b = os.read(r1, 1)
        if not b or b == b"q":
            os._exit(0)
        os.write(w2, b)
lat = []
end = time.monotonic() + secs
i = 0
while time.monotonic() < end:
    i += 1
    if i % 2 == 0:
        time.sleep(random.uniform(0, 0.005))
    t = time.perf_counter()
    os.write(w1, b"x")
    os.read(r2, 1)
    lat.append(time.perf_counter() - t)
os.write(w1, b"q")
lat.sort()
json.dump({"count": len(lat), "max_ms": lat[-1] * 1000, "n_slow": sum(1 for x in lat if x > 0.1)}, sys.stdout)
'

readLines_safe <- function(path) tryCatch(readLines(path, warn = FALSE), error = function(e) "?")

# Run the lock-step client for `secs` against the tmux session `sess` (tmux_r_session()),
# with the ping-pong control alongside; report what was seen (message()) and return the
# client's figures (count, p50/p99/max ms, n_slow, n_lost, lost, errors, connections).
# `pause_every`: after every n-th request the client pauses up to 5 ms (0: never pauses).
lockstep_at_prompt <- function(sess, secs, patience = 5, pause_every = 2L,
                               label = "wake-up test") {
  script <- tempfile(fileext = ".py")
  writeLines(wakeup_client_py, script)
  on.exit(unlink(script), add = TRUE)
  control_script <- tempfile(fileext = ".py")
  writeLines(pingpong_py, control_script)
  on.exit(unlink(control_script), add = TRUE)
  control <- processx::process$new("python3", c(control_script, secs), stdout = "|", stderr = "|",
                                   cleanup = TRUE)
  on.exit(if (control$is_alive()) control$kill(), add = TRUE)
  run <- processx::run("python3", c(script, "127.0.0.1", sess$port, secs, patience, pause_every),
                       timeout = secs + 120, error_on_status = FALSE)
  control$wait(10000)
  ctl <- tryCatch(jsonlite::fromJSON(control$read_all_output()), error = function(e) NULL)
  if (run$status != 0L) stop("the lock-step client failed: ", run$stderr, call. = FALSE)
  res <- jsonlite::fromJSON(run$stdout, simplifyVector = TRUE)
  message(sprintf(
    "%s: %d requests in %.1f s on %d connection(s); p50 %.2f ms, p99 %.2f ms, max %.2f ms; %d over 100 ms; %d lost (no answer in %g s)",
    label, res$count, res$seconds, res$connections, res$p50_ms, res$p99_ms, res$max_ms,
    res$n_slow, res$n_lost, patience))
  if (res$n_lost > 0) message("lost at [s into the run]: ", paste(res$lost, collapse = ", "))
  if (res$n_slow > 0) {
    message("slow replies [s into the run: total ms / ms until the app ran]: ",
            paste(apply(as.matrix(res$slow), 1, function(x) sprintf("%.3f: %.1f / %.1f", x[1], x[2], x[3])),
                  collapse = "; "))
  }
  message("load average: ", paste(readLines_safe("/proc/loadavg"), collapse = " "),
          if (!is.null(ctl)) sprintf("; control (pipe ping-pong between two plain processes, same rhythm): %d round trips, max %.2f ms, %d over 100 ms",
                                     ctl$count, ctl$max_ms, ctl$n_slow) else "")
  res
}
