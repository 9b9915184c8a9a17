#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The guest inside the image: memory map, `-O elf` and `-O phys` against QEMU.

For each guest, QEMU itself is the truth: `dump-guest-memory` (paging off,
ELF) of the paused guest lists every guest-physical RAM range as a PT_LOAD
with its bytes.  The same guest is saved plain and mapped-ram (`migrate
file:`), and the plain save is also made a zstd libvirt image with imgconv.
From each save:
  - `imgconv -O elf` must have exactly QEMU's PT_LOAD ranges, and the same
    bytes in each (compared page by page: the set of non-zero pages and
    their digests), QEMU's e_machine and, first, QEMU's PT_NOTE byte for
    byte (vCPU notes from lib/guest/notes.c);
  - `imgconv -O phys` must hold the same bytes at file offset = address,
    and nothing else;
  - `imginfo --memory-map --output=json` must list the same ranges.
Guests (no kernel; blobs loaded with `-device loader` below 2 GiB, above
4 GiB, and in a DIMM):
  q35-3G-reset     q35, 3 GiB, VGA, never run (PAM at reset: pc.rom and the
                   end of pc.bios below 1 MiB; VGA BAR unprogrammed)
  q35-3G-booted    q35, 3 GiB, VGA, SeaBIOS ran until it programmed the BARs
                   (PAM shadowing, vga.vram at its BAR)
  i440fx-4G-booted i440fx, 4 GiB, VGA, SeaBIOS ran
  i440fx-vbe       i440fx, 512 MiB, VGA, booted from a boot sector that sets a
                   VBE mode (vga.vram shows in the VGA window: chain 4)
  q35-dimm         q35, 1 GiB + a 512 MiB pc-dimm, never run

The dump is read from a FIFO as QEMU writes it: no GiB-sized files.

Environment: MRIMG_BIN (directory holding imgconv and imginfo), QEMU, CI
(set: a missing QEMU is a failure, not a skip), MRIMG_KEEP (keep the work
directory).  Exit 0 pass, 1 fail, 77 skipped.
"""

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import elfcore  # noqa: E402
import qemuh  # noqa: E402

SKIP = 77
PAGE = 4096
MIB = 1 << 20
ZERO_MIB = bytes(MIB)
BIN = os.environ.get("MRIMG_BIN", "")

XML = """<domain type='qemu'>
  <name>mrimg-memmap</name>
  <uuid>0b7c0d7e-51a3-4e0f-9c52-1a3c2e4f6d01</uuid>
  <memory unit='KiB'>{kib}</memory>
  <os><type arch='x86_64' machine='{machine}'>hvm</type></os>
  <devices>{devices}</devices>
</domain>
"""
DIMM_XML = """
    <memory model='dimm'>
      <target><size unit='KiB'>524288</size><node>0</node></target>
      <alias name='dimm0'/>
      <address type='dimm' slot='0' base='0x100000000'/>
    </memory>"""


in_ci = qemuh.in_ci


def pages_of(chunk, base, out):
    """Record the non-zero pages of chunk (at guest-physical base)."""
    if chunk == ZERO_MIB[:len(chunk)]:
        return
    for o in range(0, len(chunk), PAGE):
        p = chunk[o:o + PAGE]
        if p.count(0) != len(p):
            out[base + o] = hashlib.sha256(p).hexdigest()


def read_exact(f, n):
    b = bytearray()
    while len(b) < n:
        x = f.read(n - len(b))
        if not x:
            raise EOFError("the dump ended early")
        b.extend(x)
    return bytes(b)


def qemu_dump(guest, workdir):
    """(ranges, pages) of QEMU's dump-guest-memory, read from a FIFO."""
    return dump_via_fifo(lambda fifo: guest.qmp.cmd(
        "dump-guest-memory", paging=False, protocol="file:" + fifo, format="elf"), workdir)


