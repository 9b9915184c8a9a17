#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The tools cannot hurt, whatever files they are pointed at (everything in a
# private directory; never the system's /dev nodes):
#   1. --force replaces only regular files: a device node, FIFO, socket or
#      directory is refused (exit 3) and left as it was; a symbolic link to a
#      regular file survives, the file it names is replaced; --sparsify and
#      -O ram's block files too
#   2. a FIFO with no writer, a socket, a device or a directory as input: an
#      immediate clear error (exit 3) from all three tools, never a hang
#   3. output names up to NAME_MAX bytes work (the temporary fits NAME_MAX)
#   4. every terminating signal (USR1, ALRM, PIPE, XFSZ, ...) removes the
#      temporary and ends the process with 128+N; -O ram removes the
#      directory it created when it fails (full disk) or is killed
#   5. -O ram -v reports what it allocated; -O sparse leaves the XML padding
#      a hole; the man pages carry one date and the project version
set -uo pipefail
bin=${MRIMG_BIN:?}
src=${MRIMG_SRC:?}
fx=${MRIMG_FIXTURES:?}
work=$(mktemp -d "${TMPDIR:-/tmp}/mrimg-files-XXXXXX")
mnt=$work/tiny
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
    rm -rf "$work"
}
trap cleanup EXIT
nfail=0
fail() { echo "FAIL: $*" >&2; nfail=$((nfail + 1)); }
ok() { echo "ok: $*"; }
root=0
[ "$(id -u)" = 0 ] && root=1
raw=$fx/libvirt/raw.sav
d=$work/d
mkdir -p "$d"

# run STATUS NAME CMD...: run with a timeout (a hang is a failure), compare
# the exit status; the messages are in $work/err
run() {
    local want=$1 name=$2 rc=0
    shift 2
    timeout "${tmo:-20}" "$@" > "$work/out" 2> "$work/err" < /dev/null || rc=$?
    if [ "$rc" = 124 ]; then
        fail "$name: hangs (killed after ${tmo:-20} s)"
        return 1
    fi
    if [ "$rc" != "$want" ]; then
        fail "$name: exit $rc, expected $want: $(head -c 300 "$work/err")"
        return 1
    fi
    return 0
}
# says NAME REGEX: the error message matches
says() {
    if grep -Eqi "$2" "$work/err"; then ok "$1: $(head -1 "$work/err")"
    else fail "$1: message '$(head -1 "$work/err")' does not match '$2'"; fi
}

# the special files, made here
mkfifo "$d/fifo"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$d/sock"
mkdir "$d/dir"
if [ $root = 1 ]; then
    mknod "$d/null" c 1 3
    chmod 0666 "$d/null"
fi
printf 'precious' > "$d/file"
ln -s file "$d/link"
ln -s fifo "$d/link-fifo"
ln -s missing "$d/dangling"

