#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install what mrimg needs on Debian 12 (apt-get, as root) and build it.
#
# Usage: scripts/setup.sh [--tests] [--packages-only] [--print-backports]
#   (default)          packages to build, then build into $MRIMG_BUILD (build/)
#   --tests            also what the tests need: the stock compressors, python3,
#                      clang + libFuzzer, and QEMU >= 9 and libvirt >= 11.3
#                      from bookworm-backports
#   --packages-only    install packages, do not build
#   --print-backports  print the backports apt entry this machine would get
#
# The build is configured with -DCMAKE_BUILD_TYPE=RelWithDebInfo and any
# further cmake arguments in $MRIMG_CMAKE_ARGS (scripts/test.sh passes
# -DMRIMG_WERROR=ON).
#
# Packages are installed only when some are missing (set MRIMG_FORCE_APT=1
# to run apt-get anyway).  QEMU and libvirt come from the distribution's
# backports suite: its apt entry is derived from this machine's own
# /etc/apt/sources.list.d/debian.sources (or /etc/apt/sources.list), so no
# mirror is written into the repository.
set -euo pipefail

self=$(readlink -f "$0")
cd "$(dirname "$self")/.."

tests=0
build=1
print_bpo=0
for a in "$@"; do
    case "$a" in
    --tests) tests=1 ;;
    --packages-only) build=0 ;;
    --print-backports) print_bpo=1 ;;
    -h|--help) sed -n '3,16p' "$self" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option '$a' (see --help)" >&2; exit 2 ;;
    esac
done

BUILD_PKGS=(cmake make gcc libc6-dev pkg-config libzstd-dev zlib1g-dev liblzma-dev
            libbz2-dev liblzo2-dev libcmocka-dev
            zstd)  # zstd: the build unpacks the bundled fixtures (testdata/*.zst)
TEST_PKGS=(gzip bzip2 xz-utils lzop pigz lbzip2 python3
           clang libclang-rt-14-dev)  # clang + libFuzzer runtime for fuzz/
QEMU_PKG=qemu-system-x86
QEMU_MIN=1:9.0~  # mapped-ram
# libvirt 11.3, the version whose images and restores the tests check
# (virsh restore of every imgconv output: tests/libvirt)
LIBVIRT_PKGS=(libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients)
LIBVIRT_MIN=11.3.0~

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

missing_pkgs() {
    local p s
    for p in "$@"; do
        s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [ "$s" = "install ok installed" ] || printf '%s\n' "$p"
    done
}

pkg_ok() {  # pkg_ok PKG MIN-VERSION: installed, at least that version
    local v
    v=$(dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null) || return 1
    case "$v" in "install ok installed "*) ;; *) return 1 ;; esac
    dpkg --compare-versions "${v##* }" ge "$2"
}

backports_ok() {  # everything the tests take from backports is there
    local p
    pkg_ok "$QEMU_PKG" "$QEMU_MIN" || return 1
    for p in "${LIBVIRT_PKGS[@]}"; do pkg_ok "$p" "$LIBVIRT_MIN" || return 1; done
}

codename() {
    local c=""
    [ -r /etc/os-release ] && c=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
    [ -n "$c" ] || die "cannot tell the Debian release (no VERSION_CODENAME in /etc/os-release)"
    printf '%s' "$c"
}

# Print an apt entry for SUITE-backports derived from the machine's own
# entry for SUITE: the deb822 stanza of debian.sources whose Suites lists
# SUITE, with only the Suites field changed; or, for the one-line format, the
# first "deb URI SUITE COMPONENTS" line of sources.list.  Prints nothing if
# neither exists.  Also used by .ci/run's report (--print-backports).
derive_backports() {
    local suite=$1 f=/etc/apt/sources.list.d/debian.sources
    if [ -r "$f" ]; then
        awk -v suite="$suite" '
            BEGIN { RS = ""; FS = "\n" }
            {
                deb = 0; hit = 0
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^Types:/ && $i ~ /[ \t]deb([ \t]|$)/) deb = 1
                    if ($i ~ /^Suites:/) {
                        n = split(substr($i, 8), s, /[ \t]+/)
                        for (j = 1; j <= n; j++) if (s[j] == suite) hit = 1
                    }
                }
                if (!deb || !hit) next
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^Suites:/) print "Suites: " suite "-backports"
                    else print $i
                }
                exit
            }' "$f"
        return
    fi
    if [ -r /etc/apt/sources.list ]; then
        awk -v suite="$suite" '
            $1 == "deb" {
                # deb [options] URI SUITE COMPONENTS...
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { $(i + 1) = suite "-backports"; print; exit }
            }' /etc/apt/sources.list
    fi
}

