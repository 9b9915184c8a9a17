#!/bin/sh
# Unpack the bundled real images (testdata/*/*.zst) into DEST, keeping holes.
# Usage: unpack-fixtures.sh SRCDIR DEST
set -eu
src=$1
dest=$2
for sub in qemu libvirt; do
    mkdir -p "$dest/$sub"
    for f in "$src/$sub"/*; do
        b=$(basename "$f")
        case "$b" in
        *.zst)
            out="$dest/$sub/${b%.zst}"
            if [ ! -f "$out" ] || [ "$f" -nt "$out" ]; then
                zstd -q -d -f --sparse "$f" -o "$out.part"
                mv -f "$out.part" "$out"
                chmod 0444 "$out"
            fi
            ;;
        *)
            cp -f "$f" "$dest/$sub/$b"
            ;;
        esac
    done
done
