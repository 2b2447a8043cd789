#!/usr/bin/env bash
# A real plumber API (plumber/plumber.R) run on rookd with
# rookd::with_rookd(pr$run(port = P)), checked with curl. The last line printed is
# "N passed, N failed"; the exit status is non-zero on any failure.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "ok   plumber: $1"; }
bad()  { failed=$((failed + 1)); echo "FAIL plumber: $1"; [ -n "${2:-}" ] && echo "     got: $2"; }
# check NAME GOT WANT-REGEX
check() { if printf '%s' "$2" | grep -Eq -- "$3"; then ok "$1"; else bad "$1" "$(printf '%s' "$2" | head -c 400)"; fi; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"
log=$(mktemp)
work=$(mktemp -d)
Rscript "$here/plumber/serve.R" "$port" >"$log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$log" "$work"; }
trap cleanup EXIT

up=0
for _ in $(seq 1 150); do
  if curl -s -o /dev/null "$base/echo"; then up=1; break; fi
  kill -0 "$server" 2>/dev/null || break
  sleep 0.2
done
if [ "$up" -ne 1 ]; then
  bad "the API starts on rookd (server log below)"
  sed 's/^/     | /' "$log"
  echo "$passed passed, $failed failed"
  exit 1
fi

c() { curl -s --max-time 10 "$@"; }

check "served by rookd (httpuv routed by with_rookd)" "$(c "$base/server")" \
  '^\{"rookd":true,"startServer_is_rookd":true\}$'
check "query string" "$(c "$base/echo?msg=hello%20there")" '^\{"msg":"hello there"\}$'
check "JSON body" "$(c -H 'Content-Type: application/json' -d '{"a":2,"b":40}' "$base/json")" \
  '^\{"sum":42\}$'
check "form body" "$(c --data-urlencode 'name=Ada' --data-urlencode 'city=Zürich' "$base/form")" \
  '^\{"greeting":"hello Ada from Zürich"\}$'
printf 'first line of the upload\nsecond line\n' >"$work/up.txt"
check "multipart body" "$(c -F "upload=@$work/up.txt;type=text/plain" -F 'note=a note' "$base/upload")" \
  '^\{"filename":"up.txt","size":37,"first_line":"first line of the upload","note":"a note"\}$'
c -D "$work/plot.h" -o "$work/plot.png" "$base/plot"
check "PNG endpoint: image/png" "$(cat "$work/plot.h")" '[Cc]ontent-[Tt]ype: image/png'
check "PNG endpoint: a PNG file" "$(head -c 8 "$work/plot.png" | od -An -tx1 | tr -d ' \n')" '^89504e470d0a1a0a$'
check "an R error gives 500" "$(c -o /dev/null -w '%{http_code}' "$base/error")" '^500$'
check "the 500's body is plumber's" "$(c "$base/error")" 'error'
check "Set-Cookie" "$(c -D - -o /dev/null -c "$work/jar" "$base/setcookie?value=oat")" \
  '[Ss]et-[Cc]ookie: flavour=oat'
check "cookie sent back" "$(c -b "$work/jar" "$base/getcookie")" '^\{"flavour":"oat"\}$'
start=$(date +%s%N)
check "async (promise) endpoint" "$(c "$base/async")" '^\{"async":true,"answer":42\}$'
ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "async endpoint took the promise's 0.3 s (${ms} ms)" "$ms" '^([3-9][0-9]{2}|[1-9][0-9]{3})$'
# While one request waits on its promise, others are answered.
c "$base/async" >"$work/async.out" &
slow=$!
sleep 0.05
check "requests are answered while a promise is pending" "$(c "$base/echo?msg=meanwhile")" \
  '^\{"msg":"meanwhile"\}$'
wait "$slow"
check "the pending promise still answers" "$(cat "$work/async.out")" '"answer":42'
check "404 for an unknown path" "$(c -o /dev/null -w '%{http_code}' "$base/nope")" '^404$'

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
