#!/usr/bin/env bash
# `make test-install`: installs librio into a temporary prefix, then builds
# and runs C and C++ examples with `pkg-config ... rio` against the
# installed copy only (shared, and static from librio.a), and checks a
# DESTDIR staged install. Prints "test-install: N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
make=${MAKE:-make}
version=${RIO_VERSION:?}
IFS=. read -r major minor patch <<<"$version"
work=$(mktemp -d /tmp/rio-install-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
passed=0 failed=0
check() { # check "description" command...
  local what=$1; shift
  if "$@" >"$work/out" 2>&1; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "  FAIL: $what"
    sed 's/^/    /' "$work/out" | tail -n 20
  fi
}
contains() { grep -q -- "$2" <<<"$1"; }

echo "== make install PREFIX=$prefix"
if ! "$make" -s -C "$root" install PREFIX="$prefix" >"$work/install.log" 2>&1; then
  cat "$work/install.log"
  echo "test-install: 0 passed, 1 failed (make install)"
  exit 1
fi
lib=$prefix/lib
soname=librio.so.$major
real=$soname.$minor.$patch
check "$real is a regular file" test -f "$lib/$real" -a ! -L "$lib/$real"
check "$soname -> $real" test "$(readlink "$lib/$soname")" = "$real"
check "librio.so -> $soname" test "$(readlink "$lib/librio.so")" = "$soname"
check "installed soname is $soname" sh -c "readelf -d '$lib/$real' | grep -q 'SONAME.*\\[$soname\\]'"
check "librio.a installed" test -s "$lib/librio.a"
check "rio.h installed and identical" cmp "$root/include/rio.h" "$prefix/include/rio.h"
check "rio.hpp installed and identical" cmp "$root/include/rio.hpp" "$prefix/include/rio.hpp"
check "rio.pc installed" test -f "$lib/pkgconfig/rio.pc"

export PKG_CONFIG_PATH=$lib/pkgconfig
unset PKG_CONFIG_LIBDIR
cflags=$(pkg-config --cflags rio) libs=$(pkg-config --libs rio) slibs=$(pkg-config --static --libs rio)
echo "   pkg-config: --cflags '$cflags' --libs '$libs' --static --libs '$slibs'"
check "pkg-config --modversion = $version" test "$(pkg-config --modversion rio)" = "$version"
check "pkg-config --cflags names the prefix" contains "$cflags" "-I$prefix/include"
check "pkg-config --libs names the prefix" contains "$libs" "-L$lib -lrio"
check "pkg-config --static adds the native libs" contains "$slibs" "-lpthread"
not_in() { ! grep -qF -- "$2" <<<"$1"; }
check "pkg-config output does not name the build tree" not_in "$cflags $libs $slibs" "$root"

# Build outside the repository, from copies of the examples.
cp "$root/c_tests/install/example.c" "$root/c_tests/install/example.cpp" "$work/"
cd "$work" || exit 1
echo "== shared: gcc example.c \$(pkg-config --cflags --libs rio)"
# shellcheck disable=SC2086
check "C example builds against the installed copy" \
  gcc -std=c11 -Wall -Wextra -Werror -o example example.c $cflags $libs
check "C example has no rpath into the build tree" sh -c "! readelf -d example | grep -qE 'RPATH|RUNPATH'"
check "ldd resolves $soname from the prefix" \
  sh -c "LD_LIBRARY_PATH='$lib' ldd ./example | grep -q '$soname => $lib/$soname'"
check "C example runs (LD_LIBRARY_PATH=$lib)" env LD_LIBRARY_PATH="$lib" ./example "$work"
env LD_LIBRARY_PATH="$lib" ./example "$work" 2>&1 | sed 's/^/   /'
check "C example never resolves librio from the build tree" \
  sh -c "! env -u LD_LIBRARY_PATH ldd ./example | grep -qF '$root'"

echo "== shared C++: g++ -std=c++17 example.cpp \$(pkg-config --cflags --libs rio)"
# shellcheck disable=SC2086
check "C++ example builds against the installed rio.hpp" \
  g++ -std=c++17 -Wall -Wextra -Werror -o example-cpp example.cpp $cflags $libs
check "C++ example runs" env LD_LIBRARY_PATH="$lib" ./example-cpp "$work"

echo "== static: gcc example.c librio.a \$(pkg-config --static --libs rio)"
# -l:librio.a: pkg-config names -lrio, which the linker would take as the .so.
static_libs=$(sed 's/-lrio\b/-l:librio.a/' <<<"$slibs")
# shellcheck disable=SC2086
check "C example links statically against librio.a" \
  gcc -std=c11 -Wall -Wextra -Werror -o example-static example.c $cflags $static_libs
check "static example does not need librio.so" sh -c "! ldd ./example-static | grep -q librio"
check "static example runs without the prefix" env -u LD_LIBRARY_PATH ./example-static "$work"

echo "== make install DESTDIR=$work/stage PREFIX=/opt/rio"
check "staged install" "$make" -s -C "$root" install DESTDIR="$work/stage" PREFIX=/opt/rio
check "staged files under DESTDIR" test -f "$work/stage/opt/rio/lib/$real" -a -L "$work/stage/opt/rio/lib/librio.so" \
  -a -f "$work/stage/opt/rio/include/rio.hpp" -a -f "$work/stage/opt/rio/lib/librio.a"
check "staged rio.pc names the final prefix" grep -qx 'prefix=/opt/rio' "$work/stage/opt/rio/lib/pkgconfig/rio.pc"
check "staged rio.pc libdir relative to prefix" grep -qx 'libdir=${prefix}/lib' "$work/stage/opt/rio/lib/pkgconfig/rio.pc"
check "make uninstall" "$make" -s -C "$root" uninstall DESTDIR="$work/stage" PREFIX=/opt/rio
check "uninstall removed everything" test -z "$(find "$work/stage" -type f -o -type l)"

echo "test-install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
