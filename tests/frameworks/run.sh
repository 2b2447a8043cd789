#!/usr/bin/env bash
# Real frameworks on rookd, unchanged, each routed with rookd::with_rookd():
#   1. plumber.sh        a plumber API (plumber/plumber.R) checked with curl
#   2. shiny.test.mjs    a Shiny app (shiny/app) driven in headless Chromium
#   3. shiny-pool.test.mjs  a Shiny app (shiny-pool) behind serveWorkers(workers = 2):
#                        two browser sessions, each staying on its worker
#
#   bash tests/frameworks/run.sh
#
# Installs what is missing first, as tests/browser/run.sh does (Debian's chromium, and
# playwright-core with `npm ci` in tests/browser, whose copy the Shiny test uses). Needs
# the rookd R package installed, and Shiny, plumber and promises (tools/install-deps).
# The last line printed is "N passed, N failed" over both parts; the exit status is
# non-zero on any failure.
# Env: FRAMEWORKS_ENGINE=httpuv runs the same checks against httpuv (a reference run; the
#      "served by rookd" checks then fail), CHROMIUM, FRAMEWORKS_TEST_TIMEOUT.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

fail() {
  echo "tests/frameworks: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else return 1; fi
}

Rscript -e 'suppressPackageStartupMessages({library(rookd); library(shiny); library(plumber); library(promises)})' \
  >/dev/null 2>&1 || fail "rookd, shiny, plumber or promises is not installed (tools/install-deps, tools/install-package)"
command -v curl >/dev/null 2>&1 || fail "curl was not found"

if [ ! -x "$CHROMIUM" ]; then
  echo "tests/frameworks: installing Debian's chromium"
  log=$(mktemp)
  if ! { as_root apt-get update -qq &&
         as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
       >"$log" 2>&1; then
    tail -n 20 "$log" >&2; rm -f "$log"
    fail "could not install chromium (run as root, or with sudo)"
  fi
  rm -f "$log"
  [ -x "$CHROMIUM" ] || fail "no browser at $CHROMIUM"
fi
command -v node >/dev/null 2>&1 || fail "node was not found (node >= 18 and npm are needed)"
browser_dir="$root/tests/browser"
have_pw=$(cd "$browser_dir" && node -e '
  const want = require("./package-lock.json").packages["node_modules/playwright-core"].version;
  let have = null;
  try { have = require("./node_modules/playwright-core/package.json").version; } catch (e) {}
  console.log(have === want ? "yes" : "no");' 2>/dev/null)
if [ "$have_pw" != yes ]; then
  command -v npm >/dev/null 2>&1 || fail "npm was not found"
  echo "tests/frameworks: npm ci in tests/browser (playwright-core, no browser download)"
  (cd "$browser_dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund \
     --ignore-scripts --loglevel=error) || fail "npm ci failed"
fi

total_passed=0
total_failed=0
tally() { # the "N passed, N failed" last line of a part's output file
  local line
  line=$(tail -n 1 "$1")
  if [[ "$line" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
    total_passed=$((total_passed + BASH_REMATCH[1]))
    total_failed=$((total_failed + BASH_REMATCH[2]))
  else
    total_failed=$((total_failed + 1))
    echo "tests/frameworks: $2 ended without its summary line" >&2
  fi
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "=== tests/frameworks: plumber (curl)"
timeout --kill-after=10 180 bash "$here/plumber.sh" | tee "$out"
tally "$out" plumber.sh

echo "=== tests/frameworks: Shiny (headless Chromium)"
limit=$(( ${FRAMEWORKS_TEST_TIMEOUT:-240} + 60 ))
timeout --kill-after=10 "$limit" node "$here/shiny.test.mjs" | tee "$out"
tally "$out" shiny.test.mjs

echo "=== tests/frameworks: Shiny behind rookd's worker pool (headless Chromium)"
timeout --kill-after=10 200 node "$here/shiny-pool.test.mjs" | tee "$out"
tally "$out" shiny-pool.test.mjs

echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
