#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Generate the seed corpora of the fuzz harnesses from the real fixtures.

    fuzz/make-seeds.py FIXTURES_DIR [OUT_DIR]

FIXTURES_DIR is an unpacked testdata tree (BUILD/fixtures, made by the
normal build).  OUT_DIR defaults to fuzz/corpus next to this script.  The
output is deterministic (no timestamps, fixed compression levels) and
small: every seed is cut from a real QEMU 10.0.2 / libvirt 11.3.0 image and
shrunk so that the fuzzer can mutate it cheaply:

  * plain streams keep the real configuration section, section ids, block
    names, commands and page contents, but every block is cut to a few
    pages and only the records of those pages are kept (several passes and
    CONTINUE across sections survive from plain-live);
  * mapped-ram streams are laid out again with small blocks: bitmaps and
    pages at page-aligned absolute file offsets inside the seed, real bitmap
    bits and real page contents, and the main stream (PART/END sections,
    commands, device state) copied after the last block;
  * the device state is either the real one (about 112 KiB, with its
    VMDESCRIPTION JSON) or a consistent miniature: the first two device
    sections and a JSON describing exactly those two;
  * compressed payloads are made with the stock tools (gzip, bzip2, xz,
    lzop, zstd), as libvirt runs them, plus the first bytes of the real
    payloads of the libvirt fixtures;
  * libvirt containers keep the real header, XML and cookie, with the
    metadata region shrunk (the real one has 64 KiB of padding).
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def be32(b, o):
    return struct.unpack('>I', b[o:o + 4])[0]


def be16(b, o):
    return struct.unpack('>H', b[o:o + 2])[0]


def be64(b, o):
    return struct.unpack('>Q', b[o:o + 8])[0]


def p32(v):
    return struct.pack('>I', v)


def p64(v):
    return struct.pack('>Q', v)


def str8(s):
    return bytes([len(s)]) + s


def round_up(v, a):
    return (v + a - 1) // a * a


# ---- reading the real streams ----------------------------------------------

class Stream:
    """A real stream, parsed: configuration bytes, the RAM records, the
    main-stream bytes after the RAM setup (mapped-ram) and the tail."""


