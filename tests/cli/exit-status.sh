#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The one exit-status table of imginfo, imgconv and imgverify
# (tools/common/exit.h, EXIT STATUS in every man page): each case, each
# tool, with the message naming the file the error is about, and the JSON
# failure objects (validated against docs/*.schema.json).
set -u
. "$(dirname "$0")/lib.sh"
# err_has REGEX: the message on stderr
err_has() { grep -Eq -- "$1" "$W/err" || { bad "stderr lacks /$1/"; sed 's/^/  | /' "$W/err" | head -5; }; }
err_lacks() { grep -Eq -- "$1" "$W/err" && { bad "stderr has /$1/"; sed 's/^/  | /' "$W/err" | head -5; }; }

RAW="$F/libvirt/raw.sav"
: > "$W/empty.sav"
head -c 50 "$RAW" > "$W/hdr.sav"                      # cut inside the 92-byte header
{ printf 'LibvirtQemudXXXX'; tail -c +17 "$RAW"; } > "$W/magic.sav"   # damaged magic
mkdir "$W/dir"

# ---- 3: a missing input, in every tool and mode ----------------------------------
expect 3 "$B/imginfo" "$W/missing.sav";                 err_has "^imginfo: $W/missing.sav: "
expect 3 "$B/imgverify" "$W/missing.sav";               err_has "^imgverify: $W/missing.sav: "
expect 3 "$B/imgverify" --digest "$W/missing.sav";      err_has "^imgverify: $W/missing.sav: "
expect 3 "$B/imgverify" --compare "$RAW" "$W/missing.sav"; err_has "^imgverify: $W/missing.sav: "
expect 3 "$B/imgverify" --compare "$W/missing.sav" "$RAW"; err_has "^imgverify: $W/missing.sav: "
expect 3 "$B/imgconv" "$W/missing.sav" "$W/o.sav";      err_has "^imgconv: $W/missing.sav: "
[ -e "$W/o.sav" ] && bad "imgconv created its output from a missing input"
expect 3 "$B/imgconv" --sparsify "$W/missing.sav";      err_has "^imgconv: $W/missing.sav: "
# a directory as input
expect 3 "$B/imginfo" "$W/dir";                         err_has "^imginfo: $W/dir: .*[Ii]s a directory"
expect 3 "$B/imgverify" --digest "$W/dir";              err_has "^imgverify: $W/dir: .*[Ii]s a directory"

# ---- 1: a damaged header, a damaged magic, an empty file ------------------------
for f in hdr.sav magic.sav empty.sav; do
    expect 1 "$B/imginfo" "$W/$f";                      err_has "^imginfo: $W/$f: "
    expect 1 "$B/imgverify" "$W/$f"
    expect 1 "$B/imgverify" --digest "$W/$f";           err_has "^imgverify: $W/$f: "
    expect 1 "$B/imgverify" --compare "$RAW" "$W/$f";   err_has "^imgverify: $W/$f: "
    expect 1 "$B/imgconv" -O zstd "$W/$f" "$W/o.sav";   err_has "^imgconv: $W/$f: "
done

# ---- 2: usage errors ---------------------------------------------------------------
expect 2 "$B/imginfo" --bogus "$RAW"
expect 2 "$B/imgverify" --bogus "$RAW"
expect 2 "$B/imgconv" --bogus "$RAW" "$W/o.sav"
expect 2 "$B/imgverify" --security-info "$RAW"; err_has "security-info.*--compare only"
expect 2 "$B/imgverify" --digest --security-info "$RAW"; err_has "security-info"

# ---- 3: the output is a directory (with and without -f), --xml is a directory ----------
expect 3 "$B/imgconv" -O zstd "$RAW" "$W/dir"
err_has "^imgconv: $W/dir: .*[Ii]s a directory"; err_lacks "already exists|^imgconv: $RAW"
expect 3 "$B/imgconv" -f -O zstd "$RAW" "$W/dir"
err_has "^imgconv: $W/dir: .*[Ii]s a directory"; err_lacks "^imgconv: $RAW"
[ -z "$(ls -A "$W/dir")" ] || bad "something was written into the directory"
expect 3 "$B/imgconv" --xml="$W/dir" "$RAW" "$W/o.sav"
err_has "^imgconv: $W/dir: .*[Ii]s a directory"; err_lacks "read error"
expect 3 "$B/imgconv" --xml="$W/missing.xml" "$RAW" "$W/o.sav"; err_has "^imgconv: $W/missing.xml: "
printf '<domain>' > "$W/bad.xml"
expect 2 "$B/imgconv" --xml="$W/bad.xml" "$RAW" "$W/o.sav";     err_has "^imgconv: $W/bad.xml: "
expect 3 "$B/imgconv" --output=json --xml="$W/dir" "$RAW" "$W/o.sav"
json imgconv 'd["status"] == "error" and d["exit-status"] == 3 and d["error"]["file"].endswith("/dir")'
# an existing output without -f: 3, naming the output
cp "$RAW" "$W/exists.sav"
expect 3 "$B/imgconv" "$RAW" "$W/exists.sav";           err_has "^imgconv: $W/exists.sav: .*already exists"

