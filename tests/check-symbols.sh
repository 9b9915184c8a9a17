#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Only mrimg_ symbols may be global in the installed libraries: a program
# linking libmrimg.a or libmrimg.so must not clash with our internals
# (err_set, xmalloc, sink_write, codec_raw, ...).
# Usage: check-symbols.sh LIBMRIMG.so LIBMRIMG.a
set -eu
so=$1
a=$2
status=0
check() { # WHAT NM-OUTPUT
    bad=$(printf '%s\n' "$2" | awk 'NF >= 3 { print $NF }' | grep -v '^mrimg_' || true)
    n=$(printf '%s\n' "$2" | awk 'NF >= 3' | wc -l)
    if [ -n "$bad" ]; then
        echo "FAIL: $1 exports $(printf '%s\n' "$bad" | wc -l) symbols without the mrimg_ prefix:"
        printf '%s\n' "$bad" | head -40 | sed 's/^/  /'
        status=1
    elif [ "$n" -lt 10 ]; then
        echo "FAIL: $1 exports only $n symbols: is the public API missing?"
        status=1
    else
        echo "ok: $1: all $n global symbols start with mrimg_"
    fi
}
check "$so" "$(nm -D --defined-only "$so")"
check "$a" "$(nm -g --defined-only "$a")"
# and both export the same API
if [ "$(nm -D --defined-only "$so" | awk 'NF >= 3 { print $NF }' | sort)" != \
     "$(nm -g --defined-only "$a" | awk 'NF >= 3 { print $NF }' | sort)" ]; then
    echo "FAIL: the shared and the static library export different symbols"
    status=1
fi
exit $status
