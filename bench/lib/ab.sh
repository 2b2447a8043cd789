# Shared by the two-build benchmarks (bench/metrics-cost, bench/edges-cost): start a
# server, load it with wrk, read its CPU time from /proc, take medians. Source it after
# setting WORK (a scratch directory), then `trap ab_cleanup EXIT INT TERM`: every server
# started here leaves WORK/NAME.pid (also from a $(...) subshell), and ab_cleanup stops
# them all, the tmux sessions (TSOCK) too.

ab_cleanup() {
  local f
  for f in "$WORK"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  [ -n "${TSOCK:-}" ] && tmux -L "$TSOCK" kill-server 2>/dev/null
  rm -rf "$WORK"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

wait_http() { # port
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done
  return 1
}

# start NAME LIB OPTIONS-EXPRESSION: Rscript looping service(100) with bench/apps/app.R's
# hello world app; prints the port; NAME.pid holds the R process.
start() {
  local port; port=$(free_port)
  cat > "$WORK/$1.R" <<R
source("$HERE/apps/app.R")
library(rookd)
s <- startServer("127.0.0.1", $port, bench_app(), options = $3)
repeat service(100)
R
  R_LIBS="$2" Rscript "$WORK/$1.R" > "$WORK/$1.log" 2>&1 &
  echo $! > "$WORK/$1.pid"
  wait_http "$port"
  echo "$port"
}

# run NAME PORT [CONNECTIONS]: one wrk run (-t1, keep-alive); appends req/s to NAME.rps and
# the whole server process's CPU time per request (µs, utime + stime) to NAME.cpu.
run() {
  local pid c0 c1 out conns=${3:-32}
  pid=$(cat "$WORK/$1.pid")
  c0=$(cpu_ticks "$pid")
  out=$(wrk -t1 -c"$conns" -d"${SECS}s" "http://127.0.0.1:$2/")
  c1=$(cpu_ticks "$pid")
  echo "$out" | awk '/Requests\/sec/ {print $2}' >> "$WORK/$1.rps"
  echo "$out" | awk -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" \
    '/requests in/ {printf "%.2f\n", 1e6 * d / hz / $1}' >> "$WORK/$1.cpu"
}

median() { sort -g "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

pct() { awk -v m="$1" -v b="$2" 'BEGIN {printf "%+.1f", 100 * (m - b) / b}'; }

# report BASE NAME...: one line per name, medians and the change relative to BASE.
report() {
  local base=$1 B BC M C name
  B=$(median "$WORK/$base.rps"); BC=$(median "$WORK/$base.cpu")
  for name in "$@"; do
    M=$(median "$WORK/$name.rps"); C=$(median "$WORK/$name.cpu")
    printf '%-14s %8.0f req/s (%s %%)  %6.2f us CPU/request (%s %%)   req/s runs: %s\n' "$name" "$M" \
      "$(pct "$M" "$B")" "$C" "$(pct "$C" "$BC")" "$(tr '\n' ' ' < "$WORK/$name.rps")"
  done
}
