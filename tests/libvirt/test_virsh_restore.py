#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""libvirt round trip: images converted by imgconv, restored by `virsh restore`.

The QEMU round trip (tests/qemu) loads each output the way libvirt would;
this test has libvirt itself do it.  It drives the system libvirt daemon
(qemu:///system, starting libvirtd and virtlogd for the duration of the test
when none is running) with small transient TCG guests that have known memory
(a random blob put in guest RAM by QEMU's loader device):

  pairs    a paused guest saved by `virsh save` (raw) goes base -> A -> B
           through imgconv for all 49 pairs of the seven formats; each B is
           restored by `virsh restore`, which must leave it paused (the saved
           run state), with guest memory (pmemsave of all RAM) and CPU state
           (`info registers`) equal to the original guest's (and a copy
           of the image with one guest byte changed must not);
  ran      a guest that ran is saved while running (was_running = 1); libvirt's
           own restore of that image is the reference for its conversion to
           every format; restoring one without --paused must start it;
  sparse   `virsh save --image-format sparse`, the image libvirt cannot
           compress, converted to xz, zstd and raw and restored;
  header   `imgconv --running` makes libvirt start a paused save;
           `imgconv --xml` with an XML 100 KiB larger (the payload moves, the
           mapped-ram offsets with it) restores with that XML.

Usage: test_virsh_restore.py [--mem MIB] [--keep]
Environment: MRIMG_BIN (directory holding imgconv), CI (set: a machine
without libvirt >= 11.3 and QEMU >= 9.0, or not root, fails instead of
skipping).  Exit status: 0 all passed, 1 some failed, 77 skipped.
"""

import argparse
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77
FORMATS = ["raw", "gzip", "bzip2", "xz", "lzop", "zstd", "sparse"]
URI = "qemu:///system"
BLOB_ADDR = 0x2000000


def skip(why):
    """Say why the test cannot run; the exit status: 1 when CI is set, else SKIP."""
    ci = bool(os.environ.get("CI"))
    say(("FAILED (CI): " if ci else "SKIPPED: ") + why)
    return 1 if ci else SKIP


def say(*a):
    print(*a, flush=True)


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: "
                           f"{(r.stderr or r.stdout).strip()}")
    return r


def virsh(*args, check=True):
    return run(["virsh", "-q", "-c", URI, *args], check=check)


def versions():
    """(libvirt (major, minor), qemu (major, minor)) from `virsh version`."""
    out = virsh("version").stdout
    lv = re.search(r"Using library: libvirt (\d+)\.(\d+)", out)
    qm = re.search(r"Running hypervisor: QEMU (\d+)\.(\d+)", out)
    return (tuple(map(int, lv.groups())) if lv else None,
            tuple(map(int, qm.groups())) if qm else None)


LOG = "/var/tmp/mrimg-libvirtd.log"   # warnings of the daemons we start


def live_comm(pid):
    """The command name of PID if it is a live process (a zombie has exited), else None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    if stat[stat.rindex(")") + 2:][:1] in ("Z", "X"):
        return None
    return stat[stat.index("(") + 1:stat.rindex(")")]


def daemon_pid(name):
    """The pid in /run/NAME.pid if it is a live process called NAME, else None.

    A pid file can outlive its daemon (a zombie not yet reaped, a pid
    reused by another program, a daemon that was killed): none of those is
    a running daemon."""
    try:
        pid = int(open(f"/run/{name}.pid").read().strip())
    except (OSError, ValueError):
        return None
    return pid if live_comm(pid) == name else None


def gone(pid, seconds):
    """Wait up to SECONDS for PID to exit; True if it did."""
    deadline = time.time() + seconds
    while live_comm(pid) is not None:
        if time.time() > deadline:
            return False
        time.sleep(0.1)
    return True


