#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Check imginfo's JSON against ground truth that does not come from our
parser: QEMU's own facts about every fixture (facts.json: machine type,
`info ramblock` names and lengths, its page counters, file size, offset=),
the file system's own data/hole map (SEEK_DATA/SEEK_HOLE from Python), and
the mapped-ram bitmaps read directly from the files.

Usage: check_truth.py IMGINFO FIXTURES SPARSE_COPY_DIR"""

import json
import os
import subprocess
import sys

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


VALIDATOR = None
validated = 0


def load_schema(path):
    """Validate every document against docs/imginfo.schema.json when the
    jsonschema module is there."""
    global VALIDATOR
    try:
        import jsonschema
    except ImportError:
        print("note: no jsonschema module: the JSON schema is not checked")
        return
    schema = json.load(open(path))
    jsonschema.Draft202012Validator.check_schema(schema)
    VALIDATOR = jsonschema.Draft202012Validator(schema)


def imginfo(binary, *args):
    global validated
    p = subprocess.run([binary, "--output=json", *args], capture_output=True, text=True)
    try:
        doc = json.loads(p.stdout)
    except json.JSONDecodeError:
        doc = None
    if doc is not None and VALIDATOR is not None:
        errs = list(VALIDATOR.iter_errors(doc))
        check(not errs, f"imginfo {' '.join(args)}: JSON does not follow the schema: "
                        f"{[e.message[:160] for e in errs[:3]]}")
        validated += 1
    return p.returncode, doc, p.stderr


def ramblocks(lines):
    """(name, used length) from QEMU's `info ramblock` table."""
    out = {}
    for line in lines[1:]:
        f = line.split()
        if len(f) >= 5:
            out[f[0]] = int(f[4], 16)
    return out


def check_facts(binary, fixtures):
    facts = json.load(open(os.path.join(fixtures, "qemu", "facts.json")))
    for fa in facts["files"]:
        name = fa["file"]
        path = os.path.join(fixtures, "qemu", name)
        args = []
        if fa["offset"]:
            args.append("--offset=%d" % fa["offset"])
        if "nozerodetect" in name:
            args.append("--content")
        rc, d, err = imginfo(binary, *args, path)
        check(rc == 0 and d is not None, f"{name}: exit {rc}: {err.strip()}")
        if d is None:
            continue
        st, ram, sizes = d["stream"], d["ram"], d["sizes"]
        check(d["status"] == "ok", f"{name}: status {d['status']}")
        check(st["machine"] == fa["machine"], f"{name}: machine {st['machine']} != {fa['machine']}")
        ours = {b["name"]: b["used-length"] for b in ram["blocks"]}
        check(ours == ramblocks(fa["info_ramblock"]),
              f"{name}: blocks {ours} != info ramblock {ramblocks(fa['info_ramblock'])}")
        check(sizes["file-size"] == fa["size"], f"{name}: file size")
        check(d["container"]["payload-offset"] == fa["offset"], f"{name}: payload offset")
        mapped = "mapped-ram" in fa["capabilities"]
        check(st["layout"] == ("mapped-ram" if mapped else "plain"), f"{name}: layout")
        check(("mapped-ram" in st["capabilities"]) == mapped, f"{name}: capabilities")
        check((st["uuid"] is not None) == ("uuid" in name), f"{name}: uuid")
        stats = fa.get("qemu_ram_stats") or {}
        if stats.get("total") is not None:
            check(ram["total"]["size"] == stats["total"], f"{name}: RAM total")
        if stats.get("normal") is not None:
            normal, dup = stats["normal"], stats["duplicate"]
            tot = ram["total"]
            if not mapped:
                # QEMU counts records: PAGE records are `normal`, ZERO `duplicate`
                check(st["page-records"] == normal, f"{name}: page records {st['page-records']} != normal {normal}")
                check(st["zero-records"] == dup, f"{name}: zero records {st['zero-records']} != duplicate {dup}")
            if fa["live"]:
                check(tot["pages-data"] <= normal, f"{name}: pages with data > normal")
            else:
                check(tot["pages-data"] == normal, f"{name}: pages with data {tot['pages-data']} != normal {normal}")
                check(tot["pages-zero"] + tot.get("pages-absent", 0) == dup,
                      f"{name}: zero pages != duplicate {dup}")
            if "nozerodetect" in name:
                # every page was sent as data; the same guest with zero-page
                # detection on has 244 non-zero pages (plain.mig), so all the
                # others hold zeros
                plain = next(f for f in facts["files"] if f["file"] == "plain.mig")
                nz = plain["qemu_ram_stats"]["normal"]
                check(tot["pages-zero-filled"] == tot["pages"] - nz,
                      f"{name}: zero-filled {tot['pages-zero-filled']} != {tot['pages'] - nz}")
        ex = sizes["explanation"]
        check(isinstance(ex, str) and len(ex) > 20, f"{name}: explanation")
        # device sections: one per entry of QEMU's own description
        with open(path, "rb") as f:
            f.seek(fa["offset"] + st["vmdescription-offset"])
            desc = json.loads(f.read(st["vmdescription-size"]))
        check(st["device-sections"] == len(desc["devices"]),
              f"{name}: {st['device-sections']} device sections, the VMDESCRIPTION lists "
              f"{len(desc['devices'])} devices")


