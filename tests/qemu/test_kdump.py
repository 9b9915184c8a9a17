#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`imgconv -O kdump-zlib` and `-O kdump-lzo` against QEMU's own dump.

QEMU is the truth: `dump-guest-memory` (paging off) of a paused guest with
format kdump-raw-zlib and kdump-raw-lzo (the non-flattened files; kdump-zlib
and kdump-lzo are the same records in makedumpfile's flattened stream).
Debian's QEMU 10 is built without LZO and snappy (its formats: elf,
kdump-zlib, kdump-raw-zlib, win-dmp); then the LZO truth is QEMU's zlib dump
with status 2, and each page with data must be LZO-compressed or, where
LZO1X-1 does not make it smaller (checked), raw (as_lzo).  The
guest (q35, 1 GiB, a VGA, SeaBIOS run until it programmed the BARs, blobs
loaded below and above the PCI hole... and a page that does not compress) is
saved plain and mapped-ram, and the plain save is made a zstd libvirt image
with imgconv.  From each save both kdump kinds must have:
  - every header and sub-header field equal to QEMU's (none differs: QEMU
    leaves the timestamp zero and puts only "Unknown" in the utsname);
  - the same notes, bitmaps and dumped pfns;
  - for every pfn the same bytes after decompression, the same flags
    (compressed or stored raw) and page_flags; zero pages all sharing one
    descriptor, as QEMU's do.
A second guest (q35, 256 MiB, two vCPUs) boots tests/qemu/longmode.S into
long mode and publishes a VMCOREINFO with NUMBER(phys_base) through a
vmcoreinfo device: the notes, nr_cpus, phys_base and the VMCOREINFO offsets
must be QEMU's too.
The data offsets differ by design (QEMU writes the data in pfn order, we in
the order of the save) and are only checked to be consistent.

Environment: MRIMG_BIN, QEMU, CI (set: a missing QEMU is a failure),
MRIMG_KEEP (keep the work directory).  Exit 0 pass, 1 fail, 77 skipped.
"""

import hashlib
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kdumpfile  # noqa: E402
import qemuh  # noqa: E402
from test_cpu import build_longmode  # noqa: E402
from test_memmap import BIN, SKIP, in_ci, make_blob, other_forms, run, wait_bars  # noqa: E402

KINDS = (("kdump-zlib", "kdump-raw-zlib"), ("kdump-lzo", "kdump-raw-lzo"))
LZO_OR_RAW = "lzo-or-raw"
ZERO_SHA1 = hashlib.sha1(bytes(4096)).hexdigest()


def summary(path, lzo_undecided=False):
    """(fields, notes, bitmaps, {pfn: (flags, page_flags, sha1)}, zero descriptors).
    lzo_undecided: flags of pages with data are LZO_OR_RAW once checked
    (raw ones must not shrink under LZO1X-1, as QEMU decides)."""
    k = kdumpfile.Kdump(path)
    try:
        pages = {}
        zero_descs = set()
        for pfn, d, data in k.pages():
            zero = data == bytes(len(data))
            if zero and d["flags"] == 0:
                zero_descs.add((d["offset"], d["size"]))
            f = d["flags"]
            if lzo_undecided and not zero:
                if f == 0 and kdumpfile.lzo_compressed_len(data) < len(data):
                    raise ValueError(f"{path}: pfn {pfn:#x} stored raw, LZO makes it smaller")
                f = LZO_OR_RAW
            pages[pfn] = (f, d["page_flags"], hashlib.sha1(data).hexdigest())
        return k.fields(), k.notes, (k.bitmap1, k.bitmap2), pages, zero_descs
    finally:
        k.close()


def as_lzo(t):
    fields, notes, bitmaps, pages, zero = t
    fields = dict(fields)
    fields[("header", "status")] = kdumpfile.LZO
    # whether LZO1X-1 shrinks a page is checked on our file (summary with
    # lzo_undecided); zero pages keep the shared descriptor, flags 0
    pages = {p: ((LZO_OR_RAW if f in (0, kdumpfile.ZLIB) and h != ZERO_SHA1 else f), pf, h)
             for p, (f, pf, h) in pages.items()}
    return fields, notes, bitmaps, pages, zero


def compare(got_path, truth, tag, lzo_undecided=False):
    problems = []
    fields, notes, bitmaps, pages, zero_descs = summary(got_path, lzo_undecided)
    tfields, tnotes, tbitmaps, tpages, tzero = truth
    # no field may differ: the timestamp QEMU leaves zero, the utsname holds
    # only its machine "Unknown", the data offsets are in the descriptors
    for k in tfields:
        if fields[k] != tfields[k]:
            problems.append(f"{tag}: {k[0]}.{k[1]} is {fields[k]!r}, QEMU's {tfields[k]!r}")
    if notes != tnotes:
        problems.append(f"{tag}: the notes differ from QEMU's ({len(notes)} vs {len(tnotes)} "
                        f"bytes)")
    if bitmaps != tbitmaps:
        problems.append(f"{tag}: the bitmaps differ from QEMU's")
    if bitmaps[0] != bitmaps[1]:
        problems.append(f"{tag}: bitmap 1 and 2 differ (dump level 1 makes them equal)")
    if set(pages) != set(tpages):
        problems.append(f"{tag}: {len(pages)} pfns dumped, QEMU {len(tpages)}")
    diff = sorted(p for p in pages if p in tpages and pages[p] != tpages[p])
    if diff:
        p = diff[0]
        problems.append(f"{tag}: {len(diff)} pages differ from QEMU's, first pfn {p:#x}: "
                        f"{pages[p]} vs {tpages[p]}")
    if len(zero_descs) != 1 or len(tzero) != 1:
        problems.append(f"{tag}: zero pages use {len(zero_descs)} descriptors "
                        f"(QEMU: {len(tzero)}); one shared one expected")
    return problems


def case(wd, name, machine, mem, args, boot, problems):
    """One guest: QEMU's dumps, three saves, both kinds from each."""
    wd = os.path.join(wd, name)
    os.makedirs(wd)
    g = qemuh.Guest(wd, machine=machine, mem_mib=mem, extra=args)
    truth = {}
    try:
        if boot == "bars":
            wait_bars(g)
        else:
            g.qmp.cmd("cont")
            time.sleep(1.5)
            g.qmp.cmd("stop")
        caps = g.qmp.cmd("query-dump-guest-memory-capability")["formats"]
        print(f"{name}: QEMU's dump formats:", " ".join(caps))
        for ours, qemus in KINDS:
            if qemus not in caps:
                continue
            p = os.path.join(wd, f"qemu.{ours}")
            g.qmp.cmd("dump-guest-memory", paging=False, protocol="file:" + p, format=qemus)
            truth[ours] = summary(p)
            os.unlink(p)
        plain = os.path.join(wd, "plain.mig")
        g.save(plain)
    finally:
        g.close()
    lzo_derived = "kdump-lzo" not in truth
    if lzo_derived:
        # a QEMU built without liblzo2 (Debian's): the LZO file must be the
        # zlib one with LZO in place of zlib, page by page
        print(f"{name}: QEMU has no kdump-raw-lzo: -O kdump-lzo is compared with QEMU's zlib "
              "dump, status 2 and each page LZO-compressed or, if LZO1X-1 does not shrink "
              "it, raw")
        truth["kdump-lzo"] = as_lzo(truth["kdump-zlib"])
    boot_args = [a for i, a in enumerate(args) if a != "-kernel" and
                 (i == 0 or args[i - 1] != "-kernel")]
    mapped, zst = other_forms(wd, plain, machine, mem, mem, boot_args, "", RuntimeError)
    for src, sname in ((plain, "plain"), (mapped, "mapped-ram"), (zst, "zstd")):
        for ours, _ in KINDS:
            out = os.path.join(wd, f"{sname}.{ours}")
            r = run([os.path.join(BIN, "imgconv"), "-q", "-O", ours, src, out])
            if r.returncode != 0:
                problems.append(f"{name}/{sname}: imgconv -O {ours} exited {r.returncode}: "
                                f"{r.stderr.strip()}")
                continue
            problems += compare(out, truth[ours], f"{name}/{sname} -O {ours}",
                                ours == "kdump-lzo" and lzo_derived)
            os.unlink(out)
    return truth["kdump-zlib"][0]


