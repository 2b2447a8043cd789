#!/usr/bin/env bash
# R-side hostile suite (issue 12): starts tests/hostile-r/app.R (one rookd server whose app
# exposes what R-side attacks aim at) in an Rscript child, with a lowered bound on HTTP_*
# names (ROOKD_MAX_HEADER_SYMBOLS=300) and a small initial R heap (R_VSIZE=4M, so /tighten
# can make R's allocator fail), runs every case of tests/hostile-r/hostile_r.py against it
# over 127.0.0.1, then stops the child. Last line: "N passed, N failed"; exit status non-zero on failure.
#
#   bash tests/hostile-r/run.sh [-k NAME_SUBSTRING]
# Env: ROOKD_LIB  a library to load rookd from first (default: the usual .libPaths()).
# Needs R with rookd, later and promises installed; python3 (stdlib only).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LIB=${ROOKD_LIB:-}
work=$(mktemp -d)
info="$work/info.json"
rpid=""
cleanup() {
  if [ -n "$rpid" ] && kill -0 "$rpid" 2>/dev/null; then
    kill "$rpid" 2>/dev/null
    for _ in $(seq 1 20); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$rpid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Rscript runs the R binary in the same process (exec), so $! is the R process.
ROOKD_MAX_HEADER_SYMBOLS=300 R_VSIZE=4M timeout 320 Rscript "$HERE/app.R" "$info" "$LIB" >"$work/server.log" 2>&1 &
rpid=$!
for _ in $(seq 1 300); do
  [ -s "$info" ] && break
  kill -0 "$rpid" 2>/dev/null || break
  sleep 0.1
done
if [ ! -s "$info" ]; then
  echo "the R server did not start:"; cat "$work/server.log"
  echo "0 passed, 1 failed"; exit 1
fi
echo "servers: $(cat "$info")"
export ROOKD_LIB="$LIB"
timeout 300 python3 "$HERE/hostile_r.py" "$info" "$@" | tee "$work/out.txt"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
  echo "--- R server log (last 40 lines) ---"
  tail -n 40 "$work/server.log"
  # the summary line must stay last
  grep -E '^[0-9]+ passed, [0-9]+ failed' "$work/out.txt" | tail -n 1
  [ -n "$(grep -E '^[0-9]+ passed' "$work/out.txt")" ] || echo "0 passed, 1 failed"
fi
exit "$rc"