def fs_data_runs(path):
    runs = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        off = 0
        while off < size:
            try:
                dpos = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            h = os.lseek(fd, dpos, os.SEEK_HOLE)
            runs.append((dpos, min(h, size)))
            off = h
    finally:
        os.close(fd)
    return runs


def bitmap_bits(f, off, npages):
    f.seek(off)
    raw = f.read((npages + 63) // 64 * 8)
    return [(raw[i // 8] >> (i % 8)) & 1 for i in range(npages)]


def check_extents(binary, path, label):
    rc, d, err = imginfo(binary, "--extents", path)
    check(rc == 0 and d is not None, f"{label}: --extents exit {rc}: {err.strip()}")
    if d is None:
        return
    ext = d["extents"]
    size = os.path.getsize(path)
    pos = 0
    for e in ext:
        check(e["offset"] == pos and e["length"] > 0, f"{label}: runs not contiguous at {pos}")
        pos = e["offset"] + e["length"]
    check(pos == size, f"{label}: runs end at {pos}, file size {size}")
    # data runs (merged across region cuts) == what the file system says
    merged = []
    for e in ext:
        if not e["data"]:
            continue
        a, b = e["offset"], e["offset"] + e["length"]
        if merged and merged[-1][1] == a:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    check(merged == fs_data_runs(path), f"{label}: data runs differ from SEEK_DATA/SEEK_HOLE")
    tot = d["extent-totals"]
    check(tot["runs"] == len(ext), f"{label}: run count")
    check(tot["data-bytes"] + tot["hole-bytes"] == size, f"{label}: totals")
    blocks = {b["name"]: b for b in d["ram"]["blocks"]}
    data_in_pages = 0
    with open(path, "rb") as f:
        for name, b in blocks.items():
            bm = [e for e in ext if e["region"] == "bitmap" and e.get("block") == name]
            check(bm and bm[0]["offset"] == b["bitmap-offset"] and
                  sum(e["length"] for e in bm) == b["bitmap-size"], f"{label}: bitmap of {name}")
            bits = bitmap_bits(f, b["bitmap-offset"], b["pages"])
            check(sum(bits) == b["pages-data"], f"{label}: {name}: bitmap bits != pages with data")
            for e in ext:
                if e["region"] != "pages" or e.get("block") != name:
                    continue
                first, last = e["first-page"], e["last-page"]
                check(b["pages-offset"] + first * 4096 <= e["offset"] and
                      e["offset"] + e["length"] <= b["pages-offset"] + (last + 1) * 4096,
                      f"{label}: {name}: page range {first}..{last} does not match the run")
                # QEMU writes exactly the pages whose bit it sets (all non-zero
                # here), and the copy keeps exactly the non-zero 4 KiB blocks
                want = all(bits[first:last + 1]) if e["data"] else not any(bits[first:last + 1])
                check(want, f"{label}: {name}: pages {first}..{last} data={e['data']} vs bitmap")
                if e["data"]:
                    data_in_pages += e["length"]
    pages_data = sum(b["pages-data"] for b in blocks.values())
    check(data_in_pages == pages_data * 4096,
          f"{label}: data in page regions {data_in_pages} != pages with data x 4096")


def main():
    binary, fixtures, copies = sys.argv[1], sys.argv[2], sys.argv[3]
    if len(sys.argv) > 4:
        load_schema(sys.argv[4])
    check_facts(binary, fixtures)
    for rel in ("qemu/mapped.mig", "qemu/mapped-multiblock.mig", "libvirt/sparse.sav",
                "libvirt/sparse-p4.sav"):
        p = os.path.join(copies, rel)
        if os.path.exists(p):
            check_extents(binary, p, rel)
    # the other kinds of documents: compressed with the stream map, --xml,
    # a bare stream's --xml, several files with one that cannot be opened
    lv = os.path.join(fixtures, "libvirt")
    for img in ("gzip.sav", "bzip2.sav", "xz.sav", "lzop.sav", "raw-paused.sav"):
        rc, d, err = imginfo(binary, "--extents", "--content", os.path.join(lv, img))
        check(rc == 0 and d and d["status"] == "ok", f"{img}: {err.strip()}")
        if d:
            sm = d["stream-map"] if "stream-map" in d else []
            check(img == "raw-paused.sav" or (sm and sm[-1]["offset"] + sm[-1]["length"] ==
                                              d["sizes"]["stream-size"]),
                  f"{img}: stream map does not reach the end of the stream")
            check(d["container"]["was-running"] == (img != "raw-paused.sav"), f"{img}: was-running")
    imginfo(binary, "--xml", os.path.join(lv, "raw.sav"))
    imginfo(binary, "--xml", os.path.join(fixtures, "qemu", "plain.mig"))
    rc, d, err = imginfo(binary, os.path.join(lv, "raw.sav"), "/nonexistent", os.path.join(lv, "sparse.sav"))
    check(rc == 3 and isinstance(d, list) and len(d) == 3, "several files")
    if VALIDATOR is not None:
        print(f"schema: {validated} documents validated")
    print(f"truth: {'FAILED' if failures else 'ok'} ({len(failures)} failures)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
