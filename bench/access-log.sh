#!/usr/bin/env bash
# The access log's cost on hello world: the same app on two rookd servers in one R
# process, access_log off and on (combined, to a file), driven alternately with
# `wrk -t1 -c32` (RUNS runs of DURATION s each, interleaved so drift hits both alike).
# Prints each run and the medians.
#
#   bash bench/access-log.sh [RUNS] [DURATION]      (defaults 5 and 5)
# Env: ROOKD_LIB  a library to load rookd from first.
set -euo pipefail
RUNS=${1:-5}
DUR=${2:-5}
work=$(mktemp -d)
rpid=""
cleanup() { [ -n "$rpid" ] && kill "$rpid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cat >"$work/serve.R" <<'R'
args <- commandArgs(trailingOnly = TRUE)
if (nzchar(args[2])) .libPaths(c(args[2], .libPaths()))
library(rookd)
app <- function(req) list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "Hello, world!")
off <- startServer("127.0.0.1", 0, app)
on <- startServer("127.0.0.1", 0, app, options = rookdOptions(access_log = file.path(args[1], "access.log")))
writeLines(as.character(c(off$getPort(), on$getPort())), file.path(args[1], "ports.tmp"))
file.rename(file.path(args[1], "ports.tmp"), file.path(args[1], "ports"))
service(Inf)
R
Rscript "$work/serve.R" "$work" "${ROOKD_LIB:-}" >"$work/server.log" 2>&1 &
rpid=$!
for _ in $(seq 1 600); do [ -s "$work/ports" ] && break; sleep 0.1; done
[ -s "$work/ports" ] || { cat "$work/server.log"; exit 1; }
mapfile -t ports <"$work/ports"
rate() { wrk -t1 -c32 -d"${DUR}s" "http://127.0.0.1:$1/" | awk '/Requests\/sec/ {print $2}'; }
rate "${ports[0]}" >/dev/null; rate "${ports[1]}" >/dev/null  # warm-up
offs=(); ons=()
for i in $(seq 1 "$RUNS"); do
  a=$(rate "${ports[0]}"); b=$(rate "${ports[1]}")
  offs+=("$a"); ons+=("$b")
  echo "run $i: off $a req/s, on $b req/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
mo=$(median "${offs[@]}"); mn=$(median "${ons[@]}")
echo "median: off $mo req/s, on $mn req/s ($(awk -v a="$mo" -v b="$mn" 'BEGIN {printf "%+.1f", (b-a)/a*100}') %)"
echo "log lines written: $(wc -l <"$work/access.log")"
