#!/usr/bin/env bash
# The deploy configs inst/deploy/nginx-pool.conf and inst/deploy/haproxy-pool.cfg, run
# for real in front of two rookd processes (Rscript children on free ports): sticky
# sessions (a client stays on its backend over HTTP and WebSocket; fresh clients reach
# both) and WebSocket upgrades through each proxy. Last line: "N passed, N failed".
#
#   bash tests/pool-proxies/run.sh
# Env: ROOKD_LIB  a library to load rookd from first. Needs nginx, haproxy, python3
# with websockets (tools/install-deps); a missing proxy binary fails its checks.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py=""
for c in "${ROOKD_PYTHON:-}" python3 /usr/bin/python3; do
  [ -n "$c" ] && "$c" -c 'import websockets' 2>/dev/null && { py=$c; break; }
done
[ -n "$py" ] || { echo "no python3 with websockets (Debian: python3-websockets)"; echo "0 passed, 1 failed"; exit 1; }
timeout 120 "$py" "$here/check.py" "$here/../../inst/deploy"
