#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""QEMU round trip: convert real saves through every format and load them back.

A paused guest with known memory (never run) is saved twice by QEMU itself,
plain (`migrate file:`) and mapped-ram.  The plain save becomes a libvirt
image (`imgconv --xml`), and for every pair (A, B) of the seven libvirt
formats the image goes base -> A -> B through imgconv.  Each result is loaded
into a fresh `-incoming defer` QEMU exactly as libvirt 11.3 would load it
(qemuh.stream_for_qemu: compressed payloads through `TOOL -dc`, raw and
sparse at offset 92 + data_len, sparse with mapped-ram + multifd), and the
restored guest's memory (pmemsave of all RAM) and CPU state (`info
registers`) must equal those of the original guest.

More cases: bare `qemu` / `qemu-mapped` outputs from both bare saves and from
every libvirt format; a live, bandwidth-limited multi-pass stream through
`--compact` and re-encoding (compared with a plain load of that stream and
with the source guest's final state); a guest that ran and was stopped, so
that its registers are not the reset state (the never-run guest's are, and a
register comparison alone would not prove the CPU section was loaded); and
a 1 GiB guest.

Usage: test_roundtrip.py [--machine pc-i440fx-10.0] [--mem MIB] [--big-mem MIB]
                         [--jobs N] [--no-extras] [--keep]
Environment: MRIMG_BIN (directory holding imgconv), QEMU (binary),
CI (set: a missing QEMU >= 9.0 is a failure, not a skip), MRIMG_QEMU_JOBS.

Exit status: 0 all cases passed, 1 some failed, 77 skipped (no usable QEMU
outside CI; ctest's SKIP_RETURN_CODE).
"""

import argparse
import concurrent.futures
import difflib
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemuh  # noqa: E402

SKIP = 77
FORMATS = ["raw", "gzip", "bzip2", "xz", "lzop", "zstd", "sparse"]
TOOLS = ["gzip", "bzip2", "xz", "lzop", "zstd"]  # what libvirt runs on restore
PAGE = 4096
MIB = 1 << 20

_print_lock = threading.Lock()


def say(*a):
    with _print_lock:
        print(*a, flush=True)


in_ci = qemuh.in_ci


def skip_or_fail(msg):
    if in_ci():
        say(f"FAILED: {msg} (CI is set, so this test must run)")
        sys.exit(1)
    say(f"SKIPPED: {msg}")
    sys.exit(SKIP)


class CaseError(Exception):
    pass


# ----------------------------------------------------------------------
# Guest content and helpers
# ----------------------------------------------------------------------

def make_blob(path, seed):
    """Like the fixtures' blob.bin: random, repeated text, zero pages, one
    page of 0x5a.  Deterministic for a given seed."""
    rnd = random.Random(seed).randbytes(256 * 1024)
    line = b"mrimg round trip: the quick brown fox jumps over the lazy dog 0123456789\n"
    text = (line * (512 * 1024 // len(line) + 1))[:512 * 1024]
    data = rnd + text + bytes(8 * PAGE) + b"\x5a" * PAGE
    with open(path, "wb") as f:
        f.write(data)
    return data


def pick_machine(want):
    """want if QEMU has it, else the newest versioned machine of the family
    (a QEMU 9.x has no pc-*-10.0)."""
    out = subprocess.run([qemuh.QEMU, "-machine", "help"], capture_output=True,
                         text=True).stdout
    names = [ln.split()[0] for ln in out.splitlines() if ln.strip()]
    if want in names:
        return want
    fam = re.match(r"(pc-(?:i440fx|q35))-", want)
    if not fam:
        raise SystemExit(f"machine {want} not available in {qemuh.QEMU}")
    vers = []
    for n in names:
        m = re.fullmatch(re.escape(fam.group(1)) + r"-(\d+)\.(\d+)", n)
        if m:
            vers.append(((int(m.group(1)), int(m.group(2))), n))
    if not vers:
        raise SystemExit(f"no {fam.group(1)}-* machine in {qemuh.QEMU}")
    return max(vers)[1]


DOMAIN_XML = """<domain type='qemu'>
  <name>mrimg-roundtrip</name>
  <uuid>6f1c2a7e-2b1d-4c55-9a53-0d6c1e8f4a21</uuid>
  <memory unit='KiB'>{kib}</memory>
  <currentMemory unit='KiB'>{kib}</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='{machine}'>hvm</type>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
  </devices>
</domain>
"""


class Memory:
    """pmemsave of all guest RAM, kept as one sha256 per MiB so that a
    mismatch can name the regions that differ.  QEMU writes into a FIFO that
    is hashed as it comes: no GiB-sized dump files (whose writeback would
    make every fsync on the machine slow)."""

    def __init__(self, guest, workdir, mem_mib, keep_regions=()):
        fifo = os.path.join(workdir, f"pmem-{time.monotonic_ns()}.fifo")
        os.mkfifo(fifo, 0o600)
        self.chunks = []
        self.regions = {}
        got = bytearray()  # the MiB chunks that overlap keep_regions
        keep = {i for a, n in keep_regions for i in range(a // MIB, (a + n - 1) // MIB + 1)}
        kept = {}
        short = []

        def reader():
            with open(fifo, "rb") as f:  # blocks until QEMU opens it
                for i in range(mem_mib):
                    del got[:]
                    while len(got) < MIB:
                        b = f.read(MIB - len(got))
                        if not b:
                            break
                        got.extend(b)
                    if len(got) != MIB:
                        short.append(f"pmemsave wrote {i} MiB + {len(got)} bytes, "
                                     f"expected {mem_mib} MiB")
                        return
                    self.chunks.append(hashlib.sha256(got).hexdigest())
                    if i in keep:
                        kept[i] = bytes(got)
                f.read()  # drain anything extra until QEMU closes

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        try:
            guest.qmp.cmd("pmemsave", val=0, size=mem_mib * MIB, filename=fifo)
        finally:
            t.join(timeout=60)
            if t.is_alive():
                # QEMU never opened the FIFO (the command failed): give the
                # reader its end of file
                try:
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    pass
                t.join(timeout=10)
            os.unlink(fifo)
        if short:
            raise CaseError(short[0])
        if len(self.chunks) != mem_mib:
            raise CaseError(f"pmemsave delivered {len(self.chunks)} of {mem_mib} MiB")
        for a, n in keep_regions:
            b = b"".join(kept[i] for i in range(a // MIB, (a + n - 1) // MIB + 1))
            self.regions[a] = b[a % MIB:a % MIB + n]
        self.digest = hashlib.sha256("".join(self.chunks).encode()).hexdigest()

    def diff(self, ref):
        bad = [i for i, (a, b) in enumerate(zip(self.chunks, ref.chunks)) if a != b]
        shown = ", ".join(f"{i * MIB:#x}" for i in bad[:8])
        more = f" (+{len(bad) - 8} more)" if len(bad) > 8 else ""
        return f"{len(bad)} of {len(ref.chunks)} MiB differ, at {shown}{more}"


class State:
    """What a comparison looks at: memory and `info registers`."""

    def __init__(self, mem, regs):
        self.mem = mem
        self.regs = regs

    @classmethod
    def of(cls, guest, workdir, mem_mib, keep_regions=()):
        return cls(Memory(guest, workdir, mem_mib, keep_regions), guest.registers())

    def mismatch(self, ref):
        """None if equal, else a description of what differs."""
        probs = []
        if self.mem.digest != ref.mem.digest:
            probs.append("memory: " + self.mem.diff(ref.mem))
        if self.regs != ref.regs:
            d = difflib.unified_diff(ref.regs.splitlines(), self.regs.splitlines(),
                                     "reference", "restored", lineterm="", n=0)
            probs.append("registers differ:\n    " + "\n    ".join(list(d)[2:]))
        return "; ".join(probs) if probs else None


# ----------------------------------------------------------------------
# The test
# ----------------------------------------------------------------------

class RoundTrip:
    def __init__(self, args, imgconv):
        self.args = args
        self.imgconv = imgconv
        self.machine = pick_machine(args.machine)
        self.mem = args.mem
        self.results = []  # (group, name, ok, detail)
        self.rlock = threading.Lock()
        self.work = tempfile.mkdtemp(prefix=f"mrimg-rt-{self.machine}-")
        self.blob = os.path.join(self.work, "blob.bin")
        self.blob_data = make_blob(self.blob, seed=20251126)
        self.xml = os.path.join(self.work, "domain.xml")
        with open(self.xml, "w") as f:
            f.write(DOMAIN_XML.format(kib=self.mem * 1024, machine=self.machine))

    # --- plumbing -----------------------------------------------------

    @staticmethod
    def blob_addrs(mem):
        """Where the blob goes: low RAM and the last 2 MiB of RAM."""
        return [0x200000, (mem - 2) * MIB]

    def guest(self, workdir, mem=None, blobs=True, incoming=False):
        """A paused QEMU; with blobs, the blob loaded at blob_addrs (a
        destination gets none: its RAM must come from the stream alone)."""
        mem = mem or self.mem
        extra = []
        addrs = self.blob_addrs(mem)
        if blobs:
            for a in addrs[1:]:
                extra += ["-device", f"loader,file={self.blob},addr={a:#x},force-raw=on"]
        return qemuh.Guest(workdir, machine=self.machine, mem_mib=mem,
                           blob=self.blob if blobs else None, blob_addr=addrs[0],
                           incoming=incoming, extra=extra)

    def state(self, guest, workdir, mem=None):
        mem = mem or self.mem
        return State.of(guest, workdir, mem,
                        [(a, len(self.blob_data)) for a in self.blob_addrs(mem)])

    def convert(self, src, dst, fmt, *extra):
        argv = [self.imgconv, "-q", "-f", "-O", fmt, *extra, src, dst]
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise CaseError(f"imgconv -O {fmt} {' '.join(extra)} {os.path.basename(src)} "
                            f"exited {r.returncode}: {r.stderr.strip()}")
        return dst

    def convert_pipe(self, src, dst, fmt, *extra, pipe_in=False):
        """imgconv -O fmt ... - through real pipes (`cat src |` when pipe_in,
        OUTPUT '-' read by another process into dst), as a user types it."""
        argv = [self.imgconv, "-q", "-O", fmt, *extra, "-" if pipe_in else src, "-"]
        with open(dst, "wb") as out:
            cat_in = subprocess.Popen(["cat", src], stdout=subprocess.PIPE) if pipe_in else None
            conv = subprocess.Popen(argv, stdin=cat_in.stdout if cat_in else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if cat_in:
                cat_in.stdout.close()
            cat_out = subprocess.Popen(["cat"], stdin=conv.stdout, stdout=out)
            conv.stdout.close()
            err = conv.stderr.read().decode(errors="replace")
            rc = conv.wait()
            cat_out.wait()
            if cat_in:
                cat_in.wait()
        if rc != 0:
            raise CaseError(f"imgconv -O {fmt} {' '.join(extra)} "
                            f"{'-' if pipe_in else os.path.basename(src)} - exited {rc}: "
                            f"{err.strip()}")
        return dst

    def convert_json(self, src, dst, fmt, *extra):
        argv = [self.imgconv, "-f", "--output=json", "-O", fmt, *extra, src, dst]
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise CaseError(f"imgconv -O {fmt} {' '.join(extra)} {os.path.basename(src)} "
                            f"exited {r.returncode}: {r.stderr.strip()}")
        return json.loads(r.stdout)

    def load(self, path, casedir, mem=None, channels=1):
        """Load an image the way libvirt 11.3 restores it (a bare stream the
        way a user would: file: URI, mapped-ram on if the stream has it);
        return the restored State."""
        mem = mem or self.mem
        is_libvirt = _has_libvirt_magic(path)
        try:
            f, off, mapped = qemuh.stream_for_qemu(path, casedir)
        except RuntimeError as e:
            raise CaseError(f"libvirt would fail before QEMU loads: {e}")
        g = self.guest(casedir, mem=mem, blobs=False, incoming=True)
        try:
            if mapped and is_libvirt:
                # libvirt's sparse restore: mapped-ram + multifd, N channels
                g.qmp.cmd("migrate-set-capabilities",
                          capabilities=[{"capability": "multifd", "state": True}])
                g.qmp.cmd("migrate-set-parameters", **{"multifd-channels": channels})
            try:
                g.load(os.path.abspath(f), offset=off, mapped=mapped)
            except Exception as e:
                raise CaseError(f"QEMU load failed: {e}; qemu.log: "
                                f"{_tail(os.path.join(casedir, 'qemu.log'))}")
            return self.state(g, casedir, mem)
        finally:
            g.close()
            if f != path and os.path.exists(f):
                os.unlink(f)

    def record(self, group, name, ok, detail, secs):
        with self.rlock:
            self.results.append((group, name, ok, detail))
        say(f"  {'ok  ' if ok else 'FAIL'} {group}: {name} ({secs:.1f} s)"
            + (f"\n       {detail}" if detail else ""))

    def run_case(self, num, group, name, fn):
        # short directory names: QEMU's QMP socket lives there (AF_UNIX
        # paths are limited to 108 bytes)
        casedir = os.path.join(self.work, f"c{num:03d}")
        os.makedirs(casedir, exist_ok=True)
        t0 = time.monotonic()
        try:
            detail = fn(casedir) or ""
            self.record(group, name, True, detail, time.monotonic() - t0)
            if not self.args.keep:
                shutil.rmtree(casedir, ignore_errors=True)
        except CaseError as e:
            self.record(group, name, False, f"{e}  [files kept in {casedir}]",
                        time.monotonic() - t0)
        except Exception as e:  # a bug in the test or QEMU dying: still a failure
            self.record(group, name, False, f"{type(e).__name__}: {e}\n"
                        f"{traceback.format_exc()}  [files kept in {casedir}]",
                        time.monotonic() - t0)

    def expect(self, got, ref, what):
        m = got.mismatch(ref)
        if m:
            raise CaseError(f"{what}: {m}")

    # --- sources --------------------------------------------------------

    def make_reference(self):
        d = os.path.join(self.work, "src")
        os.makedirs(d)
        self.plain = os.path.join(d, "plain.mig")
        self.mapped = os.path.join(d, "mapped.mig")
        g = self.guest(d)
        try:
            self.ref = self.state(g, d)
            g.save(self.plain)
        finally:
            g.close()
        for a in self.blob_addrs(self.mem):
            if self.ref.mem.regions[a] != self.blob_data:
                raise SystemExit(f"setup: the blob is not at {a:#x} in the reference guest")
        # A second, identical never-run guest for the mapped-ram save (QEMU
        # refuses to migrate a guest twice).  It must be in the same state.
        g = self.guest(d)
        try:
            m = self.state(g, d).mismatch(self.ref)
            if m:
                raise SystemExit(f"setup: two identical never-run guests differ: {m}")
            g.save(self.mapped, mapped=True)
        finally:
            g.close()
        self.base = os.path.join(d, "base.sav")
        try:
            self.convert(self.plain, self.base, "raw", "--xml", self.xml)
        except CaseError as e:
            raise SystemExit(f"setup: making the libvirt image failed: {e}")
        # Stage 1 (base -> A).  A failure here fails every case that starts
        # from A, with this error.
        self.stage1_files = {}
        self.stage1_errors = {}
        for a in FORMATS:
            try:
                self.stage1_files[a] = self.convert(self.base, os.path.join(d, f"A-{a}.sav"), a)
            except CaseError as e:
                self.stage1_errors[a] = e
                say(f"  FAIL stage 1: base -> {a}: {e}")

    def stage1(self, a):
        if a in self.stage1_errors:
            raise CaseError(f"stage 1 (base -> {a}) failed: {self.stage1_errors[a]}")
        return self.stage1_files[a]

    def make_live(self):
        """A running guest migrated with a low bandwidth limit: several
        passes, pages sent more than once (QEMU's own counters say so).
        Keeps the source's final state (QEMU stops the source at completion)
        and the state a plain load of the stream gives."""
        d = os.path.join(self.work, "live")
        os.makedirs(d)
        self.live = os.path.join(d, "live.mig")
        for bw in (1 * MIB, 256 * 1024, 64 * 1024):
            g = self.guest(d)
            try:
                g.qmp.cmd("cont")
                time.sleep(0.3)
                g.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": bw})
                st = g.save(self.live)
                ram = st.get("ram", {})
                pages = ram.get("total", 0) // ram.get("page-size", PAGE)
                sent = ram.get("normal", 0) + ram.get("duplicate", 0)
                if sent > pages and ram.get("dirty-sync-count", 0) >= 2:
                    self.live_src = self.state(g, d)
                    break
                say(f"  (live save at {bw} B/s was single-pass: {sent} records for "
                    f"{pages} pages; retrying slower)")
            finally:
                g.close()
        else:
            raise SystemExit("setup: could not make a multi-pass live stream")
        # What every conversion of the live stream must load as: a plain
        # load of the stream itself (checked against the source's final
        # state by the first live case).
        self.live_ref, self.live_load_error = self.live_src, None
        try:
            self.live_ref = self.load(self.live, d)
        except CaseError as e:
            self.live_load_error = f"plain load of the live stream: {e}"
        self.live_info = (f"{sent - pages} pages sent more than once, "
                          f"{ram.get('dirty-sync-count')} dirty syncs, {bw} B/s")

    def make_ran(self):
        """A guest that ran (SeaBIOS) and was stopped: CPU state is not the
        reset state."""
        d = os.path.join(self.work, "ran")
        os.makedirs(d)
        self.ran = os.path.join(d, "ran.mig")
        g = self.guest(d)
        try:
            for _ in range(20):  # on a loaded machine the vCPU may start late
                g.qmp.cmd("cont")
                time.sleep(0.3)
                g.qmp.cmd("stop")
                if g.registers() != self.ref.regs:
                    break
            else:
                raise SystemExit("setup: the guest that ran still has its reset registers")
            self.ran_ref = self.state(g, d)
            g.save(self.ran)
        finally:
            g.close()

    # --- cases ------------------------------------------------------------

    def cases(self):
        C = []
        # Baselines: QEMU's own saves load back into the reference state.
        C.append(("baseline", "plain.mig", lambda d: self.expect(
            self.load(self.plain, d), self.ref, "QEMU's plain save")))
        C.append(("baseline", "mapped.mig", lambda d: self.expect(
            self.load(self.mapped, d), self.ref, "QEMU's mapped-ram save")))
        C.append(("baseline", "base.sav", lambda d: self.expect(
            self.load(self.base, d), self.ref, "imgconv --xml -O raw")))

        # Bytes after a complete stream (issue 11): QEMU stops reading at the
        # VMDESCRIPTION and loads the file, which is why the judgement only
        # warns; imgconv's output leaves them out and loads as well.
        def trailing(d, mapped=False):
            src = self.mapped if mapped else self.plain
            f = os.path.join(d, "trailing.mig")
            shutil.copyfile(src, f)
            with open(f, "ab") as fh:
                fh.write(b"garbage!" * 1000)
            self.expect(self.load(f, d), self.ref, "QEMU's own save + 8000 bytes")
            for fmt in ("qemu", "qemu-mapped"):
                out = self.convert(f, os.path.join(d, f"trailing-{fmt}.mig"), fmt)
                if not mapped and fmt == "qemu" and not _same_bytes(out, src):
                    raise CaseError("-O qemu: the output is not QEMU's stream alone")
                self.expect(self.load(out, d), self.ref, f"save + 8000 bytes -> {fmt}")
        C.append(("trailing", "plain.mig + garbage", trailing))
        C.append(("trailing", "mapped.mig + garbage", lambda d: trailing(d, True)))

        # The 49 pairs.
        for a in FORMATS:
            for b in FORMATS:
                def pair(d, a=a, b=b):
                    out = self.convert(self.stage1(a), os.path.join(d, f"B-{b}.sav"), b)
                    self.expect(self.load(out, d), self.ref, f"base -> {a} -> {b}")
                C.append(("pair", f"{a}>{b}", pair))

        # Parallel restore of a sparse image (virsh restore --parallel-channels 4).
        C.append(("sparse", "restore with 4 channels", lambda d: self.expect(
            self.load(self.stage1("sparse"), d, channels=4), self.ref, "4 channels")))

        # Bare outputs from both bare inputs, and from every libvirt format.
        for src_name, src in (("plain.mig", self.plain), ("mapped.mig", self.mapped)):
            for o in ("qemu", "qemu-mapped"):
                def bare(d, src=src, o=o):
                    out = self.convert(src, os.path.join(d, f"{o}.mig"), o)
                    self.expect(self.load(out, d), self.ref, f"{o} from bare")
                C.append(("bare", f"{src_name}>{o}", bare))
        for a in FORMATS:
            for o in ("qemu", "qemu-mapped"):
                def lv2bare(d, a=a, o=o):
                    out = self.convert(self.stage1(a), os.path.join(d, f"{o}.mig"), o)
                    self.expect(self.load(out, d), self.ref, f"{a} -> {o}")
                C.append(("bare", f"{a}>{o}", lv2bare))
        for o in ("raw", "sparse", "zstd"):
            def m2lv(d, o=o):
                out = self.convert(self.mapped, os.path.join(d, f"{o}.sav"), o,
                                   "--xml", self.xml)
                self.expect(self.load(out, d), self.ref, f"mapped.mig -> {o}")
            C.append(("bare", f"mapped.mig>{o}", m2lv))

        # Through pipes (issue 13): imgconv writing to standard output, read
        # by another process; the image written there (final magic from the
        # start) restores like the file output, which it equals byte for
        # byte.
        for a, o in (("raw", "zstd"), ("zstd", "raw"), ("xz", "gzip"), ("raw", "qemu")):
            def piped(d, a=a, o=o):
                ext = "mig" if o == "qemu" else "sav"
                out = self.convert_pipe(self.stage1(a), os.path.join(d, f"pipe.{ext}"), o)
                ref = self.convert(self.stage1(a), os.path.join(d, f"file.{ext}"), o)
                if not _same_bytes(out, ref):
                    raise CaseError(f"{a} -> {o} through a pipe differs from the file output")
                self.expect(self.load(out, d), self.ref, f"{a} -> {o} | cat")
            C.append(("pipe", f"{a}>{o} to stdout", piped))
        # ... and from standard input to standard output (`cat A | imgconv
        # -O B - - | cat > out`): one pass over the pipe, the judgement on it
        for a, o in (("zstd", "sparse"), ("gzip", "zstd"), ("raw", "raw")):
            def piped_in(d, a=a, o=o):
                out = os.path.join(d, "pipe-in.sav")
                if o == "sparse":  # written by offset: to a file, from cat
                    argv = [self.imgconv, "-q", "-O", o, "-", out]
                    cat = subprocess.Popen(["cat", self.stage1(a)], stdout=subprocess.PIPE)
                    r = subprocess.run(argv, stdin=cat.stdout, capture_output=True, text=True)
                    cat.stdout.close()
                    cat.wait()
                    if r.returncode != 0:
                        raise CaseError(f"cat {a} | imgconv -O {o} - exited {r.returncode}: "
                                        f"{r.stderr.strip()}")
                else:
                    self.convert_pipe(self.stage1(a), out, o, pipe_in=True)
                self.expect(self.load(out, d), self.ref, f"cat {a} | imgconv -O {o} -")
            C.append(("pipe", f"{a}>{o} from stdin", piped_in))

        if not self.args.no_extras:
            C += self.live_cases() + self.ran_cases() + self.big_cases()
        return C

    def live_cases(self):
        C = []

        def plain_load(d):
            if self.live_load_error:
                raise CaseError(self.live_load_error)
            self.expect(self.live_ref, self.live_src, "plain load of the live stream vs "
                        "the source's final state")
            return self.live_info
        C.append(("live", "live.mig (plain load)", plain_load))

        def ref():
            return self.live_ref

        def compact(d):
            info = self.convert_json(self.live, os.path.join(d, "c.mig"), "qemu", "--compact")
            if not info.get("reencoded"):
                raise CaseError(f"--compact did not re-encode a multi-pass stream: {info}")
            if info["output-size"] >= info["input-bytes"]:
                raise CaseError(f"--compact output ({info['output-size']} bytes) is not "
                                f"smaller than the multi-pass input ({info['input-bytes']})")
            self.expect(self.load(os.path.join(d, "c.mig"), d), ref(), "--compact -O qemu")
            return (f"{info['input-bytes']} -> {info['output-size']} bytes, "
                    f"{info['pages-data']} data pages")
        C.append(("live", "--compact -O qemu", compact))

        for o, extra in (("raw", ("--compact",)), ("zstd", ("--compact",)),
                         ("gzip", ()), ("sparse", ()), ("xz", ())):
            def lv(d, o=o, extra=extra):
                out = self.convert(self.live, os.path.join(d, f"{o}.sav"), o,
                                   "--xml", self.xml, *extra)
                self.expect(self.load(out, d), ref(), f"live -> {o} {' '.join(extra)}")
            C.append(("live", f"{' '.join(extra + (o,))}".strip(), lv))
        for o in ("qemu-mapped",):
            def lvb(d, o=o):
                out = self.convert(self.live, os.path.join(d, f"{o}.mig"), o)
                self.expect(self.load(out, d), ref(), f"live -> {o}")
            C.append(("live", o, lvb))

        def chain(d):
            c = self.convert(self.live, os.path.join(d, "c.sav"), "sparse", "--xml", self.xml)
            c = self.convert(c, os.path.join(d, "c2.sav"), "lzop")
            c = self.convert(c, os.path.join(d, "c3.mig"), "qemu", "--compact")
            self.expect(self.load(c, d), ref(), "live -> sparse -> lzop -> qemu --compact")
        C.append(("live", "sparse>lzop>qemu --compact", chain))
        return C

    def ran_cases(self):
        C = []

        def baseline(d):
            self.expect(self.load(self.ran, d), self.ran_ref, "QEMU's own save")
        C.append(("ran", "ran.mig", baseline))
        for o in FORMATS:
            def r(d, o=o):
                out = self.convert(self.ran, os.path.join(d, f"{o}.sav"), o, "--xml", self.xml)
                if o != "sparse":  # and back through sparse
                    out = self.convert(out, os.path.join(d, "s.sav"), "sparse")
                    out = self.convert(out, os.path.join(d, f"{o}2.sav"), o)
                self.expect(self.load(out, d), self.ran_ref, f"ran -> {o}")
            C.append(("ran", o if o == "sparse" else f"{o}>sparse>{o}", r))
        return C

    def big_cases(self):
        if self.args.big_mem <= 0:
            return []
        mem = self.args.big_mem
        C = []
        big = {}

        def setup(d):
            g = self.guest(d, mem=mem)
            try:
                big["ref"] = self.state(g, d, mem)
                big["plain"] = os.path.join(self.work, "big.mig")
                g.save(big["plain"])
            finally:
                g.close()
            for a in self.blob_addrs(mem):
                if big["ref"].mem.regions[a] != self.blob_data:
                    raise CaseError(f"the blob is not at {a:#x}")
            sp = self.convert(big["plain"], os.path.join(d, "big-sparse.sav"), "sparse",
                              "--xml", self.xml)
            st = os.stat(sp)
            zs = self.convert(sp, os.path.join(d, "big-zstd.sav"), "zstd")
            self.expect(self.load(zs, d, mem=mem), big["ref"], f"{mem} MiB: plain -> sparse -> zstd")
            qm = self.convert(zs, os.path.join(d, "big.mapped"), "qemu-mapped")
            self.expect(self.load(qm, d, mem=mem), big["ref"], f"{mem} MiB: -> qemu-mapped")
            sp2 = self.convert(qm, os.path.join(d, "big-sparse2.sav"), "sparse",
                               "--xml", self.xml)
            self.expect(self.load(sp2, d, mem=mem), big["ref"], f"{mem} MiB: -> sparse")
            return (f"sparse image {st.st_size >> 20} MiB logical, "
                    f"{st.st_blocks * 512 >> 20} MiB allocated")
        C.append(("big", f"{mem} MiB plain>sparse>zstd>qemu-mapped>sparse", setup))
        return C

    # --- driver -------------------------------------------------------------

    def run(self):
        t0 = time.monotonic()
        say(f"QEMU round trip: {qemuh.QEMU} {'.'.join(map(str, qemuh.qemu_version()))}, "
            f"machine {self.machine}, {self.mem} MiB, TCG, imgconv {self.imgconv}")
        say(f"work directory: {self.work}")
        self.make_reference()
        say(f"reference guest saved, stage-1 images made ({time.monotonic() - t0:.1f} s)")
        if not self.args.no_extras:
            self.make_live()
            say(f"live stream made ({time.monotonic() - t0:.1f} s): {self.live_info}")
            self.make_ran()
        say(f"sources ready in {time.monotonic() - t0:.1f} s")
        cases = self.cases()
        jobs = self.args.jobs
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
            futs = [ex.submit(self.run_case, i, g, n, fn)
                    for i, (g, n, fn) in enumerate(cases)]
            for f in futs:
                f.result()
        self.report(time.monotonic() - t0)
        failed = [r for r in self.results if not r[2]]
        if not failed and not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        elif failed:
            say(f"work directory kept: {self.work}")
        return 1 if failed else 0

    def report(self, secs):
        res = {(g, n): ok for g, n, ok, _ in self.results}
        say("")
        say(f"49 pairs on {self.machine} (row: A = base -> A, column: B = A -> B; "
            f"ok = memory and registers equal the original guest):")
        w = max(len(f) for f in FORMATS) + 1
        say(" " * w + "".join(f"{b:>{w}}" for b in FORMATS))
        for a in FORMATS:
            cells = ["ok" if res.get(("pair", f"{a}>{b}")) else "FAIL" for b in FORMATS]
            say(f"{a:<{w}}" + "".join(f"{c:>{w}}" for c in cells))
        others = [r for r in self.results if r[0] != "pair"]
        say("")
        say("other cases:")
        for g, n, ok, detail in sorted(others, key=lambda r: (r[0], r[1])):
            say(f"  {'ok  ' if ok else 'FAIL'} {g}: {n}")
        failed = [r for r in self.results if not r[2]]
        if failed:
            say("")
            say("failures:")
            for g, n, ok, detail in failed:
                say(f"  {g}: {n}: {detail}")
        say("")
        say(f"{self.machine}: {len(self.results) - len(failed)} passed, "
            f"{len(failed)} failed in {secs:.1f} s")