class Daemons:
    """Make sure libvirtd answers on qemu:///system; stop what we started.

    The libvirt tests run one after another, each starting the daemons and
    stopping them at its end: down() waits until they have exited, and up()
    waits out a daemon that is still shutting down, so that a test never
    takes the previous test's exiting daemon for a running one."""

    WAIT = 90  # seconds for a daemon to answer, or to exit

    def __init__(self):
        self.started = []  # (name, pid)

    def answers(self):
        return virsh("version", check=False).returncode == 0

    def up(self):
        """Return once libvirtd answers; raise RuntimeError saying why not (and
        stop what was started)."""
        if self.answers():
            return
        if os.geteuid() != 0:
            raise RuntimeError("no libvirt daemon is running and starting one needs root")
        try:
            self._start()
        except RuntimeError:
            self.down()
            raise

    def _start(self):
        old = daemon_pid("libvirtd")
        if old:
            # running but not answering: starting up, or shutting down
            deadline = time.time() + self.WAIT
            while daemon_pid("libvirtd") == old and not self.answers():
                if time.time() > deadline:
                    raise RuntimeError(f"libvirtd (pid {old}) neither answered nor exited "
                                       f"within {self.WAIT} s")
                time.sleep(0.2)
            if self.answers():
                return
        env = dict(os.environ, LIBVIRT_LOG_OUTPUTS=f"3:file:{LOG}")
        open(LOG, "w").close()
        for d in ("virtlogd", "libvirtd"):
            if daemon_pid(d):
                continue
            exe = shutil.which(d) or f"/usr/sbin/{d}"
            run([exe, "-d"], env=env)
            deadline = time.time() + 10  # the pid file is written before -d returns
            while not (pid := daemon_pid(d)) and time.time() < deadline:
                time.sleep(0.1)
            if not pid:
                raise RuntimeError(f"{exe} -d: no live {d} in /run/{d}.pid after it returned"
                                   + self._log_tail())
            self.started.append((d, pid))
        deadline = time.time() + self.WAIT
        while not self.answers():
            if time.time() > deadline:
                pid = daemon_pid("libvirtd")
                raise RuntimeError(f"libvirtd did not answer within {self.WAIT} s ("
                                   + (f"pid {pid} is running" if pid else "it is not running")
                                   + ")" + self._log_tail())
            time.sleep(0.2)

    @staticmethod
    def _log_tail():
        try:
            with open(LOG, errors="replace") as f:
                lines = f.read().splitlines()[-15:]
        except OSError:
            return ""
        return "".join(f"\n  {LOG}: {line}" for line in lines)

    def down(self):
        """Stop the daemons up() started and wait until they have exited."""
        for d, pid in reversed(self.started):
            if daemon_pid(d) != pid:
                continue
            t0 = time.time()
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                continue
            if not gone(pid, self.WAIT):
                say(f"{d} (pid {pid}) did not exit within {self.WAIT} s of SIGTERM: killed")
                os.kill(pid, signal.SIGKILL)
                gone(pid, 10)
            elif time.time() - t0 > 5:
                say(f"{d} took {time.time() - t0:.0f} s to exit")
        self.started = []


