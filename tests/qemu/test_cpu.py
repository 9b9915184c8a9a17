#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vCPU state against real QEMU.

Guests with 2 vCPUs (q35 and i440fx) run SeaBIOS for a moment, so that the
registers are not reset values (the boot vCPU sits in the BIOS's 16-bit
idle loop, the other was woken into 32-bit protected mode and halted), and
are stopped; a third (q35) boots tests/qemu/longmode.S, which enters long
mode with known register values, so that the boot vCPU is saved in 64-bit
mode (x86-64 NT_PRSTATUS notes, 64-bit register display), after publishing
a VMCOREINFO note through a vmcoreinfo device (QEMU appends it to the
notes).  QEMU then tells the truth: `info registers -a` and the
PT_NOTE segment of dump-guest-memory (paging off).  The guest is saved with
`migrate file:` plain, loaded into a second QEMU and saved again with
mapped-ram, and the plain save is converted to a
zstd libvirt image.  For every image:

  - `imginfo --cpu --output=json` is valid for docs/imginfo.schema.json and
    equals `info registers -a` field by field
    for every vCPU (general registers, rip, rflags, CPL, HLT, the segment
    registers' selector/base/limit/flags, GDT/IDT, CR0/2/3/4, EFER);
  - the notes guest_elf_notes() makes (tests/qemu/cpunotes) equal QEMU's
    PT_NOTE bytes.

Exit 77 (skipped) without QEMU >= 9.0 unless CI is set."""

import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemuh  # noqa: E402

BIN = os.environ.get("MRIMG_BIN", "build/tools")
CPUNOTES = os.environ.get("MRIMG_CPUNOTES", "build/tests/qemu/cpunotes")

GPR32 = {"EAX": "rax", "EBX": "rbx", "ECX": "rcx", "EDX": "rdx",
         "ESI": "rsi", "EDI": "rdi", "EBP": "rbp", "ESP": "rsp"}
SEG_RE = re.compile(r"^(ES|CS|SS|DS|FS|GS|LDT|TR)\s*=([0-9a-f]{4}) ([0-9a-f]+) "
                    r"([0-9a-f]{8}) ([0-9a-f]{8})")
TBL_RE = re.compile(r"^(GDT|IDT)=\s+([0-9a-f]+) ([0-9a-f]{8})")
DOMAIN_XML = """<domain type='qemu'>
  <name>mrimg-cpu-{tag}</name>
  <uuid>8f1e0c52-3b7a-4f7e-9c1d-2a6b5e4d3c21</uuid>
  <memory unit='KiB'>{kib}</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64' machine='{machine}'>hvm</type></os>
</domain>
"""
KV_RE = re.compile(r"\b([A-Z][A-Z0-9]*)=([0-9a-f]+)\b")


def parse_hmp(text):
    """`info registers -a` -> list of (fields, width) per CPU: fields maps
    our JSON paths to (value, hex digits shown)."""
    cpus = []
    cur = None
    for line in text.splitlines():
        line = line.rstrip()
        m = re.match(r"^CPU#(\d+)", line)
        if m:
            cur = {"index": (int(m.group(1)), None)}
            cpus.append(cur)
            continue
        if cur is None or not line:
            continue
        m = SEG_RE.match(line)
        if m:
            s = m.group(1).lower()
            for k, v in zip(("selector", "base", "limit", "flags"), m.groups()[1:]):
                cur[f"segments.{s}.{k}"] = (int(v, 16), len(v))
            continue
        m = TBL_RE.match(line)
        if m:
            t = m.group(1).lower()
            cur[f"{t}.base"] = (int(m.group(2), 16), len(m.group(2)))
            cur[f"{t}.limit"] = (int(m.group(3), 16), len(m.group(3)))
            continue
        if line.startswith(("FPR", "XMM", "YMM", "ZMM", "DR", "FCW", "Code", "PKRU")):
            continue
        for k, v in KV_RE.findall(line):
            w = len(v)
            val = int(v, 16)
            if k in GPR32:
                cur[f"regs.{GPR32[k]}"] = (val, w)
            elif re.fullmatch(r"R(AX|BX|CX|DX|SI|DI|BP|SP)", k):
                cur[f"regs.{k.lower()}"] = (val, w)
            elif re.fullmatch(r"R([89]|1[0-5])", k):
                cur[f"regs.{k.lower()}"] = (val, w)
            elif k in ("EIP", "RIP"):
                cur["rip"] = (val, w)
            elif k in ("EFL", "RFL"):
                cur["rflags"] = (val, w)
            elif k in ("CR0", "CR2", "CR3", "CR4", "EFER"):
                cur[k.lower()] = (val, w)
            elif k == "CPL":
                cur["cpl"] = (int(v), None)
            elif k == "HLT":
                cur["halted"] = (bool(int(v)), None)
    return cpus


def lookup(obj, path):
    for p in path.split("."):
        obj = obj[p]
    return obj


def compare_registers(hmp, cpus, what):
    if len(hmp) != len(cpus):
        raise AssertionError(f"{what}: QEMU shows {len(hmp)} vCPUs, imginfo {len(cpus)}")
    n = 0
    for h, c in zip(hmp, cpus):
        required = {"regs.rax", "regs.rsp", "rip", "rflags", "segments.cs.base",
                    "segments.tr.flags", "gdt.base", "idt.limit", "cr0", "cr3", "efer",
                    "cpl", "halted"}
        missing = required - set(h)
        if missing:
            raise AssertionError(f"{what}: could not read {sorted(missing)} from info registers")
        for path, (want, width) in h.items():
            got = lookup(c, path)
            if isinstance(got, str):
                got = int(got, 16)
                if width is not None and width < 16:
                    got &= (1 << (4 * width)) - 1
            if got != want:
                raise AssertionError(f"{what}: vCPU {h['index'][0]} {path}: imginfo says "
                                     f"{got:#x}, QEMU {want:#x}" if isinstance(got, int)
                                     else f"{what}: vCPU {h['index'][0]} {path}: imginfo "
                                     f"says {got}, QEMU {want}")
            n += 1
    return n


def pt_note(path):
    """The PT_NOTE bytes of an ELF core (ELF32 or ELF64)."""
    with open(path, "rb") as f:
        eh = f.read(64)
        if eh[:4] != b"\x7fELF":
            raise AssertionError(f"{path}: not ELF")
        if eh[4] == 2:
            phoff, = struct.unpack_from("<Q", eh, 32)
            phentsize, phnum = struct.unpack_from("<HH", eh, 54)
            fmt, idx = "<IIQQQQQQ", (2, 5)
        else:
            phoff, = struct.unpack_from("<I", eh, 28)
            phentsize, phnum = struct.unpack_from("<HH", eh, 42)
            fmt, idx = "<IIIIIIII", (1, 4)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            ph = struct.unpack(fmt, f.read(struct.calcsize(fmt)))
            if ph[0] == 4:
                f.seek(ph[idx[0]])
                return f.read(ph[idx[1]])
    raise AssertionError(f"{path}: no PT_NOTE")


def note_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"first difference at note byte {i}: ours {x:#04x}, QEMU {y:#04x}"
    return f"lengths differ: ours {len(a)}, QEMU {len(b)}"


def build_longmode(work):
    """tests/qemu/longmode.S as a multiboot ELF, or None without binutils."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "longmode.S")
    obj, elf = os.path.join(work, "longmode.o"), os.path.join(work, "longmode.elf")
    try:
        subprocess.run(["as", "--32", "-o", obj, src], check=True)
        subprocess.run(["ld", "-m", "elf_i386", "-Ttext", "0x100000", "-e", "_start", "-o", elf,
                        obj], check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"note: cannot build the long-mode guest ({e})")
        return None
    return elf


def run_guest(work, machine, mem, tag, devices=(), boot=()):
    g = qemuh.Guest(work, machine=machine, mem_mib=mem, extra=["-smp", "2", *devices, *boot])
    try:
        g.qmp.cmd("cont")
        time.sleep(1.5)
        g.qmp.cmd("stop")
        hmp = g.qmp.hmp("info registers -a")
        dump = os.path.join(work, f"{tag}.elf")
        g.qmp.cmd("dump-guest-memory", paging=False, protocol=f"file:{dump}")
        notes = pt_note(dump)
        os.unlink(dump)
        plain = os.path.join(work, f"{tag}.mig")
        g.save(plain)
    finally:
        g.close()
    # QEMU migrates a guest only once: a second QEMU loads the plain save
    # and writes the same state with mapped-ram
    g = qemuh.Guest(work, machine=machine, mem_mib=mem, extra=["-smp", "2", *devices],
                    incoming=True)
    try:
        g.load(plain)
        if g.qmp.hmp("info registers -a") != hmp:
            raise AssertionError(f"{tag}: the loaded guest's registers differ")
        mapped = os.path.join(work, f"{tag}-mapped.mig")
        g.save(mapped, mapped=True)
    finally:
        g.close()
    return hmp, notes, [plain, mapped]


def main():
    v = qemuh.qemu_version()
    if v is None or v < (9, 0):
        print(f"SKIPPED: no QEMU >= 9.0 (found {v})")
        return 1 if os.environ.get("CI") else 77
    checks = 0
    try:
        import jsonschema
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                               "imginfo.schema.json")) as f:
            schema = json.load(f)
    except ImportError:
        print("note: no jsonschema module: the JSON schema is not checked")
        schema = None
    with tempfile.TemporaryDirectory(prefix="mrimg-cpu-") as work:
        guests = [("pc-q35-10.0", 256, "q35", (), ()), ("pc-i440fx-10.0", 128, "i440fx", (), ())]
        lm = build_longmode(work)
        if lm:
            guests.append(("pc-q35-10.0", 256, "q35-long", ("-device", "vmcoreinfo"),
                           ("-kernel", lm)))
        elif os.environ.get("CI"):
            raise AssertionError("CI: the long-mode guest could not be built")
        for machine, mem, tag, devices, boot in guests:
            hmp_text, qnotes, images = run_guest(work, machine, mem, tag, devices, boot)
            if devices and b"VMCOREINFO\0" not in qnotes:
                raise AssertionError(f"{tag}: QEMU's dump has no VMCOREINFO note: the guest "
                                     "did not publish it")
            hmp = parse_hmp(hmp_text)
            if len(hmp) != 2:
                raise AssertionError(f"{tag}: expected 2 vCPUs in info registers -a")
            xml = os.path.join(work, f"{tag}.xml")
            with open(xml, "w") as f:
                f.write(DOMAIN_XML.format(tag=tag, kib=mem * 1024, machine=machine))
            zst = os.path.join(work, f"{tag}.zst.sav")
            subprocess.run([os.path.join(BIN, "imgconv"), "-O", "zstd", "--xml", xml, images[0],
                            zst], check=True)
            images.append(zst)
            for img in images:
                what = f"{tag}/{os.path.basename(img)}"
                r = subprocess.run([os.path.join(BIN, "imginfo"), "--cpu", "--output=json", img],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    raise AssertionError(f"{what}: imginfo --cpu exited {r.returncode}: "
                                         f"{r.stderr}")
                doc = json.loads(r.stdout)
                if schema is not None:
                    jsonschema.Draft202012Validator(schema).validate(doc)
                cpus = doc["cpus"]
                n = compare_registers(hmp, cpus, what)
                ours = os.path.join(work, "notes.bin")
                subprocess.run([CPUNOTES, img, ours], check=True)
                with open(ours, "rb") as f:
                    mine = f.read()
                if mine != qnotes:
                    raise AssertionError(f"{what}: ELF notes differ from QEMU's "
                                         f"({note_diff(mine, qnotes)})")
                print(f"ok {what}: {n} register fields equal info registers -a, "
                      f"{len(mine)} bytes of notes equal QEMU's")
                checks += 1
    print(f"{checks} images checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
