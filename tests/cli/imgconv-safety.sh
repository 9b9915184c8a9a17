#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# imgconv never loses data: an existing output is not replaced without
# --force; a full disk, SIGINT, SIGTERM and SIGHUP leave the target untouched
# and no temporary behind; while it works, the output is a 0600 temporary
# carrying libvirt's partial magic; SIGKILL (which cannot be caught) leaves
# at most that partial temporary, which libvirt refuses.
# Needs root for the tiny file system (tmpfs); skipped parts say so.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
mnt=$W/tiny

big_sav

leftovers() { find "$1" -maxdepth 1 -name '.*.tmp' | wc -l; }

# 1. an existing output is not replaced without --force
printf 'precious' > "$W/out.sav"
set +e
"$B/imgconv" -q -O zstd "$F/libvirt/raw.sav" "$W/out.sav" 2> "$W/err"
rc=$?
set -e
[ "$rc" = 3 ] || fail "existing output: exit $rc, expected 3"
grep -q "already exists" "$W/err" || fail "existing output: message: $(cat "$W/err")"
[ "$(cat "$W/out.sav")" = precious ] || fail "existing output was modified"
ok "existing output kept without --force (exit 3)"

# 2. signals: the target stays as it was, the temporary goes
signal_case() { # SIGNAL FORMAT
    local sig=$1 fmt=$2 pid
    slow_convert "$fmt"
    # xz's encoder (multi-threaded block layout, one thread included) holds
    # a whole block (3 x the dictionary: 24 MiB at its default level) before
    # it emits a byte, and the output's 8 MiB write buffer holds the header
    # until that much is compressed: on a loaded machine its temporary can
    # stay empty for most of the conversion.  For xz the
    # signal is sent as soon as the temporary exists (the conversion is then
    # under way: the temporary is created after the check pass, and renamed
    # only at the end, so an exit status of 130 and no leftover still prove
    # the signal arrived mid-conversion); the other formats wait for bytes.
    local tmp="" i
    for i in $(seq 1 1000); do
        tmp=$(find "$W" -maxdepth 1 -name '.out.sav.*.tmp' | head -1)
        [ -n "$tmp" ] && { [ -s "$tmp" ] || [ "$fmt" = xz ]; } && break
        sleep 0.01
    done
    [ -n "$tmp" ] || fail "$sig: no temporary output appeared"
    # while working: 0600, partial magic (once anything is written), target untouched
    [ "$(stat -c %a "$tmp")" = 600 ] || fail "$sig: temporary mode $(stat -c %a "$tmp")"
    if [ -s "$tmp" ]; then
        [ "$(head -c 16 "$tmp")" = LibvirtQemudPart ] || fail "$sig: temporary lacks the partial magic"
    elif [ "$fmt" != xz ]; then
        fail "$sig: the temporary is still empty after 10 s"
    fi
    kill -0 "$pid" 2>/dev/null || fail "$sig: imgconv ended before the signal"
    [ "$(cat "$W/out.sav")" = precious ] || fail "$sig: target changed while converting"
    kill -s "$sig" "$pid"
    local rc=0
    wait "$pid" || rc=$?
    if [ "$sig" = KILL ]; then
        [ "$rc" = 137 ] || fail "KILL: exit $rc"
        [ "$(cat "$W/out.sav")" = precious ] || fail "KILL: target changed"
        # what SIGKILL leaves is a partial image libvirt refuses, never the target
        tmp=$(find "$W" -maxdepth 1 -name '.out.sav.*.tmp' | head -1)
        if [ -n "$tmp" ]; then
            [ "$(head -c 16 "$tmp")" = LibvirtQemudPart ] || fail "KILL: leftover is not partial"
            rm -f "$tmp"
        fi
        ok "SIGKILL during $fmt: target untouched, leftover carries the partial magic"
        return
    fi
    local num; num=$(kill -l "$sig")
    [ "$rc" = $((128 + num)) ] || fail "$sig: exit $rc, expected $((128 + num))"
    [ "$(cat "$W/out.sav")" = precious ] || fail "$sig: target changed"
    [ "$(leftovers "$W")" = 0 ] || fail "$sig: temporary left behind"
    ok "SIG$sig during $fmt: target untouched, temporary removed (exit $rc)"
}
signal_case INT lzop  # xz at -T 1 writes nothing for its first 12 MiB block: too late to see
signal_case TERM bzip2
signal_case HUP gzip
signal_case TERM sparse
signal_case KILL zstd

# 3. a full disk: clear error, nothing left, an existing target kept
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$mnt"
    mount -t tmpfs -o size=2m mrimg-safety "$mnt"
    for fmt in raw sparse zstd; do
        rm -f "$mnt"/* "$mnt"/.*.tmp 2>/dev/null || true
        printf 'precious' > "$mnt/out.sav"
        set +e
        "$B/imgconv" -q -f -O "$fmt" "$W/big.sav" "$mnt/out.sav" 2> "$W/err"
        rc=$?
        set -e
        [ "$rc" = 3 ] || fail "ENOSPC ($fmt): exit $rc, expected 3: $(cat "$W/err")"
        grep -q "No space left on device" "$W/err" || fail "ENOSPC ($fmt): message: $(cat "$W/err")"
        grep -q "^imgconv: $mnt/out.sav: " "$W/err" || fail "ENOSPC ($fmt): the message does not name the output"
        [ "$(cat "$mnt/out.sav")" = precious ] || fail "ENOSPC ($fmt): target changed"
        [ "$(leftovers "$mnt")" = 0 ] || fail "ENOSPC ($fmt): temporary left behind"
        ok "full disk ($fmt): exit 3, '$(head -c 120 "$W/err")', target untouched"
    done
    # and with room, the same conversion succeeds and verifies
    umount "$mnt"
    mount -t tmpfs -o size=400m mrimg-safety "$mnt"
    "$B/imgconv" -q -O sparse "$W/big.sav" "$mnt/out.sav"
    "$B/imgverify" -q "$mnt/out.sav" || fail "converted image does not verify"
    ok "with room: converts and verifies"
else
    echo "skipped: full-disk cases need root (tmpfs)"
fi
finish
