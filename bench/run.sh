#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Benchmark imgconv (and imginfo/imgverify) against what a user would run
# instead, on a multi-GiB save image made by real QEMU.
#
#   bench/run.sh [BUILD_DIR]
#
# Environment:
#   BENCH_DIR     work directory (default /var/tmp/mrimg-bench); needs about
#                 4 x DATA_GIB of free space
#   RAM_GIB       guest RAM of the image (default 4)
#   DATA_GIB      guest RAM holding data (default 3)
#   REPEAT        runs per command, the median is reported (default 3)
#   ONLY          space-separated list of comparisons to run (default: all):
#                 zstd gzip xz bzip2 lzop sparse unsparse unzstd info verify guest pipe
#                 (guest: -O elf / phys / kdump-zlib from zstd against
#                 `zstd -dc` to a file, and from sparse against
#                 `cp --sparse=always` of the sparse image; pipe: `cat raw |
#                 imgconv -O zstd -` against the same conversion of the file)
#   COLD          1: drop the page cache before every run (needs root;
#                 default 1 when root)
#
# Every command's output is flushed to disk before the clock stops: imgconv
# fsyncs its output (it must, to finalise the image safely), so the stock
# tools are timed as `tool ... > out && sync`.  For every command the table
# gives the median wall time and the median peak RSS (/usr/bin/time's
# "Maximum resident set size"; the largest of the runs in brackets) of
# REPEAT runs, the ratios of both to the stock tool's, and the median 1-min
# load average at the start of the runs (the machine may be shared: compare
# rows measured under similar load).  zstd is compared at the same thread
# count on both sides: -T 1, -T 2 and the default (all CPUs; zstd -T0).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
bin=$build/tools
dir=${BENCH_DIR:-/var/tmp/mrimg-bench}
ram=${RAM_GIB:-4}
data=${DATA_GIB:-3}
repeat=${REPEAT:-3}
only=${ONLY:-zstd gzip xz bzip2 lzop sparse unsparse unzstd info verify guest pipe}
cold=${COLD:-$([ "$(id -u)" = 0 ] && echo 1 || echo 0)}

for t in imgconv imginfo imgverify; do
    [ -x "$bin/$t" ] || { echo "bench: $bin/$t not built" >&2; exit 1; }
done
mkdir -p "$dir"
python3 "$here/make-image.py" "$dir" "$ram" "$data"
xml=$dir/domain.xml
[ -f "$xml" ] || cp "$here/../testdata/libvirt/dumpxml-security-info.xml" "$xml"
raw=$dir/raw.sav
[ -f "$raw" ] || "$bin/imgconv" -q -O raw --xml "$xml" "$dir/plain.mig" "$raw"
payload=$dir/plain.mig   # the QEMU stream inside raw.sav, byte for byte
echo "image: $raw ($(du -h --apparent-size "$raw" | cut -f1) stream, guest RAM ${ram} GiB)"
echo "cpus: $(nproc); cold cache: $cold; median of $repeat runs"
echo

drop() {
    sync
    if [ "$cold" = 1 ]; then echo 3 > /proc/sys/vm/drop_caches; fi
}

# run NAME CMD...: median wall seconds, median and largest peak RSS (KiB)
# and median load of REPEAT runs
declare -A T M MX L
med() { sort -g | sed -n "$(( (repeat + 1) / 2 ))p"; }
run() {
    local name=$1; shift
    local times=() rss=() loads=()
    for _ in $(seq "$repeat"); do
        rm -f "$dir"/out.*
        drop
        loads+=("$(cut -d' ' -f1 /proc/loadavg)")
        local tf; tf=$(mktemp)
        /usr/bin/time -f "%e %M" -o "$tf" bash -c "$*" >/dev/null 2>&1 || {
            echo "bench: '$name' failed: $*" >&2; cat "$tf" >&2; exit 1; }
        read -r s m < "$tf"; rm -f "$tf"
        times+=("$s"); rss+=("$m")
    done
    T[$name]=$(printf '%s\n' "${times[@]}" | med)
    M[$name]=$(printf '%s\n' "${rss[@]}" | med)
    MX[$name]=$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)
    L[$name]=$(printf '%s\n' "${loads[@]}" | med)
}

