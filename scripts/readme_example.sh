#!/usr/bin/env bash
# Compiles and runs the C example of README.md, so the README cannot rot.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
awk '/^```c$/{on=1; next} /^```$/{if(on) exit} on' "$root/README.md" > "$work/example.c"
gcc -std=c11 -Wall -Wextra -Werror -I"$root/include" -o "$work/example" "$work/example.c" \
    -L"$root/target/release" -lrio -Wl,-rpath,"$root/target/release"
out=$(cd "$work" && ./example)
echo "$out"
case "$out" in
  "read 16 bytes: hello, io_uring (backend "*) echo "README C example: 1 passed, 0 failed" ;;
  *) echo "README C example: 0 passed, 1 failed (unexpected output)"; exit 1 ;;
esac