def main():
    ver = qemuh.qemu_version()
    if not ver or ver < (9, 0) or not BIN:
        return qemuh.skip_status("no QEMU >= 9.0" if BIN else "MRIMG_BIN is not set", SKIP)
    wd = tempfile.mkdtemp(prefix="mrimg-kdump-")
    problems = []
    failed = 0
    try:
        G = 1 << 30
        args = ["-device", "VGA"]
        for i, (addr, size) in enumerate(((256 << 20, 64 << 10), (G - (1 << 20), 8 << 10))):
            b = os.path.join(wd, f"blob{i}")
            make_blob(b, f"kdump-{i}", size)
            args += ["-device", f"loader,file={b},addr={addr:#x},force-raw=on"]
        # pages of random bytes: neither zlib nor LZO make them smaller
        rnd = os.path.join(wd, "random")
        with open(rnd, "wb") as f:
            f.write(os.urandom(3 * 4096))
        args += ["-device", f"loader,file={rnd},addr={512 << 20:#x},force-raw=on"]
        cases = [("q35-1G", "pc-q35-10.0", 1024, args, "bars")]
        lm = build_longmode(wd)
        if lm:
            # two vCPUs in long mode and a VMCOREINFO with NUMBER(phys_base):
            # the notes, nr_cpus, phys_base and the vmcoreinfo offsets
            cases.append(("q35-long", "pc-q35-10.0", 256,
                          ["-smp", "2", "-device", "vmcoreinfo", "-kernel", lm], "run"))
        elif in_ci():
            problems.append("CI: the long-mode guest could not be built")
        for c in cases:
            t0 = time.time()
            n = len(problems)
            try:
                fields = case(wd, *c, problems)
                if c[0] == "q35-long" and not (fields[("sub", "phys_base")] == 0x1000000 and
                                               fields[("sub", "size_vmcoreinfo")]):
                    problems.append("q35-long: QEMU's dump has no phys_base 0x1000000 or no "
                                    "VMCOREINFO: the guest did not publish it")
            except Exception as e:  # noqa: BLE001
                problems.append(f"{c[0]}: {e}")
            failed += len(problems) > n
            print(f"{'ok' if len(problems) == n else 'FAIL'} {c[0]} ({time.time() - t0:.1f} s)",
                  flush=True)
    finally:
        if os.environ.get("MRIMG_KEEP"):
            print("kept", wd)
        else:
            shutil.rmtree(wd, ignore_errors=True)
    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
