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
. "$(dirname "$0")/lib.sh"
mnt=$W/tiny
root=0
[ "$(id -u)" = 0 ] && root=1
raw=$F/libvirt/raw.sav
d=$W/d
mkdir -p "$d"

# run STATUS NAME CMD...: run with a timeout (a hang is a failure), compare
# the exit status; the messages are in $W/err
run() {
    local want=$1 name=$2 rc=0
    shift 2
    timeout "${tmo:-20}" "$@" > "$W/out" 2> "$W/err" < /dev/null || rc=$?
    if [ "$rc" = 124 ]; then
        bad "$name: hangs (killed after ${tmo:-20} s)"
        return 1
    fi
    if [ "$rc" != "$want" ]; then
        bad "$name: exit $rc, expected $want: $(head -c 300 "$W/err")"
        return 1
    fi
    return 0
}
# says NAME REGEX: the error message matches
says() {
    if grep -Eqi "$2" "$W/err"; then ok "$1: $(head -1 "$W/err")"
    else bad "$1: message '$(head -1 "$W/err")' does not match '$2'"; fi
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
    [ -n "$(find "$d/$1" -maxdepth 0 -type "$2")" ] || bad "$1 was replaced: $(ls -l "$d/$1")"
}
outputs=(fifo:p sock:s dir:d link-fifo:l)
[ $root = 1 ] && outputs+=(null:c)
for spec in "${outputs[@]}"; do
    n=${spec%%:*} t=${spec#*:}
    for fmt in zstd sparse; do
        if run 3 "-f -O $fmt onto $n" "$B/imgconv" -f -O "$fmt" "$raw" "$d/$n"; then
            if [ "$n" = dir ]; then says "-f onto $n ($fmt)" "^imgconv: $d/$n: the output is a directory$"
            else says "-f onto $n ($fmt)" "^imgconv: $d/$n: the output is .*, not a regular file: refusing to replace it$"; fi
        fi
        check_kept "$n" "$t"
    done
done
[ $root = 1 ] || echo "skipped: the device node case needs root (mknod)"
run 3 "-f onto a dangling link" "$B/imgconv" -f -O zstd "$raw" "$d/dangling" &&
    says "-f onto a dangling link" "symbolic link to a missing file"
check_kept dangling l
[ -e "$d/missing" ] && bad "a dangling link's target was created"
# a symlink to a regular file: the link survives, its target is replaced
if run 0 "-f onto a symlink" "$B/imgconv" -f -O zstd "$raw" "$d/link"; then
    check_kept link l
    [ "$(readlink "$d/link")" = file ] || bad "the link now points elsewhere"
    [ "$(head -c 16 "$d/file")" = LibvirtQemudSave ] || bad "the link's target was not replaced"
    ok "-f onto a symlink: the link survives, the file it names was replaced"
fi
# without -f a symlink is an existing output like any other
run 3 "a symlink without -f" "$B/imgconv" -O zstd "$raw" "$d/link" && says "symlink without -f" "^imgconv: $d/link: the output already exists"
# nothing left behind by any of it
left=$(find "$d" -name '.*.tmp' | wc -l)
[ "$left" = 0 ] || bad "$left temporaries left behind"

# -O ram: a FIFO where a block file goes is refused, not replaced
mkdir "$d/ram"
mkfifo "$d/ram/pc.ram"
run 3 "-O ram -f with a FIFO as pc.ram" "$B/imgconv" -f -O ram "$F/libvirt/sparse.sav" "$d/ram" &&
    says "-O ram -f with a FIFO as pc.ram" "^imgconv: $d/ram: pc.ram is a FIFO"
check_kept ram/pc.ram p
[ "$(find "$d/ram" -name '.*.tmp' | wc -l)" = 0 ] || bad "-O ram left temporaries"

# --sparsify in place: only a regular file
cp --sparse=always "$F/libvirt/sparse.sav" "$d/sp.sav"
ln -s sp.sav "$d/sp-link"
run 0 "--sparsify through a symlink" "$B/imgconv" -q --sparsify "$d/sp-link" &&
    ok "--sparsify through a symlink works on the file"
check_kept sp-link l

# ---- 2. inputs that cannot be read at any offset: an error, never a hang --
# (fresh nodes, whatever part 1 did)
d=$W/in
mkdir -p "$d/dir"
mkfifo "$d/fifo"
ln -s fifo "$d/link-fifo"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$d/sock"
[ $root = 1 ] && mknod "$d/null" c 1 3
inputs=(fifo sock dir link-fifo)
[ $root = 1 ] && inputs+=(null)
for n in "${inputs[@]}"; do
    rm -f "$W/x.sav"
    case $n in
    dir) re="the input is a directory" ;;
    sock) re="the input is a socket" ;;
    null) re="the input is a character device" ;;
    *) re="the input is a FIFO" ;;
    esac
    # the tool names the file, once: the message calls it the input
    run 3 "imginfo $n" "$B/imginfo" "$d/$n" && says "imginfo $n" "^imginfo: $d/$n: $re"
    run 3 "imgverify $n" "$B/imgverify" "$d/$n" && says "imgverify $n" "^imgverify: $d/$n: $re"
    run 3 "imgverify --digest $n" "$B/imgverify" --digest "$d/$n" && says "imgverify --digest $n" "$re"
    run 3 "imgconv $n" "$B/imgconv" "$d/$n" "$W/x.sav" && says "imgconv $n" "^imgconv: $d/$n: $re"
    run 3 "imgconv --sparsify $n" "$B/imgconv" --sparsify "$d/$n" && says "imgconv --sparsify $n" "$re"
    check_kept "$n" "$(case $n in fifo) echo p ;; sock) echo s ;; dir) echo d ;; null) echo c ;; *) echo l ;; esac)"