def _same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def _has_libvirt_magic(path):
    with open(path, "rb") as f:
        return f.read(7) == b"Libvirt"


def _tail(path, n=6):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode(errors="replace").strip().splitlines()
        return " | ".join(lines[-n:]) or "(empty)"
    except OSError:
        return "(no log)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--machine", default="pc-i440fx-10.0")
    ap.add_argument("--mem", type=int, default=64, help="guest MiB (default 64)")
    ap.add_argument("--big-mem", type=int, default=1024,
                    help="MiB of the larger-memory case (0: skip it; default 1024)")
    ap.add_argument("--jobs", type=int,
                    default=int(os.environ.get("MRIMG_QEMU_JOBS", "0")) or
                    min(2, os.cpu_count() or 1))
    ap.add_argument("--no-extras", action="store_true",
                    help="only the pairs and the bare cases")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    ver = qemuh.qemu_version()
    if ver is None:
        skip_or_fail(f"{qemuh.QEMU} not found (QEMU >= 9.0 is needed: mapped-ram)")
    if ver < (9, 0):
        skip_or_fail(f"{qemuh.QEMU} is QEMU {ver[0]}.{ver[1]}; >= 9.0 is needed (mapped-ram)")
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        skip_or_fail(f"decompressors libvirt runs on restore are missing: {' '.join(missing)}")

    bindir = os.environ.get("MRIMG_BIN")
    if not bindir:
        bindir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                              "build", "tools")
    imgconv = os.path.abspath(os.path.join(bindir, "imgconv"))
    if not os.access(imgconv, os.X_OK):
        say(f"FAILED: no imgconv at {imgconv} (set MRIMG_BIN to the build's tools/)")
        return 1
    return RoundTrip(args, imgconv).run()


if __name__ == "__main__":
    sys.exit(main())