# ---- 1. --force never replaces what is not a regular file ----------------
check_kept() { # NAME TYPE: the node is still of that type (find -type)
    [ -n "$(find "$d/$1" -maxdepth 0 -type "$2")" ] || fail "$1 was replaced: $(ls -l "$d/$1")"
}
outputs=(fifo:p sock:s dir:d link-fifo:l)
[ $root = 1 ] && outputs+=(null:c)
for spec in "${outputs[@]}"; do
    n=${spec%%:*} t=${spec#*:}
    for fmt in zstd sparse; do
        if run 3 "-f -O $fmt onto $n" "$bin/imgconv" -f -O "$fmt" "$raw" "$d/$n"; then
            if [ "$n" = dir ]; then says "-f onto $n ($fmt)" "is a directory"
            else says "-f onto $n ($fmt)" "not a regular file: refusing to replace it"; fi
        fi
        check_kept "$n" "$t"
    done
done
[ $root = 1 ] || echo "skipped: the device node case needs root (mknod)"
run 3 "-f onto a dangling link" "$bin/imgconv" -f -O zstd "$raw" "$d/dangling" &&
    says "-f onto a dangling link" "symbolic link to a missing file"
check_kept dangling l
[ -e "$d/missing" ] && fail "a dangling link's target was created"
# a symlink to a regular file: the link survives, its target is replaced
if run 0 "-f onto a symlink" "$bin/imgconv" -f -O zstd "$raw" "$d/link"; then
    check_kept link l
    [ "$(readlink "$d/link")" = file ] || fail "the link now points elsewhere"
    [ "$(head -c 16 "$d/file")" = LibvirtQemudSave ] || fail "the link's target was not replaced"
    ok "-f onto a symlink: the link survives, the file it names was replaced"
fi
# without -f a symlink is an existing output like any other
run 3 "a symlink without -f" "$bin/imgconv" -O zstd "$raw" "$d/link" && says "symlink without -f" "already exists"
# nothing left behind by any of it
left=$(find "$d" -name '.*.tmp' | wc -l)
[ "$left" = 0 ] || fail "$left temporaries left behind"

# -O ram: a FIFO where a block file goes is refused, not replaced
mkdir "$d/ram"
mkfifo "$d/ram/pc.ram"
run 3 "-O ram -f with a FIFO as pc.ram" "$bin/imgconv" -f -O ram "$fx/libvirt/sparse.sav" "$d/ram" &&
    says "-O ram -f with a FIFO as pc.ram" "pc.ram is a FIFO"
check_kept ram/pc.ram p
[ "$(find "$d/ram" -name '.*.tmp' | wc -l)" = 0 ] || fail "-O ram left temporaries"

# --sparsify in place: only a regular file
cp --sparse=always "$fx/libvirt/sparse.sav" "$d/sp.sav"
ln -s sp.sav "$d/sp-link"
run 0 "--sparsify through a symlink" "$bin/imgconv" -q --sparsify "$d/sp-link" &&
    ok "--sparsify through a symlink works on the file"
check_kept sp-link l

# ---- 2. inputs that cannot be read at any offset: an error, never a hang --
# (fresh nodes, whatever part 1 did)
d=$work/in
mkdir -p "$d/dir"
mkfifo "$d/fifo"
ln -s fifo "$d/link-fifo"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$d/sock"
[ $root = 1 ] && mknod "$d/null" c 1 3
inputs=(fifo sock dir link-fifo)
[ $root = 1 ] && inputs+=(null)
for n in "${inputs[@]}"; do
    rm -f "$work/x.sav"
    case $n in
    dir) re="dir is a directory" ;;
    sock) re="sock is a socket" ;;
    null) re="null is a character device" ;;
    *) re="is a FIFO" ;;
    esac
    run 3 "imginfo $n" "$bin/imginfo" "$d/$n" && says "imginfo $n" "^imginfo: $d/$n: .*$re"
    run 3 "imgverify $n" "$bin/imgverify" "$d/$n" && says "imgverify $n" "^imgverify: $d/$n: .*$re"
    run 3 "imgverify --digest $n" "$bin/imgverify" --digest "$d/$n" && says "imgverify --digest $n" "$re"
    run 3 "imgconv $n" "$bin/imgconv" "$d/$n" "$work/x.sav" && says "imgconv $n" "^imgconv: $d/$n: .*$re"
    run 3 "imgconv --sparsify $n" "$bin/imgconv" --sparsify "$d/$n" && says "imgconv --sparsify $n" "$re"
    check_kept "$n" "$(case $n in fifo) echo p ;; sock) echo s ;; dir) echo d ;; null) echo c ;; *) echo l ;; esac)"
done
# --xml from a FIFO nobody writes to: no hang (an empty document is refused)
timeout 20 "$bin/imgconv" -O zstd --xml "$d/fifo" "$fx/qemu/plain.mig" "$work/x.sav" \
    > /dev/null 2> "$work/err" < /dev/null
rc=$?
if [ $rc = 124 ]; then fail "--xml FIFO: hangs"
elif [ $rc = 0 ]; then fail "--xml FIFO: an empty XML was accepted"
else ok "--xml from a FIFO without a writer: exit $rc, $(head -1 "$work/err")"; fi
# ... while a pipe with a writer still works (process substitution)
if timeout 20 "$bin/imgconv" -q -O zstd --xml <(cat "$src/testdata/libvirt/dumpxml-security-info.xml") \
    "$fx/qemu/plain.mig" "$work/x.sav" 2> "$work/err"; then
    ok "--xml <(...) still reads a pipe"