done
# --xml from a FIFO nobody writes to: no hang (an empty document is refused)
timeout 20 "$B/imgconv" -O zstd --xml "$d/fifo" "$F/qemu/plain.mig" "$W/x.sav" \
    > /dev/null 2> "$W/err" < /dev/null
rc=$?
if [ $rc = 124 ]; then bad "--xml FIFO: hangs"
elif [ $rc = 0 ]; then bad "--xml FIFO: an empty XML was accepted"
else ok "--xml from a FIFO without a writer: exit $rc, $(head -1 "$W/err")"; fi
# ... while a pipe with a writer still works (process substitution)
if timeout 20 "$B/imgconv" -q -O zstd --xml <(cat "$SRC/testdata/libvirt/dumpxml-security-info.xml") \
    "$F/qemu/plain.mig" "$W/x.sav" 2> "$W/err"; then
    ok "--xml <(...) still reads a pipe"
else
    bad "--xml <(...): $(cat "$W/err")"
fi
rm -f "$W/x.sav"

# ---- 3. long output names --------------------------------------------------
d=$W/d
for len in 200 243 244 250 255; do
    name=$(printf 'n%.0s' $(seq 1 "$len"))
    if run 0 "a $len-byte output name" "$B/imgconv" -O zstd "$raw" "$d/dir/$name"; then
        [ -s "$d/dir/$name" ] || bad "$len-byte name: no output"
        ok "a $len-byte output name"
    fi
    rm -f "$d/dir/$name"