backports_configured() {
    local suite=$1
    # only files apt reads (*.list, *.sources)
    grep -rlsE --include='*.list' --include='*.sources' \
        "^[^#]*[[:space:]]${suite}-backports([[:space:]]|$)" \
        /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | head -n 1 || true
}

setup_backports() {
    local suite=$1 existing entry dest
    existing=$(backports_configured "$suite")
    if [ -n "$existing" ]; then
        log "$suite-backports already configured in $existing"
        return
    fi
    entry=$(derive_backports "$suite")
    [ -n "$entry" ] || die "no apt entry for '$suite' in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list to derive $suite-backports from"
    if [ -r /etc/apt/sources.list.d/debian.sources ]; then
        dest=/etc/apt/sources.list.d/mrimg-backports.sources
    else
        dest=/etc/apt/sources.list.d/mrimg-backports.list
    fi
    log "adding $suite-backports (derived from this machine's $suite entry) as $dest:"
    printf '%s\n' "$entry" | sed 's/^/    /'
    { printf '# Written by mrimg scripts/setup.sh: QEMU and libvirt for the round-trip tests.\n'
      printf '%s\n' "$entry"; } | as_root tee "$dest.tmp" >/dev/null
    as_root mv -f "$dest.tmp" "$dest"
}

install_packages() {
    local want=("${BUILD_PKGS[@]}") need_qemu=0 missing
    [ "$tests" -eq 1 ] && want+=("${TEST_PKGS[@]}")
    missing=$(missing_pkgs "${want[@]}")
    if [ "$tests" -eq 1 ] && ! backports_ok; then
        need_qemu=1
    fi
    if [ -z "$missing" ] && [ "$need_qemu" -eq 0 ] && [ -z "${MRIMG_FORCE_APT:-}" ]; then
        log "all packages present"
        return
    fi
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install by hand: ${want[*]} $QEMU_PKG (>= $QEMU_MIN) ${LIBVIRT_PKGS[*]} (>= $LIBVIRT_MIN)"
    export DEBIAN_FRONTEND=noninteractive
    local suite=""
    if [ "$tests" -eq 1 ]; then
        suite=$(codename)
        setup_backports "$suite"
    fi
    log "apt-get update"
    as_root apt-get update -q
    log "installing: ${want[*]}"
    as_root apt-get install -y -q --no-install-recommends "${want[@]}"
    if [ "$tests" -eq 1 ]; then
        log "installing $QEMU_PKG ${LIBVIRT_PKGS[*]} from $suite-backports"
        as_root apt-get install -y -q --no-install-recommends -t "$suite-backports" \
            "$QEMU_PKG" "${LIBVIRT_PKGS[@]}"
        backports_ok || die "$QEMU_PKG >= $QEMU_MIN and ${LIBVIRT_PKGS[*]} >= $LIBVIRT_MIN are not installed after apt-get ($(dpkg-query -W -f='${Package} ${Version} ' "$QEMU_PKG" "${LIBVIRT_PKGS[@]}" 2>/dev/null || echo none))"
    fi
}

build() {
    local dir=${MRIMG_BUILD:-build}
    log "building into $dir/"
    # shellcheck disable=SC2086 # MRIMG_CMAKE_ARGS: words
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${MRIMG_CMAKE_ARGS:-}
    cmake --build "$dir" -j "$(nproc)"
}

if [ "$print_bpo" -eq 1 ]; then
    derive_backports "$(codename)"
    exit 0
fi
install_packages
if [ "$build" -eq 1 ]; then
    build
fi
log "done"