def parse_stream(b, off=0):
    s = Stream()
    s.off = off
    p = off + 8
    s.caps = []
    s.psize = 4096
    cfg_start = p
    if b[p] == 7:
        ln = be32(b, p + 1)
        s.machine = b[p + 5:p + 5 + ln]
        p += 5 + ln
        while b[p] == 5:
            nl = b[p + 1]
            name = b[p + 2:p + 2 + nl]
            p += 2 + nl + 4
            if name == b'configuration/capabilities':
                n = be32(b, p)
                p += 4
                for _ in range(n):
                    cl = b[p]
                    s.caps.append(b[p + 1:p + 1 + cl])
                    p += 1 + cl
            elif name == b'configuration/uuid':
                p += 16
            else:
                s.psize = 1 << be32(b, p)
                p += 4
    s.config = b[cfg_start:p]
    s.mapped = b'mapped-ram' in s.caps
    s.items = []      # ('cmd', bytes) ('sec', type, id, header bytes) ('rec', ...)
    s.blocks = []     # (name, length, bitmap_offset, pages_offset)
    while True:
        t = b[p]
        if t == 8:
            ln = struct.unpack('>H', b[p + 3:p + 5])[0]
            s.items.append(('cmd', b[p:p + 5 + ln]))
            p += 5 + ln
            continue
        assert t in (1, 2, 3), (hex(p), t)
        sid = be32(b, p + 1)
        q = p + 5
        if t == 1:
            q += 1 + b[q] + 8
        s.items.append(('sec', t, sid, b[p:q]))
        p = q
        while True:
            w = be64(b, p)
            fl = w & (s.psize - 1)
            addr = w & ~(s.psize - 1)
            p += 8
            kind = fl & ~0x20
            if kind == 0x10:
                s.items.append(('eos',))
                break
            if kind == 4:
                rem = addr
                while rem:
                    nl = b[p]
                    name = b[p + 1:p + 1 + nl]
                    p += 1 + nl
                    ln = be64(b, p)
                    p += 8
                    bo = po = None
                    if s.mapped:
                        bo = be64(b, p + 12)
                        po = be64(b, p + 20)
                        p = po + ln
                    s.blocks.append((name, ln, bo, po))
                    rem -= ln
                s.items.append(('memsize',))
                if s.mapped:
                    s.after_setup = p  # the setup EOS is here
                continue
            if kind in (2, 8):
                name = None
                if not fl & 0x20:
                    nl = b[p]
                    name = b[p + 1:p + 1 + nl]
                    p += 1 + nl
                if kind == 2:
                    data = None
                    p += 1
                else:
                    data = b[p:p + s.psize]
                    p += s.psize
                s.items.append(('rec', name, addr // s.psize, data))
                continue
            if kind == 0x200:
                continue
            raise ValueError('flags %x at %x' % (fl, p))
        assert b[p] == 0x7e
        p += 5
        s.items.append(('footer', sid))
        if t == 3:
            break
    s.ram_end = p
    s.tail = b[p:]
    return s


def mini_tail(tail, page_size=None):
    """The first two device sections of a real tail and a VMDESCRIPTION
    describing exactly those: a small device state that is still
    consistent for the verifier's device walk."""
    for c in range(len(tail) - 6, 0, -1):
        if tail[c] == 0 and tail[c + 1] == 6 and be32(tail, c + 2) == len(tail) - c - 6:
            break
    desc = json.loads(tail[c + 6:])
    ndev = 2
    # find the end of the second device section: footer 7e + its id, then
    # the 0x04 of the next FULL section
    pos = 0
    for _ in range(ndev):
        sid = be32(tail, pos + 1)
        foot = b'\x7e' + p32(sid)
        pos = tail.index(foot, pos) + 5
        assert tail[pos] == 4
    desc['devices'] = desc['devices'][:ndev]
    if page_size:
        desc['page_size'] = page_size
    js = json.dumps(desc).encode()
    return tail[:pos] + b'\x00\x06' + p32(len(js)) + js


# ---- writing shrunk streams --------------------------------------------------

def rec_bytes(psize, name, page, data, last):
    cont = name == last
    word = page * psize | (8 if data is not None else 2) | (0x20 if cont else 0)
    out = p64(word)
    if not cont:
        out += str8(name)
    out += data if data is not None else b'\x00'
    return out


def shrink_plain(s, keep, tail, max_recs=None, config=None):
    """s with every block cut to keep(name, length) pages and only the
    records of those pages.  Returns the stream bytes."""
    sizes = {}
    for name, ln, _, _ in s.blocks:
        sizes[name] = min(ln // s.psize, keep(name, ln)) * s.psize
    out = bytearray(b'QEVM' + p32(3) + (config if config is not None else s.config))
    last = None
    cur = None
    nrec = 0
    for it in s.items:
        if it[0] == 'cmd':
            out += it[1]
        elif it[0] == 'sec':
            out += it[3]
        elif it[0] == 'memsize':
            total = sum(sizes[n] for n, _, _, _ in s.blocks)
            out += p64(total | 4)
            for name, _, _, _ in s.blocks:
                out += str8(name) + p64(sizes[name])
        elif it[0] == 'rec':
            _, name, page, data = it
            if name is not None:
                cur = name
            if page * s.psize >= sizes[cur]:
                continue
            if max_recs is not None and nrec >= max_recs:
                continue
            out += rec_bytes(s.psize, cur, page, data, last)
            last = cur
            nrec += 1
        elif it[0] == 'eos':
            out += p64(0x10)
        elif it[0] == 'footer':
            out += b'\x7e' + p32(it[1])
    return bytes(out) + tail


def shrink_mapped(s, raw, keep, tail, base=0, bits=None):
    """A mapped-ram stream laid out again with small blocks.  base is the
    file offset of the stream's first byte (offsets are absolute).  bits:
    a smaller target page (each page keeps the start of the real one)."""
    psize = 1 << bits if bits else s.psize
    align = psize
    out = bytearray(b'QEVM' + p32(3) + (with_page_bits(s.config, bits) if bits else s.config))
    items = iter(s.items)
    # START section header and MEM_SIZE
    it = next(items)
    while it[0] == 'cmd':
        out += it[1]
        it = next(items)
    assert it[0] == 'sec' and it[1] == 1
    out += it[3]
    sizes = [min(ln // s.psize, keep(n, ln)) * psize for n, ln, _, _ in s.blocks]
    out += p64(sum(sizes) | 4)
    for (name, ln, bo, po), size in zip(s.blocks, sizes):
        npages = size // psize
        bm_size = (npages + 63) // 64 * 8
        out += str8(name) + p64(size)
        hdr_at = base + len(out)
        bm_at = hdr_at + 28
        pages_at = round_up(bm_at + bm_size, align)
        out += p32(1) + p64(psize) + p64(bm_at) + p64(pages_at)
        bits = bytearray(raw[bo:bo + bm_size])
        # clear the bits of pages cut off
        for i in range(npages, bm_size * 8):
            bits[i // 8] &= ~(1 << (i % 8)) & 0xff
        out += bits
        out += bytes(pages_at - (base + len(out)))
        for i in range(npages):
            if bits[i // 8] >> (i % 8) & 1:
                out += raw[po + i * s.psize:po + i * s.psize + psize]
            else:
                out += bytes(psize)
    # the rest of the main stream: setup EOS, footer, PART/END sections...
    # copied as they are, up to the RAM end, then the tail
    out += raw[s.after_setup:s.ram_end]
    return bytes(out) + tail


def synth_stream(caps=(), blocks=(), records=(), pre=b'', tail=b'\x00', psize=4096,
                 block_extra=lambda name: b''):
    """A small plain stream built from parts: caps (names), blocks (name,
    pages), records (raw record bytes), pre (commands before RAM)."""
    out = bytearray(b'QEVM' + p32(3) + b'\x07' + p32(14) + b'pc-i440fx-10.0')
    if caps:
        out += b'\x05' + str8(b'configuration/capabilities') + p32(1) + p32(len(caps))
        for c in caps:
            out += str8(c)
    out += pre
    out += b'\x01' + p32(2) + str8(b'ram') + p32(0) + p32(4)
    out += p64(sum(n * psize for _, n in blocks) | 4)
    for name, n in blocks:
        out += str8(name) + p64(n * psize) + block_extra(name)
    for r in records:
        out += r
    out += p64(0x10) + b'\x7e' + p32(2)
    out += b'\x03' + p32(2) + p64(0x10) + b'\x7e' + p32(2)
    return bytes(out) + tail


def with_page_bits(config, bits):
    """Insert a target-page-bits subsection into a configuration section."""
    ln = be32(config, 1)
    head = config[:5 + ln]
    return head + b'\x05' + str8(b'configuration/target-page-bits') + p32(1) + p32(bits) + \
        config[5 + ln:]


def repage(s, bits):
    """Copy of a parsed plain stream with a smaller target page: pages are
    cut to the new size (the records keep their page numbers)."""
    t = Stream()
    t.__dict__.update(s.__dict__)
    t.psize = 1 << bits
    t.config = with_page_bits(s.config, bits)
    t.items = [('rec', it[1], it[2], None if it[3] is None else it[3][:t.psize])
               if it[0] == 'rec' else it for it in s.items]
    t.blocks = [(n, ln // s.psize * t.psize, bo, po) for n, ln, bo, po in s.blocks]
    return t


# ---- libvirt containers --------------------------------------------------------

def libvirt_header(raw_img, payload, pad=64, fmt=None, magic=None, version=None,
                   foreign=False, cookie=True):
    """A libvirt image around payload, keeping the real XML and cookie of
    raw_img but with only pad bytes of padding."""
    v, dl, run, f, co = struct.unpack('<5I', raw_img[16:36])
    meta = raw_img[92:92 + dl]
    xml = meta[:meta.index(b'\0') + 1]
    ck = meta[co:meta.index(b'\0', co) + 1] if co and cookie else b''
    region = xml + ck + bytes(pad)
    fields = (version if version is not None else v, len(region), run,
              f if fmt is None else fmt, len(xml) if ck else 0)
    hdr = (magic or raw_img[:16]) + struct.pack('>5I' if foreign else '<5I', *fields) + bytes(56)
    return hdr + region + payload


# ---- compression with the stock tools --------------------------------------------

def tool(args, data):
    out = subprocess.run(args, input=data, stdout=subprocess.PIPE, check=True).stdout
    return lzop_no_time(out) if args[0] == 'lzop' else out


def lzop_no_time(b):
    """lzop stores the time of day for its input from a pipe: set the
    member's mtime to 0 and recompute the header checksum, so that the
    seeds are reproducible."""
    b = bytearray(b)
    assert b[:9] == b'\x89LZO\x00\r\n\x1a\n' and be16(b, 9) >= 0x0940
    flags = be32(b, 17)
    p = 21 + (4 if flags & 0x800 else 0) + 4          # filter, mode
    b[p:p + 8] = bytes(8)                             # mtime low, high
    p += 8
    p += 1 + b[p]                                     # name
    body = bytes(b[9:p])
    ck = zlib.crc32(body) if flags & 0x1000 else zlib.adler32(body)
    b[p:p + 4] = p32(ck & 0xffffffff)
    return bytes(b)


def compress(fmt, data, level=None):
    if fmt == 'gzip':
        return tool(['gzip', '-c', '-n', '-%d' % (level or 6)], data)
    if fmt == 'bzip2':
        return tool(['bzip2', '-c', '-%d' % (level or 9)], data)
    if fmt == 'xz':
        return tool(['xz', '-c', '-%d' % (3 if level is None else level)], data)
    if fmt == 'lzop':
        return tool(['lzop', '-c', '-%d' % (level or 3)], data)
    if fmt == 'zstd':
        return tool(['zstd', '-q', '-c', '-%d' % (level or 3)], data)
    raise ValueError(fmt)


# ---- output ------------------------------------------------------------------------

class Out:
    def __init__(self, root):
        self.root = root
        self.total = 0

    def put(self, target, name, data):
        d = os.path.join(self.root, target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), 'wb') as f:
            f.write(data)
        self.total += len(data)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    fx = sys.argv[1]
    root = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, 'corpus')
    targets = ['fuzz_container', 'fuzz_gzip', 'fuzz_bzip2', 'fuzz_xz', 'fuzz_lzop', 'fuzz_zstd',
               'fuzz_stream', 'fuzz_image', 'fuzz_roundtrip', 'fuzz_xml', 'fuzz_json',
               'fuzz_devices', 'fuzz_cpu']
    for t in targets:
        shutil.rmtree(os.path.join(root, t), ignore_errors=True)
    out = Out(root)

    def rd(rel):
        with open(os.path.join(fx, rel), 'rb') as f:
            return f.read()

    plain_raw = rd('qemu/plain.mig')
    plain = parse_stream(plain_raw)
    real_tail = plain.tail
    tail = mini_tail(real_tail)
    tail1k = mini_tail(real_tail, 1024)
    live = parse_stream(rd('qemu/plain-live.mig'))
    postcopy = parse_stream(rd('qemu/plain-postcopy.mig'))
    uuid = parse_stream(rd('qemu/plain-uuid.mig'))
    multi = parse_stream(rd('qemu/plain-multiblock.mig'))
    q35 = parse_stream(rd('qemu/plain-q35.mig'))
    offs_raw = rd('qemu/plain-offset.mig')
    offs = parse_stream(offs_raw, 0x12345)

    def small(name, ln):
        return 12 if name == b'pc.ram' else 2

    def tiny(name, ln):
        return 4 if name == b'pc.ram' else 1

    # --- plain streams ---
    streams = {
        'plain': shrink_plain(plain, small, tail),
        'plain-tiny': shrink_plain(plain, tiny, b'\x00'),
        'plain-live': shrink_plain(live, small, tail),
        'plain-postcopy': shrink_plain(postcopy, tiny, tail),
        'plain-uuid': shrink_plain(uuid, tiny, tail),
        'plain-multiblock': shrink_plain(multi, tiny, tail),
        'plain-q35': shrink_plain(q35, tiny, mini_tail(q35.tail)),
        'plain-1k': shrink_plain(repage(plain, 10), small, tail1k),
        'plain-live-1k': shrink_plain(repage(live, 10), small, tail1k),
    }
    # --- mapped-ram streams (offsets rewritten to fit the seed) ---
    mapped_raw = rd('qemu/mapped.mig')
    mapped = parse_stream(mapped_raw)
    mlive_raw = rd('qemu/mapped-live.mig')
    mlive = parse_stream(mlive_raw)
    mmulti_raw = rd('qemu/mapped-multiblock.mig')
    mmulti = parse_stream(mmulti_raw)

    def mkeep(name, ln):
        return 8 if name == b'pc.ram' else 1

    streams['mapped'] = shrink_mapped(mapped, mapped_raw, mkeep, tail)
    streams['mapped-live'] = shrink_mapped(mlive, mlive_raw, mkeep, tail)
    streams['mapped-multiblock'] = shrink_mapped(mmulti, mmulti_raw, lambda n, l: 1, b'\x00')
    streams['mapped-1k'] = shrink_mapped(mapped, mapped_raw, mkeep, tail1k, bits=10)
    streams['mapped-live-1k'] = shrink_mapped(mlive, mlive_raw, lambda n, l: 2, b'\x00', bits=10)
    # features the fixtures do not have: COMPRESS_PAGE records (the old
    # compress capability), x-ignore-shared (mr_addr after each block),
    # postcopy with a huge-page block (its page size after its length)
    pg = next(it[3] for it in plain.items if it[0] == 'rec' and it[3] is not None and any(it[3]))
    zpg = zlib.compress(pg)
    streams['compress-page'] = synth_stream(
        blocks=[(b'pc.ram', 4)],
        records=[p64(1 * 4096 | 0x100) + str8(b'pc.ram') + p32(len(zpg)) + zpg,
                 p64(2 * 4096 | 0x120) + p32(len(zpg)) + zpg,
                 p64(3 * 4096 | 0x22) + b'\x00'], tail=tail)
    streams['ignore-shared'] = synth_stream(
        caps=[b'x-ignore-shared'], blocks=[(b'pc.ram', 4), (b'pc.bios', 1)],
        block_extra=lambda name: p64(0x100000000 if name == b'pc.ram' else 0xfffc0000),
        records=[p64(0 * 4096 | 8) + str8(b'pc.ram') + pg, p64(0 | 8) + str8(b'pc.bios') + pg],
        tail=tail)
    advise = b'\x08' + struct.pack('>HH', 3, 16) + p64(4096) + p64(4096)
    streams['postcopy-hugepage'] = synth_stream(
        pre=b'\x08' + struct.pack('>HH', 1, 0) + advise, blocks=[(b'pc.ram', 512), (b'm1', 2)],
        block_extra=lambda name: p64(2 << 20) if name == b'pc.ram' else b'',
        records=[p64(511 * 4096 | 8) + str8(b'pc.ram') + pg, p64(1 * 4096 | 8) + str8(b'm1') + pg],
        tail=tail)
    for name, data in streams.items():
        out.put('fuzz_stream', name + '.mig', data)
    # real page contents (the blob's random and text pages) for recipes
    data_pages = [it[3] for it in plain.items
                  if it[0] == 'rec' and it[3] is not None and any(it[3][:64])]

    # bare stream with the real device state (for the image/verify target)
    full = shrink_plain(plain, tiny, real_tail)
    mapped_full = shrink_mapped(mapped, mapped_raw, lambda n, l: 1, real_tail)

    # --- fuzz_image: containers around shrunk payloads ---
    raw_img = rd('libvirt/raw.sav')
    sparse_img = rd('libvirt/sparse.sav')
    lv_plain = parse_stream(raw_img, 92 + struct.unpack('<I', raw_img[20:24])[0])
    lv_stream = shrink_plain(lv_plain, small, mini_tail(lv_plain.tail))
    lv_sparse_off = 92 + struct.unpack('<I', sparse_img[20:24])[0]
    lv_sparse = parse_stream(sparse_img, lv_sparse_off)
    img = {}
    img['raw.sav'] = libvirt_header(raw_img, lv_stream)
    img['raw-paused-v1.sav'] = libvirt_header(raw_img, lv_stream, version=1)
    img['raw-partial.sav'] = libvirt_header(raw_img, lv_stream, magic=b'LibvirtQemudPart')
    img['raw-foreign.sav'] = libvirt_header(raw_img, lv_stream, foreign=True)
    img['raw-nocookie.sav'] = libvirt_header(raw_img, lv_stream, cookie=False)
    for i, fmt in enumerate(['gzip', 'bzip2', 'xz', 'lzop', 'zstd']):
        img[fmt + '.sav'] = libvirt_header(raw_img, compress(fmt, lv_stream), fmt=i + 1)
    # sparse: the payload offset is the container's, and the offsets in the
    # block headers are absolute
    hdr = libvirt_header(sparse_img, b'')
    img['sparse.sav'] = hdr + shrink_mapped(lv_sparse, sparse_img, mkeep,
                                            mini_tail(lv_sparse.tail), base=len(hdr))
    img['plain.mig'] = streams['plain']
    img['plain-live.mig'] = streams['plain-live']
    img['mapped.mig'] = streams['mapped']
    img['plain-fulltail.mig'] = full
    img['mapped-fulltail.mig'] = mapped_full
    # larger than the fuzz build's 72 KiB parse buffer: records cut by refills
    out.put('fuzz_stream', 'plain-fulltail.mig', full)
    out.put('fuzz_stream', 'mapped-fulltail.mig', mapped_full)
    img['plain.mig.zst'] = compress('zstd', streams['plain-tiny'])
    # a bare stream behind a prefix (the harness opens it at offset 0: an
    # error, with the offset found and suggested)
    img['plain-offset.mig'] = offs_raw[:0x2345] + shrink_plain(offs, tiny, b'\x00')
    # the conversion fuzz_image.c runs, chosen by a trailer: every output
    # kind once, compact, allow_incomplete, preallocate, a replacement XML
    # and cookie, and trailing holes of 1 MiB and 4 MiB (fz_file_put_hole;
    # not larger: every pass over the image reads them)
    def trailer(out, flags=0, exp=0, mant=0):
        return b'FzP1' + bytes([out, flags, exp]) + mant.to_bytes(3, 'big')
    conv = {
        'conv-raw.sav': img['raw.sav'] + trailer(0),
        'conv-gzip-xml.sav': img['bzip2.sav'] + trailer(1, 0x20),
        'conv-bzip2.sav': img['zstd.sav'] + trailer(2),
        'conv-xz-running.sav': img['gzip.sav'] + trailer(3, 0x18),
        'conv-zstd-cookie.sav': img['raw-nocookie.sav'] + trailer(5, 0x80),
        'conv-lzop.sav': img['xz.sav'] + trailer(4),
        'conv-zstd.sav': img['lzop.sav'] + trailer(5),
        'conv-sparse-prealloc.mig': img['plain-live.mig'] + trailer(6, 0x04),
        'conv-qemu.sav': img['sparse.sav'] + trailer(7),
        'conv-qemu-compact.mig': img['plain-live.mig'] + trailer(7, 0x01),
        'conv-qemu-mapped-prealloc.sav': img['raw.sav'] + trailer(8, 0x04),
        'conv-ram.mig': img['mapped.mig'] + trailer(9),
        'conv-incomplete.sav': img['raw-partial.sav'] + trailer(0, 0x02),
        'conv-hole-1m.sav': img['sparse.sav'] + trailer(7, 0x40, 0, 0xfffff),
        'conv-hole-4m.sav': img['raw.sav'] + trailer(1, 0x40, 2, 0xfffff),
    }
    img.update(conv)
    for name, data in img.items():
        out.put('fuzz_image', name, data)

    # --- fuzz_container: headers, metadata, the first payload bytes ---
    ctr = {}
    for fmt in ['raw', 'sparse']:
        b = rd('libvirt/%s.sav' % fmt)
        dl = struct.unpack('<I', b[20:24])[0]
        ctr[fmt + '-real-head.sav'] = b[:92 + dl + 64]
    ctr['raw-short.sav'] = libvirt_header(raw_img, lv_stream[:256])
    ctr['raw-v1.sav'] = libvirt_header(raw_img, lv_stream[:64], version=1)
    ctr['raw-foreign.sav'] = libvirt_header(raw_img, lv_stream[:64], foreign=True)
    ctr['partial.sav'] = libvirt_header(raw_img, lv_stream[:64], magic=b'LibvirtQemudPart')
    ctr['nocookie.sav'] = libvirt_header(raw_img, lv_stream[:64], cookie=False)
    ctr['header-only.sav'] = raw_img[:92]
    ctr['bare.mig'] = streams['plain-tiny'][:512]
    ctr['bare-zstd.mig'] = compress('zstd', streams['plain-tiny'])[:64]
    for name, data in ctr.items():
        out.put('fuzz_container', name, data)

    # --- codecs: shrunk streams through the stock tools, real payload heads ---
    payload_plain = streams['plain-tiny']
    for i, fmt in enumerate(['gzip', 'bzip2', 'xz', 'lzop', 'zstd']):
        t = 'fuzz_' + fmt
        levels = {'gzip': [1, 6, 9], 'bzip2': [1, 9], 'xz': [0, 3], 'lzop': [1, 3, 9],
                  'zstd': [1, 3, 19]}[fmt]
        for lv in levels:
            out.put(t, 'plain-l%d.%s' % (lv, fmt), compress(fmt, payload_plain, lv))
        one = compress(fmt, payload_plain)
        out.put(t, 'two-members.%s' % fmt, one + compress(fmt, b'QEVM\0\0\0\3'))
        out.put(t, 'trailing-zeros.%s' % fmt, one + bytes(8))
        out.put(t, 'trailing-garbage.%s' % fmt, one + b'garbage!')
        out.put(t, 'truncated.%s' % fmt, one[:len(one) * 2 // 3])
        out.put(t, 'empty-input.%s' % fmt, compress(fmt, b''))
        out.put(t, 'text.%s' % fmt, compress(fmt, rd('libvirt/dumpxml.xml')))
        b = rd('libvirt/%s.sav' % fmt)
        dl = struct.unpack('<I', b[20:24])[0]
        out.put(t, 'real-head.%s' % fmt, b[92 + dl:92 + dl + 4096])
    # lzop specifics: CRC-32 checksums, a file name, stored blocks
    out.put('fuzz_lzop', 'crc32.lzop', tool(['lzop', '-c', '--crc32'], payload_plain))
    out.put('fuzz_lzop', 'random-stored.lzop',
            tool(['lzop', '-c'], bytes((i * 7919 + (i >> 3) * 104729) & 0xff for i in range(6000))))
    out.put('fuzz_xz', 'crc32.xz', tool(['xz', '-c', '-0', '--check=crc32'], payload_plain))
    out.put('fuzz_xz', 'sha256.xz', tool(['xz', '-c', '-0', '--check=sha256'], payload_plain))
    out.put('fuzz_xz', 'lzma-alone.lzma', tool(['xz', '-c', '-0', '--format=lzma'], payload_plain))
    out.put('fuzz_zstd', 'nocheck.zst', tool(['zstd', '-q', '-c', '--no-check'], payload_plain))

    # --- roundtrip: any bytes are a valid description; give it some variety ---
    rt = [
        bytes([0, 0x01, 0, 3, 1, 0, 0, 0x41, 2, 0, 1, 0, 3, 0, 0, 0x5a]),
        bytes([1, 0x73, 0, 15, 1, 7, 2, 3, 3, 1, 0, 0, 0x11, 1, 1, 2, 0xff, 3, 2, 0, 1, 1, 0, 0,
               0, 2, 1, 1, 0x77, 1, 2, 4, 0, 0, 1, 3, 9, 0x10, 3, 0, 1, 0, 0, 0x20]),
        bytes(range(256)),
        bytes([2, 0x22, 1, 5, 2, 1]) + bytes([(i * 37 + 11) & 0xff for i in range(200)]),
        bytes([3, 0x7f]) + data_pages[len(data_pages) // 2][:300],
    ]
    for i, data in enumerate(rt):
        out.put('fuzz_roundtrip', 'seed-%d' % i, data)

    # --- XML (the domain XML secret stripper) and JSON (VMDESCRIPTION) ---
    out.put('fuzz_xml', 'dumpxml.xml', rd('libvirt/dumpxml.xml'))
    out.put('fuzz_xml', 'dumpxml-security-info.xml', rd('libvirt/dumpxml-security-info.xml'))
    meta = raw_img[92:92 + struct.unpack('<I', raw_img[20:24])[0]]
    out.put('fuzz_xml', 'saved.xml', meta[:meta.index(b'\0')])
    co = struct.unpack('<I', raw_img[32:36])[0]
    out.put('fuzz_xml', 'cookie.xml', meta[co:meta.index(b'\0', co)])
    out.put('fuzz_xml', 'misc.xml', b'<?xml version="1.0"?>\n<!-- c --><domain type="kvm">'
            b'<![CDATA[x<y]]><graphics type="vnc" passwd="a&amp;b"/><disk><source>'
            b'<cookies><cookie name="x">v</cookie></cookies></source></disk>'
            b'<?pi x?><name>&#x41;&lt;</name></domain>\n')
    for name, s in [('plain', plain), ('q35', q35)]:
        t = s.tail
        for c in range(len(t) - 6, 0, -1):
            if t[c] == 0 and t[c + 1] == 6 and be32(t, c + 2) == len(t) - c - 6:
                break
        out.put('fuzz_json', name + '.json', t[c + 6:])
    mt = mini_tail(real_tail)
    out.put('fuzz_json', 'mini.json', mt[mt.index(b'\x00\x06') + 6:])

    # --- device walk: be32 JSON length, JSON, device state with its EOF ---
    def devices_seed(tail):
        for c in range(len(tail) - 6, 0, -1):
            if tail[c] == 0 and tail[c + 1] == 6 and be32(tail, c + 2) == len(tail) - c - 6:
                break
        js = tail[c + 6:]
        return p32(len(js)) + js + tail[:c + 1]
    out.put('fuzz_devices', 'plain.dev', devices_seed(real_tail))
    out.put('fuzz_devices', 'q35.dev', devices_seed(q35.tail))
    out.put('fuzz_devices', 'mini.dev', devices_seed(mt))
    # the vCPU decoder reads the same input
    out.put('fuzz_cpu', 'plain.dev', devices_seed(real_tail))
    out.put('fuzz_cpu', 'q35.dev', devices_seed(q35.tail))
    out.put('fuzz_json', 'misc.json',
            b'[1, -0.5e+3, "\\u00e9\\ud83d\\ude00", true, false, null, {"a": {}}, []]')
    print('seeds written to %s: %d bytes' % (root, out.total))


if __name__ == '__main__':
    main()
