#!/usr/bin/env bash
# Soak: >= 1,000,000 mixed HTTP requests and WebSocket messages with random disconnects
# against an R-hosted rookd on 127.0.0.1 (wrk + tests/soak/mixed.lua for HTTP volume, the
# stdlib Python threads of tests/soak/soak.py for WebSockets, HEAD, chunked uploads and
# clients that leave mid-request/response/frame, and R-side attacks on a second server:
# refused upgrades, clients leaving before a late streamed/owned-file answer, long,
# underscore and never-seen header names, U+0000 in WebSocket text and close reasons). Samples the R process's RSS and fds at
# start, after warm-up and at the end; fails if RSS grows > 10 % after warm-up or fds grow.
# Bounded: at most ~9 minutes (--max-secs 540). Not part of CI.
#
#   bash tests/soak/run.sh [--target N] [--max-secs S] [--warmup-secs S] [--threads N]
# Env: ROOKD_LIB  a library to load rookd from first. Needs wrk and python3.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LIB=${ROOKD_LIB:-}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; echo "0 passed, 1 failed"; exit 1; }
work=$(mktemp -d)
info="$work/info.json"
rpid=""
cleanup() {
  if [ -n "$rpid" ] && kill -0 "$rpid" 2>/dev/null; then
    kill "$rpid" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$rpid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
timeout 660 Rscript "$HERE/app.R" "$info" 620 "$LIB" >"$work/server.log" 2>&1 &
rpid=$!
for _ in $(seq 1 300); do
  [ -s "$info" ] && break
  kill -0 "$rpid" 2>/dev/null || break
  sleep 0.1
done
if [ ! -s "$info" ]; then
  echo "the R server did not start:"; cat "$work/server.log"; echo "0 passed, 1 failed"; exit 1
fi
echo "server: $(cat "$info")"
timeout 620 python3 "$HERE/soak.py" "$info" "$@"
rc=$?
if [ "$rc" -ne 0 ]; then
  echo "--- R server log (last 20 distinct lines) ---"
  sort "$work/server.log" | uniq -c | sort -rn | head -n 20
  [ "$rc" -eq 124 ] && echo "0 passed, 1 failed"
fi
exit "$rc"
