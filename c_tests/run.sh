#!/usr/bin/env bash
# Runs each C test program; each prints its own "N passed, N failed" line.
set -u
failed=0
for t in "$@"; do
  echo "== $t"
  if ! "$t"; then
    echo "FAILED: $t"
    failed=$((failed + 1))
  fi
done
echo "C test programs: $(($# - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
