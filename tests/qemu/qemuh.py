#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Drive real QEMU for the tests: make guests with known memory, save them
with `migrate file:`, load images back with `-incoming defer`, and read the
guest's memory (pmemsave) and CPU state (info registers) for comparison."""

import hashlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time

QEMU = os.environ.get("QEMU", "qemu-system-x86_64")


def in_ci():
    """CI set in the environment (and not 0/false/no): a skip is a failure."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_status(msg, skip=77):
    """Say why a test cannot run; the exit status: 1 in CI, else skip."""
    if in_ci():
        print(f"FAILED: {msg} (CI is set, so this test must run)")
        return 1
    print(f"SKIPPED: {msg}")
    return skip


def qemu_version():
    """(major, minor) of the QEMU binary, or None if there is none."""
    exe = shutil.which(QEMU)
    if not exe:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


class QMP:
    def __init__(self, path, timeout=60, alive=None):
        deadline = time.time() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if alive is not None and not alive():
                    raise RuntimeError("QEMU exited before its QMP socket was up "
                                       "(see qemu.log)")
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.f = self.s.makefile("rwb")
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError("QMP connection closed")
            msg = json.loads(line)
            if "event" in msg:
                continue
            return msg

    def cmd(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.f.write(json.dumps(req).encode() + b"\n")
        self.f.flush()
        r = self._read()
        if "error" in r:
            raise RuntimeError(f"{name}: {r['error'].get('desc')}")
        return r.get("return")

    def hmp(self, line):
        return self.cmd("human-monitor-command", **{"command-line": line})

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class Guest:
    """A paused QEMU (TCG) with optional blob loaded at a guest address."""

    def __init__(self, workdir, machine="pc-i440fx-10.0", mem_mib=64, blob=None,
                 blob_addr=0x200000, incoming=False, extra=(), accel=None):
        accel = accel or os.environ.get("QEMU_ACCEL", "tcg")
        self.workdir = workdir
        self.sock = os.path.join(workdir, f"qmp-{os.getpid()}-{time.monotonic_ns()}.sock")
        argv = [QEMU, "-S", "-accel", accel, "-machine", machine, "-m", str(mem_mib),
                "-nodefaults", "-nographic", "-display", "none",
                "-qmp", f"unix:{self.sock},server=on,wait=off"]
        if blob:
            argv += ["-device", f"loader,file={blob},addr={blob_addr:#x},force-raw=on"]
        if incoming:
            argv += ["-incoming", "defer"]
        argv += list(extra)
        self.log = open(os.path.join(workdir, "qemu.log"), "ab")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=self.log)
        self.mem_mib = mem_mib
        try:
            self.qmp = QMP(self.sock, alive=lambda: self.p.poll() is None)
        except BaseException:
            self.p.kill()
            self.p.wait()
            self.log.close()
            raise

    def wait_migration(self, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = self.qmp.cmd("query-migrate")
            s = st.get("status")
            if s == "completed":
                return st
            if s in ("failed", "cancelled"):
                raise RuntimeError(f"migration {s}: {st.get('error-desc')}")
            time.sleep(0.05)
        raise TimeoutError("migration did not finish")

    def save(self, path, mapped=False, offset=0):
        if mapped:
            self.qmp.cmd("migrate-set-capabilities",
                         capabilities=[{"capability": "mapped-ram", "state": True}])
        uri = f"file:{path}" + (f",offset={offset:#x}" if offset else "")
        self.qmp.cmd("migrate", uri=uri)
        return self.wait_migration()

    def load(self, path, offset=0, mapped=False):
        if mapped:
            self.qmp.cmd("migrate-set-capabilities",
                         capabilities=[{"capability": "mapped-ram", "state": True}])
        uri = f"file:{path}" + (f",offset={offset:#x}" if offset else "")
        self.qmp.cmd("migrate-incoming", uri=uri, **{"exit-on-error": False})
        return self.wait_migration()

    def memory_digest(self):
        out = os.path.join(self.workdir, f"mem-{time.monotonic_ns()}.bin")
        self.qmp.cmd("pmemsave", val=0, size=self.mem_mib << 20, filename=out)
        h = hashlib.sha256()
        with open(out, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
        os.unlink(out)
        return h.hexdigest()

    def registers(self):
        return self.qmp.hmp("info registers")

    def close(self):
        try:
            self.qmp.cmd("quit")
        except Exception:
            pass
        self.qmp.close()
        try:
            self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.log.close()


LIBVIRT_TOOLS = {1: ["gzip", "-dc"], 2: ["bzip2", "-dc"], 3: ["xz", "-dc"],
                 4: ["lzop", "-dc", "--ignore-warn"], 5: ["zstd", "-dc"]}


def libvirt_header(path):
    """(complete, version, data_len, was_running, format, payload_offset)"""
    with open(path, "rb") as f:
        h = f.read(92)
    magic = h[:16]
    ver, dlen, run, fmt, cookie = struct.unpack("<5I", h[16:36])
    if ver > 2:
        ver, dlen, run, fmt, cookie = struct.unpack(">5I", h[16:36])
    return magic == b"LibvirtQemudSave", ver, dlen, run, fmt, 92 + dlen


def stream_for_qemu(path, workdir):
    """What QEMU would be handed on restore, the way libvirt 11.3 hands it:
    (file, offset, mapped).  Compressed payloads are piped through the stock
    tool exactly as libvirt runs it; its exit status must be 0."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:7] != b"Libvirt":
        with open(path, "rb") as f:
            data = f.read(1 << 16)
        mapped = b"mapped-ram" in data[:4096]
        return path, 0, mapped
    complete, ver, dlen, run, fmt, off = libvirt_header(path)
    if not complete:
        raise RuntimeError("libvirt refuses an incomplete save image")
    if fmt in LIBVIRT_TOOLS and ver == 2:
        out = os.path.join(workdir, f"decoded-{time.monotonic_ns()}.mig")
        with open(path, "rb") as src, open(out, "wb") as dst:
            src.seek(off)
            r = subprocess.run(LIBVIRT_TOOLS[fmt], stdin=src, stdout=dst,
                               stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError(f"{LIBVIRT_TOOLS[fmt][0]} -dc exited {r.returncode}: "
                               f"{r.stderr.decode(errors='replace').strip()}")
        return out, 0, False
    return path, off, fmt == 6


def restore_digest(path, workdir, machine="pc-i440fx-10.0", mem_mib=64, accel=None):
    """Load an image into a fresh QEMU; return (memory sha256, registers)."""
    f, off, mapped = stream_for_qemu(path, workdir)
    g = Guest(workdir, machine=machine, mem_mib=mem_mib, incoming=True, accel=accel)
    try:
        g.load(os.path.abspath(f), offset=off, mapped=mapped)
        return g.memory_digest(), g.registers()
    finally:
        g.close()
        if f != path:
            os.unlink(f)
