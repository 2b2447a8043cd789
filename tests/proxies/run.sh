#!/usr/bin/env bash
# rookd behind real reverse proxies: starts tests/proxies/app.R (rookd servers) in an
# Rscript child, then nginx (inst/deploy/nginx.conf) and two HAProxy instances
# (inst/deploy/haproxy.cfg with send-proxy-v2, and with send-proxy for v1), each from the
# shipped file with its placeholders filled in by sed, on free 127.0.0.1 ports, all files
# in a temp dir; then runs check.py (curl and python3-websockets). Last line:
# "N passed, N failed"; exit status non-zero on failure.
#
#   bash tests/proxies/run.sh
# Env: ROOKD_LIB  a library to load rookd from first.
# Needs nginx (Debian nginx-light), haproxy, curl, python3 with websockets.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DEPLOY="$HERE/../../inst/deploy"
LIB=${ROOKD_LIB:-}
for bin in nginx haproxy curl python3; do
  if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then
    echo "skipped: $bin is not installed"; echo "0 passed, 0 failed"; exit 0
  fi
done
# A python3 with the websockets package (a pyenv shim may lack it; Debian's has it).
PY=""
for cand in "${ROOKD_PYTHON:-}" python3 /usr/bin/python3; do
  [ -n "$cand" ] && "$cand" -c 'import websockets' 2>/dev/null && { PY=$cand; break; }
done
if [ -z "$PY" ]; then echo "skipped: no python3 with websockets"; echo "0 passed, 0 failed"; exit 0; fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null
    for _ in $(seq 1 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "$1"; for f in "$work"/*.log; do echo "--- $f"; tail -n 20 "$f"; done; echo "0 passed, 1 failed"; exit 1; }

timeout 200 Rscript "$HERE/app.R" "$work/info.json" "$LIB" >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do [ -s "$work/info.json" ] && break; sleep 0.1; done
[ -s "$work/info.json" ] || fail "the R server did not start"
read -r plain pp < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["plain"], d["pp"])' "$work/info.json")
read -r p_nginx p_v2 p_v1 p_s2 p_s1 < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(5)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')

# nginx, from the shipped file.
mkdir -p "$work/nginx"
sed -e "s|@PREFIX@|$work/nginx|g" -e "s|@LISTEN@|127.0.0.1:$p_nginx|g" -e "s|@ROOKD@|127.0.0.1:$plain|g" \
  "$DEPLOY/nginx.conf" >"$work/nginx.conf"
"$NGINX" -p "$work/nginx" -c "$work/nginx.conf" -e "$work/nginx/error.log" >"$work/nginx.log" 2>&1 &
pids+=($!)

# HAProxy v2 (the shipped file) and v1 (send-proxy), each with a stats page to read the
# health check's result from.
haproxy_conf() { # listen port, stats port, sed for the PROXY version
  sed -e "s|@LISTEN@|127.0.0.1:$1|g" -e "s|@ROOKD@|127.0.0.1:$pp|g" -e "s|@CHECK@|/readyz|g" -e "$3" "$DEPLOY/haproxy.cfg"
  printf '\nlisten stats\n  bind 127.0.0.1:%s\n  stats enable\n  stats uri /stats\n' "$2"
}
haproxy_conf "$p_v2" "$p_s2" "s|^x||" >"$work/haproxy-v2.cfg"
haproxy_conf "$p_v1" "$p_s1" "s|send-proxy-v2|send-proxy|" >"$work/haproxy-v1.cfg"
grep -q "send-proxy$" "$work/haproxy-v1.cfg" || fail "could not make the v1 HAProxy config"
"$HAPROXY" -db -f "$work/haproxy-v2.cfg" >"$work/haproxy-v2.log" 2>&1 &
pids+=($!)
"$HAPROXY" -db -f "$work/haproxy-v1.cfg" >"$work/haproxy-v1.log" 2>&1 &
pids+=($!)

for port in "$p_nginx" "$p_v2" "$p_v1" "$p_s2" "$p_s1"; do
  for _ in $(seq 1 100); do
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' "$port" 2>/dev/null && break
    sleep 0.1
  done
done
cat >"$work/ports.json" <<JSON
{"plain": $plain, "pp": $pp, "nginx": $p_nginx, "haproxy_v2": $p_v2, "haproxy_v1": $p_v1,
 "stats_v2": $p_s2, "stats_v1": $p_s1}
JSON
echo "ports: $(tr -d '\n' <"$work/ports.json")"
timeout 150 "$PY" "$HERE/check.py" "$work/ports.json" | tee "$work/out.txt"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
  for f in "$work"/*.log "$work"/nginx/error.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }; done
fi
curl -s --max-time 5 "http://127.0.0.1:$plain/quit" >/dev/null
tail -n 1 "$work/out.txt" | grep -qE '^[0-9]+ passed, [0-9]+ failed$' || echo "0 passed, 1 failed"
exit "$rc"
