#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""libvirt's own images against libvirt's own guest: `-O elf`, `-O phys` and
`imginfo --memory-map` of `virsh save` images equal QEMU's dump of the guest.

A transient libvirt guest (q35, 3 GiB, VGA, libvirt's default devices: PCIe
root ports, SATA, USB) with blobs QEMU's loader puts below 2 GiB and above
4 GiB runs SeaBIOS until its VGA BAR is programmed and is suspended; QEMU
dumps its memory (dump-guest-memory, paging off, ELF, through the libvirt
monitor into a FIFO); then `virsh save` writes it zstd-compressed and
sparse.  Each image must convert to an ELF core with exactly the dump's
PT_LOAD ranges and bytes, a flat file with the same bytes at the same
addresses, and an `imginfo --memory-map` with the same ranges
(tests/qemu/test_memmap.py's check_image).

Environment: MRIMG_BIN, CI (set: no usable libvirt, or not root, fails).
Exit status: 0 passed, 1 failed, 77 skipped.
"""

import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "qemu"))
sys.path.insert(0, HERE)
import test_memmap as tm  # noqa: E402
from test_virsh_restore import Daemons, SKIP, say, skip, versions, virsh  # noqa: E402

G = 1 << 30
BLOBS = [(1 * G, 1 << 20), (4 * G + (256 << 20), 1 << 20)]


def domain_xml(name, workdir):
    loaders = "".join(
        f"<qemu:arg value='-device'/>"
        f"<qemu:arg value='loader,file={workdir}/blob{i},addr={a:#x},force-raw=on'/>"
        for i, (a, _) in enumerate(BLOBS))
    return f"""<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <memory unit='KiB'>{3 * G >> 10}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc-q35-10.0'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <emulator>{shutil.which('qemu-system-x86_64') or '/usr/bin/qemu-system-x86_64'}</emulator>
    <video><model type='vga'/></video>
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>
  </devices>
  <seclabel type='none'/>
  <qemu:commandline>{loaders}</qemu:commandline>
</domain>
"""


def qmp(name, cmd, **args):
    req = {"execute": cmd}
    if args:
        req["arguments"] = args
    out = virsh("qemu-monitor-command", name, json.dumps(req)).stdout
    return json.loads(out).get("return")


def wait_bars(name, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for bus in qmp(name, "query-pci"):
            for d in bus["devices"]:
                if d.get("class_info", {}).get("class") == 0x0300:
                    bar = next((b for b in d.get("regions", []) if b.get("bar") == 0), None)
                    if bar and 0 < bar.get("address", 0) < (1 << 32) - (1 << 20):
                        time.sleep(0.5)
                        return
        time.sleep(0.2)
    raise RuntimeError("SeaBIOS did not program the VGA BAR in time")


def main():
    if not shutil.which("virsh"):
        return skip("virsh not found (libvirt-clients)")
    if os.geteuid() != 0:
        return skip("needs root (qemu:///system)")
    if not tm.BIN:
        return skip("MRIMG_BIN is not set")
    daemons = Daemons()
    try:
        daemons.up()
    except RuntimeError as e:
        return skip(str(e))
    name = f"mrimg-dump-{os.getpid()}"
    wd = tempfile.mkdtemp(prefix="mrimg-virsh-dump-", dir="/var/tmp")
    os.chmod(wd, 0o777)  # QEMU runs as another user: it reads blobs, writes the FIFO
    problems = []
    try:
        lv, qm = versions()
        if not lv or lv < (11, 3) or not qm or qm < (9, 0):
            return skip(f"need libvirt >= 11.3 and QEMU >= 9.0, found {lv} and {qm}")
        for i, (_, size) in enumerate(BLOBS):
            tm.make_blob(os.path.join(wd, f"blob{i}"), f"virsh-{i}", size)
            os.chmod(os.path.join(wd, f"blob{i}"), 0o644)
        x = os.path.join(wd, "domain.xml")
        with open(x, "w") as f:
            f.write(domain_xml(name, wd))
        t0 = time.time()
        virsh("create", x)
        wait_bars(name)
        virsh("suspend", name)
        truth = tm.dump_via_fifo(lambda fifo: qmp(name, "dump-guest-memory", paging=False,
                                                 protocol="file:" + fifo, format="elf"),
                                 wd, mode=0o666)
        say("QEMU's PT_LOADs: " + " ".join(f"[{a:#x},+{n:#x})" for a, n in truth["ranges"]))
        # the same state twice: save, restore paused, save again
        zst = os.path.join(wd, "guest.zst.sav")
        virsh("save", name, zst, "--image-format", "zstd", "--paused")
        virsh("restore", zst, "--paused")
        sparse = os.path.join(wd, "guest.sparse.sav")
        virsh("save", name, sparse, "--image-format", "sparse", "--paused")
        for img, tag in ((zst, "zstd"), (sparse, "sparse")):
            problems += tm.check_image(img, truth, wd, f"virsh-{tag}")
        for p in problems:
            say("FAIL: " + p)
        say(f"{'ok' if not problems else 'FAILED'} in {time.time() - t0:.0f} s")
        return 1 if problems else 0
    except Exception as e:  # noqa: BLE001
        say(f"FAIL: {e}")
        return 1
    finally:
        virsh("destroy", name, check=False)
        if os.environ.get("MRIMG_KEEP"):
            say(f"kept {wd}")
        else:
            shutil.rmtree(wd, ignore_errors=True)
        daemons.down()


if __name__ == "__main__":
    sys.exit(main())
