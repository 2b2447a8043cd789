#!/usr/bin/env bash
# End-to-end browser tests: the demo's WebSocket chat (tests/browser/chat.test.mjs) and
# a 40-asset page over HTTPS (tests/browser/tls.test.mjs, server tls-site.R):
# headless Chromium from Debian's `chromium` package, driven by playwright-core (pinned
# in package.json and package-lock.json; no browser download, never `playwright install`).
#
#   bash tests/browser/run.sh
#
# Installs what is missing first: the chromium package (apt-get, as root or with sudo)
# and the npm packages (`npm ci` into tests/browser/node_modules). Needs node >= 18 with
# npm, and the rookd R package installed (tools/install-package). The screenshot goes to
# tests/browser/artifacts/chat.png. The last line printed is "N passed, N failed"; the
# exit status is non-zero on any failure.
# Env: CHROMIUM (default /usr/bin/chromium), CHAT_TEST_TIMEOUT (seconds, default 120).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

fail() {
  echo "tests/browser: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else return 1; fi
}

if [ ! -x "$CHROMIUM" ]; then
  echo "tests/browser: installing Debian's chromium"
  log=$(mktemp)
  if ! { as_root apt-get update -qq &&
         as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
       >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    fail "could not install chromium (run as root, or with sudo)"
  fi
  rm -f "$log"
  [ -x "$CHROMIUM" ] || fail "no browser at $CHROMIUM"
fi

command -v node >/dev/null 2>&1 || fail "node was not found (node >= 18 and npm are needed)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] || fail "node $(node --version) is too old: node >= 18 is needed"

# node_modules as the lock file says (npm ci when missing or at another version)
lock_matches() {
  node -e '
    const want = require("./package-lock.json").packages["node_modules/playwright-core"].version;
    let have = null;
    try { have = require("./node_modules/playwright-core/package.json").version; } catch (e) {}
    process.exit(have === want ? 0 : 1);' 2>/dev/null
}
if ! lock_matches; then
  command -v npm >/dev/null 2>&1 || fail "npm was not found"
  echo "tests/browser: npm ci (playwright-core, no browser download)"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error \
    || fail "npm ci failed"
fi

Rscript -e 'suppressPackageStartupMessages(library(rookd))' >/dev/null 2>&1 \
  || fail "the rookd R package is not installed (bash tools/install-package)"

# Each test bounds itself (chat: CHAT_TEST_TIMEOUT; tls: 120 s); this is the backstop.
# Their "N passed, N failed" lines are summed into the last line.
total_passed=0; total_failed=0; status=0
run_test() { # file limit
  local out rc line
  out=$(mktemp)
  timeout --kill-after=10 "$2" node "$1" | tee "$out"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "tests/browser: $1 was killed after $2 s" >&2
  fi
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
  rm -f "$out"
  if [ -n "$line" ]; then
    total_passed=$(( total_passed + ${line%% passed*} ))
    f=${line#*, }; total_failed=$(( total_failed + ${f%% failed} ))
  else
    total_failed=$(( total_failed + 1 ))
  fi
  [ "$rc" -eq 0 ] || status=1
}
run_test chat.test.mjs $(( ${CHAT_TEST_TIMEOUT:-120} + 60 ))
run_test tls.test.mjs 180
echo "${total_passed} passed, ${total_failed} failed"
exit "$status"
