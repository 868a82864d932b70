#!/usr/bin/env bash
# Run each test target of `make test` in order, keep going after a failure so one run shows
# every failing area, print a summary table, and exit non-zero if any target failed.
set -uo pipefail
declare -a results=()
failed=0
for t in "$@"; do
  start=$(date +%s)
  echo "=== make $t"
  if make --no-print-directory "$t"; then rc=0; else rc=$?; failed=$((failed + 1)); fi
  results+=("$(printf '%-28s %-6s %5ss' "$t" "$([ $rc = 0 ] && echo ok || echo FAIL)" $(( $(date +%s) - start )))")
done
echo "=== summary"
printf '%s\n' "${results[@]}"
passed=$(( $# - failed ))
echo "targets: ${passed} passed, ${failed} failed"
[ "$failed" = 0 ]
