#!/usr/bin/env bash
# Autobahn|Testsuite (fuzzingclient) against a WebSocket echo server.
#
#   tests/autobahn/run.sh [--summary FILE] [-- SERVER COMMAND ...]
#
# Without a server command, builds and starts rookd-engine's ws_echo example. The server
# must echo on ws://127.0.0.1:$AUTOBAHN_PORT (it is given the port as its last argument
# when it is the default). Prints one line per behaviour (OK, NON-STRICT, INFORMATIONAL,
# FAILED, UNIMPLEMENTED, ...) with case counts, per test section and in total, and exits
# non-zero if any case FAILED or is UNIMPLEMENTED (or the run did not complete).
#
# Environment:
#   AUTOBAHN_CASES     space-separated case patterns (default: 1.* .. 10.*, 12.*, 13.*)
#   AUTOBAHN_PORT      port for the server (default 9001)
#   AUTOBAHN_PREFIX    where the Python 2.7 test suite is installed (default ~/.cache/rookd/autobahn-py27)
#   AUTOBAHN_PYTHON    a Python 2.7 interpreter (default: pyenv's 2.7.18)
#   AUTOBAHN_REPORT    report directory (default: a temporary one)
#   AUTOBAHN_TIMEOUT   seconds the whole fuzzing run may take (default 2400)
#   AUTOBAHN_JOBS      fuzzing clients run side by side, each on a share of the cases (default 2)
#   CARGO_TARGET_DIR   honoured when building ws_echo
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
summary_file=""
server_cmd=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --summary) summary_file="$2"; shift 2 ;;
    --) shift; server_cmd=("$@"); break ;;
    *) echo "usage: $0 [--summary FILE] [-- SERVER COMMAND ...]" >&2; exit 2 ;;
  esac
done

port="${AUTOBAHN_PORT:-9001}"
cases="${AUTOBAHN_CASES:-1.* 2.* 3.* 4.* 5.* 6.* 7.* 8.* 9.* 10.* 12.* 13.*}"
prefix="${AUTOBAHN_PREFIX:-$HOME/.cache/rookd/autobahn-py27}"
timeout_s="${AUTOBAHN_TIMEOUT:-2400}"

# --- Python 2.7 and the test suite --------------------------------------------------
# autobahntestsuite (last release 0.8.2) runs on Python 2 only. Its dependencies are
# pinned to the last releases that still support 2.7, installed into a private prefix
# (--ignore-installed so the interpreter's own packages are never touched).
py27="${AUTOBAHN_PYTHON:-}"
if [[ -z "$py27" ]]; then
  if command -v pyenv >/dev/null 2>&1 && [[ -x "$(pyenv root)/versions/2.7.18/bin/python" ]]; then
    py27="$(pyenv root)/versions/2.7.18/bin/python"
  elif command -v python2.7 >/dev/null 2>&1; then
    py27="$(command -v python2.7)"
  else
    echo "autobahn: no Python 2.7 found (set AUTOBAHN_PYTHON)" >&2
    exit 1
  fi
fi
site="$prefix/lib/python2.7/site-packages"
stamp="$prefix/.requirements"
if ! cmp -s "$here/requirements-py27.txt" "$stamp" 2>/dev/null; then
  echo "autobahn: installing the test suite into $prefix"
  rm -rf "$prefix"
  mkdir -p "$prefix"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$py27" -m pip install -q --no-cache-dir --ignore-installed \
    --no-warn-script-location --prefix "$prefix" -r "$here/requirements-py27.txt"
  cp "$here/requirements-py27.txt" "$stamp"
fi
# site.addsitedir (not PYTHONPATH) so the namespace packages' .pth files are honoured.
wstest=("$py27" -W ignore -c "import site, sys; site.addsitedir('$site'); sys.argv = ['wstest'] + sys.argv[1:]
from autobahntestsuite.wstest import run; run()")

# --- The server ------------------------------------------------------------------------
if [[ ${#server_cmd[@]} -eq 0 ]]; then
  echo "autobahn: building ws_echo"
  (cd "$repo/src/rust" && cargo build -q -j 2 --release --example ws_echo)
  target_dir="${CARGO_TARGET_DIR:-$repo/src/rust/target}"
  server_cmd=("$target_dir/release/examples/ws_echo" "$port")
fi

work="$(mktemp -d)"
report="${AUTOBAHN_REPORT:-$work/report}"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"${server_cmd[@]}" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "autobahn: the server exited:" >&2; cat "$work/server.log" >&2; exit 1
  fi
  sleep 0.1
done

# --- The run ----------------------------------------------------------------------------
# The fuzzing client is single-threaded Python and is the bottleneck (the compression
# cases alone are ~200 cases of 1000 round trips each), so the cases are spread over
# $AUTOBAHN_JOBS clients running side by side against the same server; their reports are
# merged. 12.* and 13.* are split into their subsections so the shards are balanced.
jobs="${AUTOBAHN_JOBS:-2}"
patterns=()
set -f # the patterns are Autobahn's, not file globs
for p in $cases; do
  case "$p" in
    "12.*") patterns+=(12.1.\* 12.2.\* 12.3.\* 12.4.\* 12.5.\*) ;;
    "13.*") patterns+=(13.1.\* 13.2.\* 13.3.\* 13.4.\* 13.5.\* 13.6.\* 13.7.\*) ;;
    *) patterns+=("$p") ;;
  esac
done
set +f
echo "autobahn: running cases: $cases (in $jobs shards)"
start=$(date +%s)
pids=()
indexes=()
for ((j = 0; j < jobs; j++)); do
  shard=()
  for ((k = j; k < ${#patterns[@]}; k += jobs)); do shard+=("\"${patterns[k]}\""); done
  [[ ${#shard[@]} -eq 0 ]] && continue
  mkdir -p "$work/shard$j"
  cat >"$work/shard$j/fuzzingclient.json" <<JSON
{
  "outdir": "$report/shard$j",
  "servers": [{"agent": "rookd", "url": "ws://127.0.0.1:$port"}],
  "cases": [$(IFS=,; echo "${shard[*]}")],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON
  (cd "$work/shard$j" && exec timeout "$timeout_s" "${wstest[@]}" -m fuzzingclient -s fuzzingclient.json >wstest.log 2>&1) &
  pids+=($!)
  indexes+=("$report/shard$j/index.json")
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
elapsed=$(( $(date +%s) - start ))
if [[ $failed -ne 0 ]]; then
  echo "autobahn: a fuzzing client failed or timed out:" >&2
  tail -n 20 "$work"/shard*/wstest.log >&2
  exit 1
fi
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "autobahn: the server died during the run:" >&2; tail -20 "$work/server.log" >&2; exit 1
fi

python3 "$here/summarize.py" "${indexes[@]}" --elapsed "$elapsed" --cases "$cases" ${summary_file:+--markdown "$summary_file"}