done
name=$(printf 'n%.0s' $(seq 1 255))
"$B/imgconv" -q -O raw "$raw" "$d/dir/${name}" & p1=$!
"$B/imgconv" -q -O raw "$raw" "$d/dir/${name%n}m" & p2=$!
wait $p1 || bad "255-byte names in parallel (1)"
wait $p2 || bad "255-byte names in parallel (2)"
[ "$(find "$d/dir" -name '.*.tmp' | wc -l)" = 0 ] || bad "long names: temporaries left"
cmp -s "$d/dir/$name" "$d/dir/${name%n}m" || bad "255-byte names in parallel: outputs differ"
ok "two 255-byte names sharing 243 bytes, converted at the same time"
rm -rf "$d/dir"/*

# ---- 4. every terminating signal cleans up ---------------------------------
big_sav
sig_case() { # SIGNAL FORMAT
    local sig=$1 fmt=$2 tmp="" rc=0 before=$fails pid
    slow_convert "$fmt"
    for _ in $(seq 1 500); do
        tmp=$(find "$W" -maxdepth 1 -name '.out.sav.*.tmp' | head -1)
        [ -n "$tmp" ] && [ -s "$tmp" ] && break
        sleep 0.01
    done
    [ -n "$tmp" ] || { bad "$sig: no temporary appeared"; kill -9 "$pid"; return; }
    kill -s "$sig" "$pid"
    wait "$pid" || rc=$?
    local num
    num=$(kill -l "$sig")
    [ "$rc" = $((128 + num)) ] || bad "SIG$sig: exit $rc, expected $((128 + num))"
    [ "$(head -c 8 "$W/out.sav")" = precious ] || bad "SIG$sig: target changed"
    [ "$(find "$W" -maxdepth 1 -name '.*.tmp' | wc -l)" = 0 ] || bad "SIG$sig: temporary left behind"
    find "$W" -maxdepth 1 -name '.*.tmp' -delete
    [ "$fails" = "$before" ] && ok "SIG$sig during $fmt: exit $rc, temporary removed, target untouched"
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
(trap '' HUP; exec "$B/imgconv" -q -f -O zstd "$W/big.sav" "$W/out.sav") & pid=$!
pids+=("$pid")
for _ in $(seq 1 500); do
    [ -n "$(find "$W" -maxdepth 1 -name '.out.sav.*.tmp' | head -1)" ] && break
    sleep 0.01
done
kill -HUP "$pid" 2>/dev/null
if wait "$pid"; then ok "an inherited SIG_IGN (SIGHUP under nohup) stays ignored: the conversion finished"
else bad "an ignored SIGHUP ended the conversion"; fi

# -O ram: killed, the directory it created goes with its files
rm -rf "$W/ramdir"
"$B/imgconv" -q -O ram "$W/big.sav" "$W/ramdir" & pid=$!
pids+=("$pid")
for _ in $(seq 1 500); do
    [ -n "$(find "$W/ramdir" -name '.*.tmp' -size +0 2>/dev/null | head -1)" ] && break
    sleep 0.01
done
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 143 ] || bad "-O ram SIGTERM: exit $rc"
if [ -e "$W/ramdir" ]; then bad "-O ram SIGTERM: the directory it created is left: $(ls -a "$W/ramdir")"
else ok "-O ram killed: the directory it created is gone"; fi

# -O ram on a full disk: exit 3, nothing left, so the rerun with room works
if [ $root = 1 ]; then
    mkdir -p "$mnt"
    mount -t tmpfs -o size=2m mrimg-files "$mnt"
    if run 3 "-O ram on a full disk" "$B/imgconv" -O ram "$W/big.sav" "$mnt/ram"; then
        says "-O ram on a full disk" "No space left on device"
        if [ -e "$mnt/ram" ]; then bad "-O ram on a full disk left $(ls -aR "$mnt/ram" | head -5)"
        else ok "-O ram on a full disk: the directory it created is removed"; fi
    fi
    umount "$mnt"
    mount -t tmpfs -o size=400m mrimg-files "$mnt"
    tmo=600 run 0 "-O ram rerun with room" "$B/imgconv" -O ram "$W/big.sav" "$mnt/ram" &&
        ok "-O ram rerun with room succeeds"
    umount "$mnt"
else
    echo "skipped: the full-disk case needs root (tmpfs)"
fi

# ---- 5. small ones -----------------------------------------------------------
run 0 "-O ram -v" "$B/imgconv" -v -O ram "$F/libvirt/sparse.sav" "$W/ram2" &&
    if grep -Eq '^output allocated: 0 B' "$W/out" || ! grep -q '^output allocated: ' "$W/out"; then
        bad "-O ram -v: $(grep allocated "$W/out")"
    else ok "-O ram -v: $(grep 'output allocated' "$W/out")"; fi
# -O sparse: the XML padding is a hole (whole pages of it), not written zeros
run 0 "-O sparse" "$B/imgconv" -O sparse "$raw" "$W/sp2.sav"
if python3 - "$W/sp2.sav" <<'EOF'; then ok "-O sparse: the XML padding is a hole"; else bad "-O sparse: the XML padding is written as data"; fi
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
man=$B/../docs/man1
if [ -d "$man" ]; then
    dates=$(sed -n 's/^\.TH [A-Z]* 1 "\([^"]*\)" "\([^"]*\)".*/\1|\2/p' "$man"/*.1 | sort -u)
    ver=$("$B/imgconv" --version | sed -n '1s/.* //p')
    if [ "$(echo "$dates" | wc -l)" != 1 ] || [ "${dates#*|}" != "mrimg $ver" ] || grep -q '@[A-Z_]*@' "$man"/*.1 ||
        [ "$(ls "$man"/*.1 | wc -l)" != "$(ls "$SRC"/docs/*.1 | wc -l)" ]; then
        bad "man pages: .TH lines: $dates (version $ver)"
    else
        ok "man pages: one .TH date and version: $dates"
    fi
else
    bad "no generated man pages in $man"
fi

finish