else
    fail "--xml <(...): $(cat "$work/err")"
fi
rm -f "$work/x.sav"

# ---- 3. long output names --------------------------------------------------
d=$work/d
for len in 200 243 244 250 255; do
    name=$(printf 'n%.0s' $(seq 1 "$len"))
    if run 0 "a $len-byte output name" "$bin/imgconv" -O zstd "$raw" "$d/dir/$name"; then
        [ -s "$d/dir/$name" ] || fail "$len-byte name: no output"
        ok "a $len-byte output name"
    fi
    rm -f "$d/dir/$name"
done
name=$(printf 'n%.0s' $(seq 1 255))
"$bin/imgconv" -q -O raw "$raw" "$d/dir/${name}" & p1=$!
"$bin/imgconv" -q -O raw "$raw" "$d/dir/${name%n}m" & p2=$!
wait $p1 || fail "255-byte names in parallel (1)"
wait $p2 || fail "255-byte names in parallel (2)"
[ "$(find "$d/dir" -name '.*.tmp' | wc -l)" = 0 ] || fail "long names: temporaries left"
cmp -s "$d/dir/$name" "$d/dir/${name%n}m" || fail "255-byte names in parallel: outputs differ"
ok "two 255-byte names sharing 243 bytes, converted at the same time"
rm -rf "$d/dir"/*

# ---- 4. every terminating signal cleans up ---------------------------------
python3 "$src/tests/tools/mkstream.py" "$work/big.mig" 160
"$bin/imgconv" -q -O raw --xml "$src/testdata/libvirt/dumpxml-security-info.xml" "$work/big.mig" "$work/big.sav"
sig_case() { # SIGNAL FORMAT
    local sig=$1 fmt=$2 tmp="" rc=0 before=$nfail
    printf 'precious' > "$work/out.sav"
    # slow enough to be caught working: one thread, a high level where one
    # applies (xz's default level: at -9 its 192 MiB blocks would show no
    # output before the end)
    local lvl=()
    case $fmt in gzip | bzip2 | lzop | zstd) lvl=(-l 9) ;; esac
    "$bin/imgconv" -q -f -T 1 "${lvl[@]}" -O "$fmt" "$work/big.sav" "$work/out.sav" 2> "$work/err" &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1 500); do
        tmp=$(find "$work" -maxdepth 1 -name '.out.sav.*.tmp' | head -1)
        [ -n "$tmp" ] && [ -s "$tmp" ] && break
        sleep 0.01
    done
    [ -n "$tmp" ] || { fail "$sig: no temporary appeared"; kill -9 "$pid"; return; }
    kill -s "$sig" "$pid"
    wait "$pid" || rc=$?
    local num
    num=$(kill -l "$sig")
    [ "$rc" = $((128 + num)) ] || fail "SIG$sig: exit $rc, expected $((128 + num))"
    [ "$(head -c 8 "$work/out.sav")" = precious ] || fail "SIG$sig: target changed"
    [ "$(find "$work" -maxdepth 1 -name '.*.tmp' | wc -l)" = 0 ] || fail "SIG$sig: temporary left behind"
    find "$work" -maxdepth 1 -name '.*.tmp' -delete
    [ "$nfail" = "$before" ] && ok "SIG$sig during $fmt: exit $rc, temporary removed, target untouched"
}
sig_case USR1 xz
sig_case ALRM zstd
sig_case PIPE gzip
sig_case XFSZ xz
sig_case VTALRM zstd
sig_case PROF xz
sig_case USR2 sparse
sig_case RTMIN xz
sig_case INT zstd  # ignored for background jobs by this shell: caught anyway
# a signal ignored by whoever started us stays ignored (nohup's contract)
(trap '' HUP; exec "$bin/imgconv" -q -f -O zstd "$work/big.sav" "$work/out.sav") & pid=$!
pids+=("$pid")
for _ in $(seq 1 500); do
    [ -n "$(find "$work" -maxdepth 1 -name '.out.sav.*.tmp' | head -1)" ] && break
    sleep 0.01
done
kill -HUP "$pid" 2>/dev/null
if wait "$pid"; then ok "an inherited SIG_IGN (SIGHUP under nohup) stays ignored: the conversion finished"
else fail "an ignored SIGHUP ended the conversion"; fi

# -O ram: killed, the directory it created goes with its files
rm -rf "$work/ramdir"
"$bin/imgconv" -q -O ram "$work/big.sav" "$work/ramdir" & pid=$!
pids+=("$pid")
for _ in $(seq 1 500); do
    [ -n "$(find "$work/ramdir" -name '.*.tmp' -size +0 2>/dev/null | head -1)" ] && break
    sleep 0.01
done
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 143 ] || fail "-O ram SIGTERM: exit $rc"
if [ -e "$work/ramdir" ]; then fail "-O ram SIGTERM: the directory it created is left: $(ls -a "$work/ramdir")"
else ok "-O ram killed: the directory it created is gone"; fi

# -O ram on a full disk: exit 3, nothing left, so the rerun with room works
if [ $root = 1 ]; then
    mkdir -p "$mnt"
    mount -t tmpfs -o size=2m mrimg-files "$mnt"
    if run 3 "-O ram on a full disk" "$bin/imgconv" -O ram "$work/big.sav" "$mnt/ram"; then
        says "-O ram on a full disk" "No space left on device"
        if [ -e "$mnt/ram" ]; then fail "-O ram on a full disk left $(ls -aR "$mnt/ram" | head -5)"
        else ok "-O ram on a full disk: the directory it created is removed"; fi
    fi
    umount "$mnt"
    mount -t tmpfs -o size=400m mrimg-files "$mnt"
    tmo=600 run 0 "-O ram rerun with room" "$bin/imgconv" -O ram "$work/big.sav" "$mnt/ram" &&
        ok "-O ram rerun with room succeeds"
    umount "$mnt"
else
    echo "skipped: the full-disk case needs root (tmpfs)"
fi

# ---- 5. small ones -----------------------------------------------------------
run 0 "-O ram -v" "$bin/imgconv" -v -O ram "$fx/libvirt/sparse.sav" "$work/ram2" &&
    if grep -Eq '^output allocated: 0 B' "$work/out" || ! grep -q '^output allocated: ' "$work/out"; then
        fail "-O ram -v: $(grep allocated "$work/out")"
    else ok "-O ram -v: $(grep 'output allocated' "$work/out")"; fi
# -O sparse: the XML padding is a hole (whole pages of it), not written zeros
run 0 "-O sparse" "$bin/imgconv" -O sparse "$raw" "$work/sp2.sav"
if python3 - "$work/sp2.sav" <<'EOF'; then ok "-O sparse: the XML padding is a hole"; else fail "-O sparse: the XML padding is written as data"; fi
import os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
h = os.pread(fd, 92, 0)
_, data_len, _, _, cookie_len = struct.unpack("<5I", h[16:36])
meta = os.pread(fd, data_len, 92)
used = 92 + len(meta.rstrip(b"\0")) + 1
first = (used + 4095) // 4096 * 4096           # first page wholly padding
last = (92 + data_len) // 4096 * 4096           # payload's page
assert last - first >= 8 * 4096, (first, last)
d = os.lseek(fd, first, os.SEEK_DATA)
assert d >= last, f"data at {d} inside the padding [{first}, {last})"
EOF
# man pages: one date, the project's version, nothing left unfilled
man=$bin/../docs/man1
if [ -d "$man" ]; then
    dates=$(sed -n 's/^\.TH [A-Z]* 1 "\([^"]*\)" "\([^"]*\)".*/\1|\2/p' "$man"/*.1 | sort -u)
    ver=$("$bin/imgconv" --version | sed -n '1s/.* //p')
    if [ "$(echo "$dates" | wc -l)" != 1 ] || [ "${dates#*|}" != "mrimg $ver" ] || grep -q '@[A-Z_]*@' "$man"/*.1 ||
        [ "$(ls "$man"/*.1 | wc -l)" != "$(ls "$src"/docs/*.1 | wc -l)" ]; then
        fail "man pages: .TH lines: $dates (version $ver)"
    else
        ok "man pages: one .TH date and version: $dates"
    fi
else
    fail "no generated man pages in $man"
fi

if [ $nfail = 0 ]; then echo "all file-safety checks passed"; else echo "$nfail failures"; exit 1; fi