def dump_via_fifo(trigger, workdir, mode=0o600):
    """Have trigger(fifo) make QEMU dump-guest-memory (paging off, ELF) into
    a FIFO and read the dump as it comes: {"ranges", "pages", "phdrs"}."""
    fifo = os.path.join(workdir, f"dump-{time.monotonic_ns()}.fifo")
    os.mkfifo(fifo, mode)
    os.chmod(fifo, mode)
    res = {}

    def reader():
        try:
            with open(fifo, "rb") as f:
                pos = 0
                h = read_exact(f, 64)
                pos = 64
                phoff, = struct.unpack_from("<Q", h, 32)
                phnum, = struct.unpack_from("<H", h, 56)
                read_exact(f, phoff - pos)
                pos = phoff
                ph = []
                for _ in range(phnum):
                    ph.append(struct.unpack("<IIQQQQQQ", read_exact(f, 56)))
                    pos += 56
                note = next((p for p in ph if p[0] == 4), None)
                if note:
                    read_exact(f, note[2] - pos)
                    res["notes"] = read_exact(f, note[5])
                    pos = note[2] + note[5]
                res["machine"], = struct.unpack_from("<H", h, 18)
                loads = sorted((p for p in ph if p[0] == 1), key=lambda p: p[2])
                pages = {}
                for p in loads:
                    off, paddr, filesz = p[2], p[4], p[5]
                    while pos < off:
                        pos += len(read_exact(f, min(MIB, off - pos)))
                    done = 0
                    while done < filesz:
                        c = read_exact(f, min(MIB, filesz - done))
                        pages_of(c, paddr + done, pages)
                        done += len(c)
                    pos += filesz
                f.read()
                res["ranges"] = sorted((p[4], p[6]) for p in loads)
                res["pages"] = pages
                res["phdrs"] = ph
        except Exception as e:  # reported below
            res["error"] = repr(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    ok = False
    try:
        trigger(fifo)
        ok = True
    finally:
        if not ok:
            # QEMU never opened the FIFO: give the reader its end of file
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        t.join(timeout=300)
        os.unlink(fifo)
    if "error" in res:
        raise RuntimeError("reading QEMU's dump: " + res["error"])
    return res


def sparse_pages(path, ranges_by_file):
    """Non-zero pages of a sparse file: ranges_by_file is [(file offset,
    length, guest-physical address)]; data extents only (SEEK_DATA)."""
    out = {}
    fd = os.open(path, os.O_RDONLY)
    try:
        for foff, length, gpa in ranges_by_file:
            pos, end = foff, foff + length
            while pos < end:
                try:
                    d = os.lseek(fd, pos, os.SEEK_DATA)
                except OSError:
                    break
                if d >= end:
                    break
                e = min(os.lseek(fd, d, os.SEEK_HOLE), end)
                d -= (d - foff) % PAGE
                while d < e:
                    n = min(MIB, e - d)
                    pages_of(os.pread(fd, n, d), gpa + (d - foff), out)
                    d += n
                pos = e
    finally:
        os.close(fd)
    return out


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True)


