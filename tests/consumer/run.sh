#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The library as a user gets it: `cmake --install` into a temporary prefix,
# then consumer.c built through pkg-config against that prefix only, once
# linked dynamically and once statically, and both run on a real image.
# Usage: run.sh BUILD-DIR CONSUMER.C IMAGE [CC [EXTRA-CFLAGS]]
# EXTRA-CFLAGS: what the library was built with that its users must link
# with too (the sanitizers of -DMRIMG_SANITIZE=ON or -DMRIMG_TSAN=ON); then the static
# consumer links libmrimg.a but the C library dynamically (a sanitized
# program cannot be fully static).
set -eu
build=$1 src=$2 image=$3 cc=${4:-cc} extra=${5:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/mrimg-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
fail() { echo "FAIL: $*"; exit 1; }

cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 ||
    { cat "$work/install.log"; fail "cmake --install"; }
pc=$(find "$prefix" -name mrimg.pc)
[ -n "$pc" ] || fail "no mrimg.pc installed"
libdir=$(dirname "$(dirname "$pc")")
for f in "$prefix/include/mrimg.h" "$libdir/libmrimg.a" "$libdir/libmrimg.so"; do
    [ -e "$f" ] || fail "not installed: ${f#"$prefix"/}"
done
echo "ok: installed mrimg.pc, mrimg.h, libmrimg.so, libmrimg.a under $prefix"
if grep -n '@@' "$prefix/include/mrimg.h"; then
    fail "build markers left in the installed header"
fi

export PKG_CONFIG_PATH="$libdir/pkgconfig"
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR || true
[ "$(pkg-config --modversion mrimg)" = "$(sed -n 's/^#define MRIMG_VERSION_STRING "\(.*\)"/\1/p' "$prefix/include/mrimg.h")" ] ||
    fail "pkg-config version and header version differ"
# the relocatable .pc must point into this prefix, not into the build tree
case "$(pkg-config --cflags mrimg)" in *"$prefix"*) ;; *) fail "Cflags outside the prefix: $(pkg-config --cflags mrimg)";; esac

flags="-std=c11 -Wall -Wextra -Werror $extra"
# dynamic: the shared library, found at run time in the prefix
# shellcheck disable=SC2046,SC2086
"$cc" $flags -o "$work/consumer-dynamic" "$src" $(pkg-config --cflags --libs mrimg) ||
    fail "dynamic build"
readelf -d "$work/consumer-dynamic" | grep -q 'NEEDED.*libmrimg\.so' ||
    fail "the dynamic consumer does not need libmrimg.so"
# static: libmrimg.a (not the .so beside it) and, with --static, the
# codec libraries it needs; without sanitizers, everything static
libs=$(pkg-config --static --libs mrimg | sed 's/-lmrimg\b/-l:libmrimg.a/')
all_static=-static
[ -z "$extra" ] || all_static=
# shellcheck disable=SC2046,SC2086
"$cc" $flags $all_static -o "$work/consumer-static" "$src" $(pkg-config --static --cflags mrimg) $libs ||
    fail "static build"
if readelf -d "$work/consumer-static" 2>/dev/null | grep -q 'NEEDED.*libmrimg'; then
    fail "the static consumer needs libmrimg.so"
fi
if [ -n "$all_static" ] && readelf -d "$work/consumer-static" 2>/dev/null | grep -q NEEDED; then
    fail "the static consumer needs shared libraries"
fi
nm "$work/consumer-static" | grep -q ' T mrimg_convert$' || fail "mrimg_convert is not in the static consumer"
nm "$work/consumer-static" | grep -q ' T sink_write$' && fail "an internal symbol (sink_write) is global in the static consumer"
true
echo "ok: built dynamically and statically through pkg-config"

for kind in dynamic static; do
    out=$work/out-$kind
    mkdir "$out"
    echo "== consumer-$kind"
    LD_LIBRARY_PATH="$libdir" "$work/consumer-$kind" "$image" "$out" ||
        fail "consumer-$kind failed"
done
echo "ok: both consumers ran"
