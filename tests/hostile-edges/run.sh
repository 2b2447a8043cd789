#!/usr/bin/env bash
# The edges suite (issue 20): the production layer attacked the way a deployment and an
# attacker would (worker pools, HTTP/2, proxies, the access log, drain, the idle prompt on
# a busy machine). Each test-*.R here is a testthat file run against the installed
# package; the helpers of tests/testthat are loaded first (helper-edges.R), and
# `with_busy_cores()` keeps both cores busy where load matters. Last line:
# "N passed, N failed"; exit status non-zero on failure.
#
#   bash tests/hostile-edges/run.sh [FILTER]    # FILTER: a testthat filter (file name part)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
exec Rscript "$HERE/../../tools/run-r-tests.R" --dir "$HERE" "$@"