class Test:
    def __init__(self, args):
        self.bin = os.environ.get("MRIMG_BIN", "")
        self.imgconv = os.path.join(self.bin, "imgconv") if self.bin else "imgconv"
        self.mem = args.mem << 20
        self.keep = args.keep
        # QEMU runs as another user: it must read the blob and write pmemsave
        self.dir = tempfile.mkdtemp(prefix="mrimg-virsh-", dir="/var/tmp")
        os.chmod(self.dir, 0o755)
        self.memdir = os.path.join(self.dir, "mem")
        os.mkdir(self.memdir)
        os.chmod(self.memdir, 0o777)
        self.name = f"mrimg-test-{os.getpid()}"
        self.blob = self.path("blob.bin")
        rnd = random.Random(20261126)
        with open(self.blob, "wb") as f:
            f.write(rnd.randbytes(1 << 20))
        os.chmod(self.blob, 0o644)
        self.failed = []
        self.count = 0

    def path(self, n):
        return os.path.join(self.dir, n)

    def domain_xml(self, extra=""):
        return f"""<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{self.name}</name>
  <memory unit='KiB'>{self.mem >> 10}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc-i440fx-10.0'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <emulator>{shutil.which('qemu-system-x86_64') or '/usr/bin/qemu-system-x86_64'}</emulator>
    <graphics type='vnc' autoport='yes' listen='127.0.0.1' passwd='s3cret'/>
  </devices>
  <seclabel type='none'/>
  <qemu:commandline>
    <qemu:arg value='-device'/>
    <qemu:arg value='loader,file={self.blob},addr={BLOB_ADDR:#x},force-raw=on'/>
  </qemu:commandline>{extra}
</domain>
"""

    def create(self, paused):
        x = self.path("domain.xml")
        with open(x, "w") as f:
            f.write(self.domain_xml())
        virsh("create", x, *(["--paused"] if paused else []))

    def state(self):
        return virsh("domstate", self.name).stdout.strip()

    def snapshot(self):
        """(sha256 of all guest RAM, registers) of the running domain."""
        out = os.path.join(self.memdir, "ram.bin")
        virsh("qemu-monitor-command", self.name, "--hmp",
              f'pmemsave 0 {self.mem:#x} "{out}"')
        h = hashlib.sha256()
        with open(out, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        size = os.path.getsize(out)
        os.unlink(out)
        if size != self.mem:
            raise RuntimeError(f"pmemsave wrote {size} bytes, expected {self.mem}")
        regs = virsh("qemu-monitor-command", self.name, "--hmp", "info registers").stdout
        return h.hexdigest(), regs

    def destroy(self):
        virsh("destroy", self.name, check=False)

    def conv(self, src, fmt, dst, *opts):
        run([self.imgconv, "-q", "-f", "-O", fmt, *opts, src, dst])

    def restore(self, img, ref, expect_state="paused", *opts, check=None):
        """virsh restore IMG; check the state, then check() if given, then
        memory and registers."""
        virsh("restore", img, *opts)
        try:
            st = self.state()
            if st != expect_state:
                raise RuntimeError(f"domain is {st!r} after restore, expected {expect_state!r}")
            if check:
                check()
            if ref is not None:
                if st == "running":
                    virsh("suspend", self.name)
                mem, regs = self.snapshot()
                if mem != ref[0]:
                    raise RuntimeError("guest memory differs from the original")
                if regs != ref[1]:
                    raise RuntimeError("CPU registers differ from the original:\n" + regs)
        finally:
            self.destroy()

    def case(self, label, fn, *a):
        t0 = time.time()
        self.count += 1
        try:
            fn(*a)
            say(f"  ok   {label} ({time.time() - t0:.1f} s)")
        except Exception as e:  # noqa: BLE001 - report and go on
            self.failed.append(label)
            say(f"  FAIL {label}: {e}")
            if os.environ.get("MRIMG_TEST_DEBUG"):
                traceback.print_exc()
            self.destroy()

    # ---- the cases ---------------------------------------------------------

    def pairs(self):
        self.create(paused=True)
        ref = self.snapshot()
        base = self.path("base.sav")
        virsh("save", self.name, base)
        self.case("baseline: virsh restore of virsh save", self.restore, base, ref)
        self.case("control: a changed byte of guest RAM is noticed", self.control, base, ref)
        for a in FORMATS:
            ia = self.path(f"a.{a}")
            self.conv(base, a, ia)
            for b in FORMATS:
                ib = self.path(f"b.{b}")
                self.case(f"pair: {a}>{b}", lambda: (self.conv(ia, b, ib),
                                                     self.restore(ib, ref)))
                os.unlink(ib)
            os.unlink(ia)
        return base, ref

    def control(self, base, ref):
        """The comparison is not blind: one byte of the blob changed in the
        image must show up as different guest memory."""
        with open(base, "rb") as f:
            data = bytearray(f.read())
        with open(self.blob, "rb") as f:
            head = f.read(64)
        at = data.find(head)
        if at < 0 or data.find(head, at + 1) >= 0:
            raise RuntimeError("the blob is not stored once, verbatim, in the raw image")
        data[at + 100] ^= 0x01
        ctl = self.path("control.sav")
        with open(ctl, "wb") as f:
            f.write(data)
        try:
            self.restore(ctl, ref)
        except RuntimeError as e:
            if "memory differs" in str(e):
                return
            raise
        raise RuntimeError("a changed guest page restored with identical memory")

    def ran(self):
        self.create(paused=False)
        time.sleep(1.0)  # the BIOS runs: registers and memory leave the reset state
        src = self.path("ran.sav")
        virsh("save", self.name, src)  # was running: was_running = 1
        # libvirt's own restore of its own image is the reference
        virsh("restore", src, "--paused")
        ref = self.snapshot()
        self.destroy()
        for f in FORMATS:
            out = self.path(f"ran.{f}")
            self.case(f"ran: {f}", lambda: (self.conv(src, f, out),
                                            self.restore(out, ref, "paused", "--paused")))
        # without --paused libvirt starts it again, as the saved state says
        self.case("ran: zstd restores running",
                  lambda: self.restore(self.path("ran.zstd"), None, "running"))

    def sparse(self):
        self.create(paused=True)
        ref = self.snapshot()
        src = self.path("libvirt-sparse.sav")
        virsh("save", "--image-format", "sparse", self.name, src)
        for f in ("xz", "zstd", "raw"):
            out = self.path(f"ls.{f}")
            self.case(f"sparse: libvirt sparse>{f}",
                      lambda: (self.conv(src, f, out), self.restore(out, ref)))

    def header(self, base, ref):
        out = self.path("run.zstd")
        self.case("header: --running", lambda: (self.conv(base, "zstd", out, "--running"),
                                                self.restore(out, None, "running")))
        xml = virsh("save-image-dumpxml", "--security-info", base).stdout
        marker = "mrimg-" + "x" * 64
        big = xml.replace("</domain>", "  <description>" + (marker + " ") * 1500
                          + "</description>\n</domain>")
        bigxml = self.path("big.xml")
        with open(bigxml, "w") as f:
            f.write(big)

        def has_new_xml():
            if virsh("dumpxml", self.name).stdout.count(marker) != 1500:
                raise RuntimeError("the restored domain does not have the new XML")

        def with_xml(fmt):
            img = self.path(f"bigxml.{fmt}")
            self.conv(base, fmt, img, "--xml", bigxml)
            self.restore(img, ref, check=has_new_xml)

        for fmt in ("sparse", "raw", "gzip"):
            self.case(f"header: --xml 100 KiB larger, {fmt}", with_xml, fmt)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mem", type=int, default=64, help="guest RAM in MiB (default 64)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if not shutil.which("virsh"):
        return skip("virsh not found (libvirt-clients)")
    if os.geteuid() != 0:
        return skip("the libvirt round trip needs root (qemu:///system)")
    daemons = Daemons()
    try:
        daemons.up()
    except RuntimeError as e:
        return skip(str(e))
    t = None
    try:
        lv, qm = versions()
        if not lv or lv < (11, 3) or not qm or qm < (9, 0):
            return skip(f"need libvirt >= 11.3 and QEMU >= 9.0, found {lv} and {qm}")
        say(f"libvirt {lv[0]}.{lv[1]}, QEMU {qm[0]}.{qm[1]}")
        t = Test(args)
        t0 = time.time()
        base, ref = t.pairs()
        t.ran()
        t.sparse()
        t.header(base, ref)
        say(f"{t.count - len(t.failed)}/{t.count} cases passed in {time.time() - t0:.0f} s")
        if t.failed:
            say("failed: " + ", ".join(t.failed))
        return 1 if t.failed else 0
    finally:
        if t:
            t.destroy()
            if t.keep:
                say(f"kept {t.dir}")
            else:
                shutil.rmtree(t.dir, ignore_errors=True)
        daemons.down()


if __name__ == "__main__":
    sys.exit(main())