def make_blob(path, seed, size):
    h = hashlib.sha256(seed.encode()).digest()
    data = (h * (size // len(h) + 1))[:size]
    with open(path, "wb") as f:
        f.write(data)


class Fail(Exception):
    pass


def check_image(img, truth, workdir, tag):
    problems = []
    elf = os.path.join(workdir, tag.replace("/", "-") + ".elf")
    phys = os.path.join(workdir, tag.replace("/", "-") + ".phys")
    for kind, out in (("elf", elf), ("phys", phys)):
        r = run([os.path.join(BIN, "imgconv"), "-q", "-O", kind, img, out])
        if r.returncode != 0:
            raise Fail(f"{tag}: imgconv -O {kind} exited {r.returncode}: {r.stderr.strip()}")
    core = elfcore.Core(elf)
    try:
        got = core.ranges()
        if got != truth["ranges"]:
            problems.append(f"{tag}: -O elf PT_LOADs {[(hex(a), hex(n)) for a, n in got]}, "
                            f"QEMU {[(hex(a), hex(n)) for a, n in truth['ranges']]}")
        if core.type != 4 or core.machine != truth["machine"]:
            problems.append(f"{tag}: -O elf e_type {core.type}, e_machine {core.machine}; "
                            f"QEMU's dump has 4, {truth['machine']}")
        notes = [p for p in core.phdrs if p["type"] == 4]
        if core.phdrs[0]["type"] != 4 or len(notes) != 1:
            problems.append(f"{tag}: -O elf has no PT_NOTE first")
        else:
            core.f.seek(notes[0]["offset"])
            if core.f.read(notes[0]["filesz"]) != truth.get("notes"):
                problems.append(f"{tag}: -O elf's PT_NOTE differs from QEMU's "
                                f"({notes[0]['filesz']} and {len(truth.get('notes') or b'')} "
                                f"bytes)")
        for p in core.loads():
            if p["vaddr"] != p["paddr"] or p["filesz"] != p["memsz"]:
                problems.append(f"{tag}: PT_LOAD at {p['paddr']:#x}: vaddr/filesz differ")
        epages = sparse_pages(elf, [(p["offset"], p["filesz"], p["paddr"]) for p in core.loads()])
    finally:
        core.close()
    if epages != truth["pages"]:
        diff = sorted(set(epages.items()) ^ set(truth["pages"].items()))
        problems.append(f"{tag}: -O elf content differs from QEMU's dump in {len(diff)} pages, "
                        f"first at {diff[0][0]:#x}")
    size = max(a + n for a, n in truth["ranges"])
    if os.path.getsize(phys) != size:
        problems.append(f"{tag}: -O phys is {os.path.getsize(phys):#x} bytes, expected {size:#x}")
    ppages = sparse_pages(phys, [(0, os.path.getsize(phys), 0)])
    if ppages != truth["pages"]:
        diff = sorted(set(ppages.items()) ^ set(truth["pages"].items()))
        problems.append(f"{tag}: -O phys content differs from QEMU's dump in {len(diff)} pages, "
                        f"first at {diff[0][0]:#x}")
    r = run([os.path.join(BIN, "imginfo"), "--memory-map", "--output=json", img])
    if r.returncode != 0:
        problems.append(f"{tag}: imginfo --memory-map exited {r.returncode}: {r.stderr.strip()}")
    else:
        mm = json.loads(r.stdout)["memory-map"]
        got = [(x["start"], x["length"]) for x in mm["ranges"]]
        if got != truth["ranges"]:
            problems.append(f"{tag}: imginfo --memory-map ranges differ from QEMU's")
    for p in (elf, phys):
        os.unlink(p)
    return problems


def wait_bars(guest, timeout=120):
    """Let SeaBIOS run until it has programmed the VGA's BAR 0, then stop."""
    guest.qmp.cmd("cont")
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            for bus in guest.qmp.cmd("query-pci"):
                for d in bus["devices"]:
                    if d.get("class_info", {}).get("class") == 0x0300:
                        bar = next((b for b in d.get("regions", []) if b.get("bar") == 0), None)
                        if bar and bar.get("address") not in (0, 0xfffffffffffffff0, None) \
                                and bar["address"] < (1 << 32) - (1 << 20):
                            time.sleep(0.5)  # let it finish the POST step
                            return
            time.sleep(0.2)
        raise Fail("SeaBIOS did not program the VGA BAR in time")
    finally:
        guest.qmp.cmd("stop")


def wait_chain4(guest, timeout=120):
    """Let the boot sector switch the VGA to a VBE mode, then stop."""
    guest.qmp.cmd("cont")
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if "vga.chain4" in guest.qmp.hmp("info mtree"):
                time.sleep(0.3)
                return
            time.sleep(0.2)
        raise Fail("the guest did not switch to a VBE mode in time")
    finally:
        guest.qmp.cmd("stop")


def vbe_boot_disk(path):
    """A disk whose boot sector sets VBE mode 0x118 with the linear frame
    buffer (int 10h, ax=4f02h, bx=4118h) and halts."""
    code = bytes([0xB8, 0x02, 0x4F,   # mov ax, 0x4f02
                  0xBB, 0x18, 0x41,   # mov bx, 0x4118
                  0xCD, 0x10,         # int 0x10
                  0xFA, 0xF4,         # cli; hlt
                  0xEB, 0xFD])        # jmp to the hlt
    with open(path, "wb") as f:
        f.write(code + bytes(510 - len(code)) + b"\x55\xaa" + bytes(1 << 20))


def other_forms(wd, plain, machine, mem, mem_mib, args, xml_devices, fail):
    """The state QEMU saved in plain, in two more forms: saved by QEMU with
    mapped-ram (loaded into a fresh QEMU with args: a source paused by a
    migration cannot migrate again), and a libvirt image (zstd) made by
    imgconv with a domain XML of mem_mib MiB.  (mapped, zst); an imgconv
    failure raises fail(message)."""
    g = qemuh.Guest(wd, machine=machine, mem_mib=mem, extra=args, incoming=True)
    try:
        g.load(plain)
        mapped = os.path.join(wd, "mapped.mig")
        g.save(mapped, mapped=True)
    finally:
        g.close()
    xmlp = os.path.join(wd, "domain.xml")
    with open(xmlp, "w") as f:
        f.write(XML.format(kib=mem_mib * 1024, machine=machine, devices=xml_devices))
    zst = os.path.join(wd, "image.zst.sav")
    r = run([os.path.join(BIN, "imgconv"), "-q", "-O", "zstd", f"--xml={xmlp}", plain, zst])
    if r.returncode != 0:
        raise fail(f"imgconv -O zstd exited {r.returncode}: {r.stderr.strip()}")
    return mapped, zst


def case(name, machine, mem, boot, extra, blobs, xml_devices, workdir):
    wd = os.path.join(workdir, name)
    os.makedirs(wd)
    args = list(extra)
    for i, (addr, size) in enumerate(blobs):
        b = os.path.join(wd, f"blob{i}")
        make_blob(b, f"{name}-{i}", size)
        args += ["-device", f"loader,file={b},addr={addr:#x},force-raw=on"]
    mem_mib = mem if isinstance(mem, int) else int(mem.split("M")[0].split("G")[0]) * (
        1024 if "G" in mem.split(",")[0] else 1)
    g = qemuh.Guest(wd, machine=machine, mem_mib=mem, extra=args)
    try:
        if boot == "vbe":
            wait_chain4(g)
        elif boot:
            wait_bars(g)
        truth = qemu_dump(g, wd)
        plain = os.path.join(wd, "plain.mig")
        g.save(plain)
    finally:
        g.close()
    mapped, zst = other_forms(wd, plain, machine, mem, mem_mib, args, xml_devices,
                              lambda msg: Fail(f"{name}: {msg}"))
    problems = []
    problems += check_image(plain, truth, wd, f"{name}/plain")
    problems += check_image(zst, truth, wd, f"{name}/zstd")
    problems += check_image(mapped, truth, wd, f"{name}/mapped-ram")
    return problems, truth


def main():
    ver = qemuh.qemu_version()
    if not ver or ver < (9, 0) or not BIN:
        return qemuh.skip_status("no QEMU >= 9.0" if BIN else "MRIMG_BIN is not set", SKIP)
    workdir = tempfile.mkdtemp(prefix="mrimg-memmap-")
    G = 1 << 30
    cases = [
        ("q35-3G-reset", "pc-q35-10.0", 3072, False, ["-device", "VGA"],
         [(1 * G, 64 << 10), (4 * G + (256 << 20), 64 << 10)], ""),
        ("q35-3G-booted", "pc-q35-10.0", 3072, True, ["-device", "VGA"],
         [(1 * G, 64 << 10), (4 * G + (256 << 20), 64 << 10)], ""),
        ("i440fx-4G-booted", "pc-i440fx-10.0", 4096, True, ["-device", "VGA"],
         [(1 * G, 64 << 10), (4 * G + (512 << 20), 64 << 10)], ""),
        # a guest in a VBE graphics mode: part of vga.vram shows at 0xa0000
        ("i440fx-vbe", "pc-i440fx-10.0", 512, "vbe",
         ["-device", "VGA", "-drive", f"file={workdir}/vbe.img,format=raw,if=ide"],
         [(256 << 20, 64 << 10)], ""),
        ("q35-dimm", "pc-q35-10.0", "1G,slots=2,maxmem=4G", False,
         ["-object", "memory-backend-ram,id=memdimm0,size=512M",
          "-device", "pc-dimm,id=dimm0,memdev=memdimm0"],
         [(512 << 20, 64 << 10), (4 * G + (128 << 20), 64 << 10)], DIMM_XML),
    ]
    vbe_boot_disk(os.path.join(workdir, "vbe.img"))
    failed = 0
    try:
        for c in cases:
            t0 = time.time()
            try:
                problems, truth = case(*c, workdir)
            except Exception as e:  # noqa: BLE001
                problems, truth = [f"{c[0]}: {e}"], None
            for p in problems:
                print("FAIL:", p)
            failed += bool(problems)
            rs = " ".join(f"[{a:#x},+{n:#x})" for a, n in truth["ranges"]) if truth else "-"
            print(f"{'ok  ' if not problems else 'FAIL'} {c[0]} ({time.time() - t0:.1f} s): {rs}",
                  flush=True)
    finally:
        if os.environ.get("MRIMG_KEEP"):
            print("kept", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
