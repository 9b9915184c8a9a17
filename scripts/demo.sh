#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Set up (packages, build) and show what imginfo says about a bundled real
# save image: a `virsh save --image-format sparse` of a 128 MiB guest.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

scripts/setup.sh
b=${MRIMG_BUILD:-build}
image=$b/fixtures/libvirt/sparse.sav
echo
echo "\$ $b/tools/imginfo $image"
"$b/tools/imginfo" "$image"