printf '%-34s %10s %22s %6s %14s\n' "" "time" "peak RSS (max)" "load" "ours/this"
line() { # LABEL NAME [OURS]
    local n=$2 o=${3:-}
    printf '%-34s %8.2f s %9d (%9d) KiB %6s' "$1" "${T[$n]}" "${M[$n]}" "${MX[$n]}" "${L[$n]}"
    if [ -n "$o" ]; then
        printf '   time %.2f  RSS %.2f' "$(echo "${T[$o]} / ${T[$n]}" | bc -l)" \
            "$(echo "${M[$o]} / ${M[$n]}" | bc -l)"
    fi
    echo
}
row() { # ours stock...
    local ours=$1; shift
    line "$ours" "$ours"
    for s in "$@"; do
        [ -n "${T[$s]:-}" ] || continue
        line "  $s" "$s" "$ours"
    done
}

o=$dir/out
for what in $only; do
    case $what in
    zstd)
        for n in 1 2; do
            run "imgconv raw->zstd -T $n" "$bin/imgconv -q -f -T $n -O zstd $raw $o.zst"
            run "zstd -3 -T$n" "zstd -q -3 -T$n -c $payload > $o.z$n && sync"
            row "imgconv raw->zstd -T $n" "zstd -3 -T$n"
        done
        run "imgconv raw->zstd" "$bin/imgconv -q -f -O zstd $raw $o.zst"
        run "zstd -3 -T0" "zstd -q -3 -T0 -c $payload > $o.z0 && sync"
        run "zstd -3 -c" "zstd -q -3 -c $payload > $o.zc && sync"
        row "imgconv raw->zstd" "zstd -3 -T0" "zstd -3 -c" ;;
    gzip)
        run "imgconv raw->gzip" "$bin/imgconv -q -f -O gzip $raw $o.gz"
        run "gzip -6" "gzip -6 -c $payload > $o.g1 && sync"
        run "pigz -6" "pigz -6 -c $payload > $o.g2 && sync"
        row "imgconv raw->gzip" "gzip -6" "pigz -6" ;;
    xz)
        run "imgconv raw->xz" "$bin/imgconv -q -f -O xz $raw $o.xz"
        run "xz -3" "xz -3 -c $payload > $o.x1 && sync"
        run "xz -3 -T0" "xz -3 -T0 -c $payload > $o.x2 && sync"
        row "imgconv raw->xz" "xz -3" "xz -3 -T0" ;;
    bzip2)
        run "imgconv raw->bzip2" "$bin/imgconv -q -f -O bzip2 $raw $o.bz2"
        run "bzip2 -9" "bzip2 -9 -c $payload > $o.b1 && sync"
        run "lbzip2 -9" "lbzip2 -9 -c $payload > $o.b2 && sync"
        row "imgconv raw->bzip2" "bzip2 -9" "lbzip2 -9" ;;
    lzop)
        run "imgconv raw->lzop" "$bin/imgconv -q -f -O lzop $raw $o.lzo"
        run "lzop -3" "lzop -3 -c $payload > $o.l1 && sync"
        row "imgconv raw->lzop" "lzop -3" ;;
    sparse)
        run "imgconv raw->sparse" "$bin/imgconv -q -f -O sparse $raw $o.sparse"
        run "cp --sparse=always" "cp --sparse=always $raw $o.cp && sync"
        row "imgconv raw->sparse" "cp --sparse=always" ;;
    unsparse)
        [ -f "$dir/in.sparse" ] || "$bin/imgconv" -q -O sparse "$raw" "$dir/in.sparse"
        run "imgconv sparse->raw" "$bin/imgconv -q -f -O raw $dir/in.sparse $o.raw"
        run "cp --sparse=always sparse" "cp --sparse=always $dir/in.sparse $o.cp && sync"
        row "imgconv sparse->raw" "cp --sparse=always sparse" ;;
    unzstd)
        [ -f "$dir/in.zst" ] || "$bin/imgconv" -q -O zstd "$raw" "$dir/in.zst"
        [ -f "$dir/in.sparse" ] || "$bin/imgconv" -q -O sparse "$raw" "$dir/in.sparse"
        off=$(( $(od -An -tu4 -j20 -N4 "$dir/in.zst") + 92 ))
        run "imgconv zstd->raw" "$bin/imgconv -q -f -O raw $dir/in.zst $o.raw"
        run "zstd -dc" "tail -c +$((off + 1)) $dir/in.zst | zstd -dc > $o.d1 && sync"
        row "imgconv zstd->raw" "zstd -dc"
        run "imgconv sparse->zstd" "$bin/imgconv -q -f -O zstd $dir/in.sparse $o.s2z"
        row "imgconv sparse->zstd" "zstd -3 -T0" ;;
    info)
        [ -f "$dir/in.sparse" ] || "$bin/imgconv" -q -O sparse "$raw" "$dir/in.sparse"
        run "imginfo raw" "$bin/imginfo $raw"
        run "imginfo sparse" "$bin/imginfo $dir/in.sparse"
        run "imginfo --extents sparse" "$bin/imginfo --extents $dir/in.sparse"
        run "cat raw > /dev/null" "cat $raw > /dev/null"
        row "imginfo raw" "cat raw > /dev/null"
        row "imginfo sparse"
        row "imginfo --extents sparse" ;;
    verify)
        [ -f "$dir/in.sparse" ] || "$bin/imgconv" -q -O sparse "$raw" "$dir/in.sparse"
        run "imgverify raw" "$bin/imgverify -q $raw"
        run "imgverify sparse" "$bin/imgverify -q $dir/in.sparse"
        run "cat raw > /dev/null" "cat $raw > /dev/null"
        run "cat sparse > /dev/null" "cat $dir/in.sparse > /dev/null"
        row "imgverify raw" "cat raw > /dev/null"
        row "imgverify sparse" "cat sparse > /dev/null" ;;
    guest)
        [ -f "$dir/in.zst" ] || "$bin/imgconv" -q -O zstd "$raw" "$dir/in.zst"
        [ -f "$dir/in.sparse" ] || "$bin/imgconv" -q -O sparse "$raw" "$dir/in.sparse"
        off=$(( $(od -An -tu4 -j20 -N4 "$dir/in.zst") + 92 ))
        run "zstd -dc" "tail -c +$((off + 1)) $dir/in.zst | zstd -dc > $o.d1 && sync"
        run "cp --sparse=always sparse" "cp --sparse=always $dir/in.sparse $o.cp && sync"
        for k in elf phys kdump-zlib; do
            run "imgconv zstd->$k" "$bin/imgconv -q -f -O $k $dir/in.zst $o.$k"
            row "imgconv zstd->$k" "zstd -dc"
            run "imgconv sparse->$k" "$bin/imgconv -q -f -O $k $dir/in.sparse $o.s$k"
            row "imgconv sparse->$k" "cp --sparse=always sparse"
        done ;;
    pipe)
        # the same conversion with the input read from a pipe (read once,
        # sequentially) and from the file; the pipe row's ratio is to the file
        run "imgconv raw->zstd" "$bin/imgconv -q -f -O zstd $raw $o.zst"
        run "cat raw | imgconv raw->zstd -" "cat $raw | $bin/imgconv -q -f -O zstd - $o.pz"
        row "cat raw | imgconv raw->zstd -" "imgconv raw->zstd" ;;
    *) echo "bench: unknown comparison '$what'" >&2; exit 2 ;;
    esac
    echo
done
rm -f "$dir"/out.*