# ---- 3: the scratch file (the RAM replay of --compact) is blamed, not the output ------
expect 3 env MRIMG_TMPDIR="$W/nonexistent" "$B/imgconv" --compact "$F/qemu/plain-live.mig" "$W/c.mig"
err_has "^imgconv: scratch file: .*$W/nonexistent"; err_lacks "^imgconv: $W/c.mig"
[ -e "$W/c.mig" ] && bad "--compact left an output behind"
expect 3 env MRIMG_TMPDIR="$W/nonexistent" "$B/imgconv" --compact --output=json \
    "$F/qemu/plain-live.mig" "$W/c.mig"
json imgconv 'd["status"] == "error" and d["error"]["side"] == "scratch" and d["exit-status"] == 3 and "file" not in d["error"]'

# ---- 3: standard output cannot be written ----------------------------------------------
if [ -w /dev/full ]; then
    for cmd in "imginfo $RAW" "imgverify $RAW" "imgverify --digest $RAW" \
        "imgverify --compare $RAW $RAW" "imgconv -v $RAW $W/full.sav" \
        "imginfo --output=json $RAW"; do
        # shellcheck disable=SC2086
        "$B"/$cmd > /dev/full 2> "$W/err"
        rc=$?
        if [ $rc = 3 ]; then ok "$cmd > /dev/full -> 3"; else bad "$cmd > /dev/full -> $rc (expected 3)"; fi
        err_has "standard output: write error: No space left on device"
    done
else
    echo "SKIP: no writable /dev/full"
fi

# ---- 128+N: SIGINT (130) while imgverify reads a large stream ---------------------------
# A background job of a script starts with SIGINT ignored: wait until the tool
# has installed its handler (SigCgt in /proc) before sending it.
sigint_when_caught() { # PID
    local i
    watchdog=
    for i in $(seq 1 1000); do
        local cgt
        cgt=$(awk '/^SigCgt:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
        # not the forked shell before exec: its SIGINT would run our EXIT trap
        case "$(readlink "/proc/$1/exe" 2>/dev/null)" in */tools/img*) ;; *) sleep 0.01; continue ;; esac
        [ -n "$cgt" ] && [ $((0x$cgt & 2)) != 0 ] && break
        sleep 0.01
    done
    kill -INT "$1" || return 1
    # a tool that does not die of it must not hang the test.  The watchdog
    # is a subshell, which inherits our EXIT trap until its first command
    # resets it: it is stopped with SIGKILL, which runs no trap (a SIGTERM
    # arriving before that reset removed $W under the rest of the test)
    ( trap - EXIT; sleep 20; kill -9 "$1" 2>/dev/null ) > /dev/null 2>&1 &
    watchdog=$!
}
# (a FIFO input no longer waits: it is refused at once, tests/cli/file-safety.sh)
python3 "$SRC/tests/tools/mkstream.py" "$W/big.mig" 256 || bad "mkstream"
"$B/imgverify" --digest "$W/big.mig" > /dev/null 2>&1 &
pid=$!
sigint_when_caught $pid
wait $pid
rc=$?
[ -n "$watchdog" ] && { kill -9 "$watchdog"; wait "$watchdog"; } 2>/dev/null
if [ $rc = 130 ]; then ok "imgverify killed by SIGINT -> 130"; else bad "imgverify SIGINT -> $rc (expected 130)"; fi
# and during a long conversion: 130, no temporary left behind
"$B/imgconv" -q -O xz -l 9 -T 1 --xml="$F/libvirt/dumpxml.xml" "$W/big.mig" "$W/big.sav" \
    > /dev/null 2>&1 &
