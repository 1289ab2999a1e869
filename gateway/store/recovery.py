# The record log's start-up half (gateway/store/recordlog.py, whose format and helpers it
# uses): find the segments, recover the newest one after any stop, clean or not. Loaded
# by RecordLog.open() once per start and forgotten after (gateway/ondemand.py): where
# bytecode lives in RAM this code then costs heap only while it runs. It fills the log's
# own state, as one of its methods would.
from gateway.store.recordlog import (
    SEG_HDR,
    _TMP,
    _between,
    _frames,
    _name,
    _parse_header,
    _seq_of,
)
from hal.compat import const

# The frame format of gateway/store/recordlog.py: 0xA5 | payload length u16 | crc32 u32 | payload
_MAGIC = const(0xA5)
_FRAME_HDR = const(7)


def _seg_first(name):
    """The first seq of a segment file name, or 0 if it is not one."""
    if len(name) == 15 and name[0] == "r" and name.endswith(".seg") and name[1:11].isdigit():
        first = int(name[1:11])
        return first if first < 0x80000000 else 0  # seqs are below 2^31 (the spec)
    return 0


def recover(log):
    """Take stock of a freshly reset log's flash; returns the report RecordLog.open()
    keeps."""
    fl = log._flash
    names = fl.listdir()
    if _TMP in names:
        try:
            fl.remove(_TMP)  # a segment that was never born
        except OSError:
            pass  # harmless: the next new segment overwrites it
    segs = []
    for n in names:
        first = _seg_first(n)
        if first:
            segs.append(first)
    segs.sort()
    for first in segs:
        size = max(0, fl.size(_name(first)))
        log._sizes[first] = size
        log._used += size
    log._segs = segs
    torn = 0
    corrupt0 = 0
    tail_records = 0
    if segs:
        tail_records, torn = _recover_tail(log)
        corrupt0 = log.corrupt_found
    log.durable = log._next - 1
    return {
        "segments": len(segs),
        "head": log.head,
        "oldest": log.oldest,
        "records": log.head - log.oldest + 1,
        "tail_records": tail_records,
        "torn_bytes": torn,
        "corrupt_skipped": corrupt0,
    }


def _recover_tail(log):
    first = log._segs[-1]
    size = log._sizes[first]
    f = log._flash.open(_name(first), "rb")
    try:
        hdr = _parse_header(f.read(SEG_HDR))
        bad_header = hdr is None or hdr[0] != first
        if bad_header:
            log._corrupt(first, 0, SEG_HDR, "segment header")
        else:
            log._meta[first] = (hdr[1], hdr[2])
        last = first - 1
        good_end = min(size, SEG_HDR)
        count = 0
        bad = []
        nb = 0
        for off, payload in _frames(f, SEG_HDR, size, bad):
            seq = _seq_of(payload)
            while nb < len(bad):
                log._corrupt(first, bad[nb][0], bad[nb][1], _between(last, seq))
                nb += 1
            last = seq
            good_end = off + _FRAME_HDR + len(payload)
            count += 1
        # Bytes after the last intact frame: a write the power cut short, to be cut off,
        # unless they are a whole frame of the next seq that was stored and then damaged:
        # then that seq is spent and never given to another record.
        if nb < len(bad) and _complete_frame_of(f, bad[nb][0], size, last + 1):
            last += 1
            log._corrupt(first, bad[nb][0], bad[nb][1], "seq %d" % last)
    finally:
        f.close()
    log._tail_len = good_end
    log._next = last + 1
    log._roll = bad_header or size > good_end
    return count, size - good_end


def _complete_frame_of(f, off, size, seq):
    f.seek(off)
    h = f.read(_FRAME_HDR + 4)
    if len(h) < _FRAME_HDR + 4 or h[0] != _MAGIC:
        return False
    n = h[1] | h[2] << 8
    return off + _FRAME_HDR + n <= size and _seq_of(h[_FRAME_HDR:]) == seq