pid=$!
sleep 0.5
sigint_when_caught $pid
wait $pid
rc=$?
[ -n "$watchdog" ] && { kill -9 "$watchdog"; wait "$watchdog"; } 2>/dev/null
if [ $rc = 130 ]; then ok "imgconv killed by SIGINT -> 130"; else bad "imgconv SIGINT -> $rc (expected 130)"; fi
ls -a "$W" | grep -q '\.tmp$' && bad "SIGINT left a temporary file"
rm -f "$W/big.mig" "$W/big.sav"

# ---- several files: the highest status wins; JSON has an object for each -----------------
expect 3 "$B/imgverify" --digest --output=json "$W/missing.sav" "$RAW" "$W/hdr.sav"
json imgverify 'len(d["files"]) == 3
 and d["files"][0]["exit-status"] == 3 and d["files"][0]["error"]["code"] == "io"
 and d["files"][0]["error"]["side"] == "input" and d["files"][0]["error"]["file"].endswith("missing.sav")
 and d["files"][1]["exit-status"] == 0 and d["files"][1]["error"] is None and len(d["files"][1]["digest"]) == 64
 and d["files"][2]["exit-status"] == 1 and d["files"][2]["error"]["code"] == "truncated"
 and d["files"][2]["error"]["offset-kind"] == "file" and d["files"][2]["error"]["offset"] == 50'
expect 1 "$B/imgverify" --digest --output=json "$W/magic.sav"
json imgverify 'len(d["files"]) == 1 and d["files"][0]["error"]["code"] == "format"'
expect 3 "$B/imgverify" --output=json "$W/missing.sav" "$W/hdr.sav" "$RAW"
json imgverify 'len(d["files"]) == 3 and d["files"][0]["error"]["code"] == "io"
 and d["files"][0]["sound"] is False and d["files"][2]["sound"] is True and d["files"][2]["error"] is None
 and d["files"][1]["summary"]["complete"] is False and d["files"][2]["summary"]["complete"] is True'
expect 3 "$B/imgverify" --compare --output=json "$RAW" "$W/missing.sav"
json imgverify 'd["identical"] is None and d["exit-status"] == 3 and d["error"]["file"].endswith("missing.sav")'
expect 1 "$B/imgverify" --compare --output=json "$W/hdr.sav" "$RAW"
json imgverify 'd["exit-status"] == 1 and d["error"]["file"].endswith("hdr.sav")'
expect 0 "$B/imgverify" --compare --output=json "$RAW" "$RAW"
json imgverify 'd["identical"] is True and d["exit-status"] == 0 and d["error"] is None'
expect 3 "$B/imgconv" --output=json "$W/missing.sav" "$W/o.sav"
json imgconv 'd["status"] == "error" and d["exit-status"] == 3 and d["error"]["side"] == "input"'
expect 3 "$B/imgconv" --output=json "$RAW" "$W/dir"
json imgconv 'd["status"] == "error" and d["error"]["side"] == "output" and d["error"]["file"].endswith("/dir")'
expect 1 "$B/imgconv" --output=json "$W/hdr.sav" "$W/o.sav"
json imgconv 'd["status"] == "error" and d["exit-status"] == 1 and d["error"]["code"] == "truncated"'
expect 0 "$B/imgconv" --output=json "$RAW" "$W/ok.sav"
json imgconv 'd["status"] == "ok" and d["exit-status"] == 0'
expect 0 "$B/imgconv" --output=json --sparsify "$W/ok.sav"
json imgconv 'd["status"] == "ok" and d["file"].endswith("ok.sav")'
expect 3 "$B/imgconv" --output=json --sparsify "$W/missing.sav"
json imgconv 'd["status"] == "error" and d["file"].endswith("missing.sav")'
expect 3 "$B/imginfo" --output=json "$RAW" "$W/missing.sav"
json imginfo 'd[1]["status"] == "error" and d[1]["error"]["side"] == "input"'

# ---- the man pages carry the same table ---------------------------------------------------
t=""
for m in imginfo imgconv imgverify; do
    s=$(sed -n '/exit-status-table:/,/end of exit-status-table/p' "$SRC/docs/$m.1")
    [ -n "$s" ] || bad "$m.1 has no exit-status table"
    if [ -z "$t" ]; then t=$s; elif [ "$s" != "$t" ]; then bad "$m.1: the exit-status table differs"; fi
done
echo "$t" | grep -q '^\.B 128+N' || bad "the table lacks 128+N"

finish
