# The record log's start-up half (gateway/store/recordlog.py, whose format and helpers it
# uses): find the segments, recover the newest one after any stop, clean or not. Loaded
# by RecordLog.open() once per start and forgotten after (gateway/ondemand.py): where
# bytecode lives in RAM this code then costs heap only while it runs. It only reads the
# flash (and removes a segment that was never born); open() takes over what it found.
from gateway.store.recordlog import (
    SEG_HDR,
    TMP_NAME,
    between,
    frames,
    parse_header,
    segment_name,
    seq_of,
)
from hal.compat import const

# The frame format of gateway/store/recordlog.py: 0xA5 | payload length u16 | crc32 u32 | payload
_MAGIC = const(0xA5)
_FRAME_HDR = const(7)
# The newest segment is read in pieces this big (frames() holds up to two at once): a
# start-up heap cut into pieces may have no larger block.
_READ_CHUNK = const(1024)


def _seg_first(name):
    """The first seq of a segment file name, or 0 if it is not one."""
    if len(name) == 15 and name[0] == "r" and name.endswith(".seg") and name[1:11].isdigit():
        first = int(name[1:11])
        return first if first < 0x80000000 else 0  # seqs are below 2^31 (the spec)
    return 0


def recover(flash):
    """Take stock of the log's flash. Returns what RecordLog.open() takes over:
    segs: first seq of each segment, ascending; sizes: first seq -> bytes on flash;
    used: their sum; meta: first seq -> (prev_len, first_t) of the newest segment's
    intact header; tail_len: valid bytes of the newest segment; next: the next seq;
    roll: whether the next write starts a new segment; corrupt: [(first seq, offset,
    length, what)] of each damaged stretch; tail_records, torn_bytes: for the report."""
    names = flash.listdir()
    if TMP_NAME in names:
        try:
            flash.remove(TMP_NAME)  # a segment that was never born
        except OSError:
            pass  # harmless: the next new segment overwrites it
    segs = []
    for n in names:
        first = _seg_first(n)
        if first:
            segs.append(first)
    segs.sort()
    sizes = {}
    used = 0
    for first in segs:
        size = max(0, flash.size(segment_name(first)))
        sizes[first] = size
        used += size
    found = {
        "segs": segs,
        "sizes": sizes,
        "used": used,
        "meta": {},
        "tail_len": 0,
        "next": 1,
        "roll": True,
        "corrupt": [],
        "tail_records": 0,
        "torn_bytes": 0,
    }
    if segs:
        _recover_tail(flash, segs[-1], sizes[segs[-1]], found)
    return found


def _recover_tail(flash, first, size, found):
    corrupt = found["corrupt"]
    f = flash.open(segment_name(first), "rb")
    try:
        hdr = parse_header(f.read(SEG_HDR))
        bad_header = hdr is None or hdr[0] != first
        if bad_header:
            corrupt.append((first, 0, SEG_HDR, "segment header"))
        else:
            found["meta"][first] = (hdr[1], hdr[2])
        last = first - 1
        good_end = min(size, SEG_HDR)
        count = 0
        bad = []
        nb = 0
        for off, payload in frames(f, SEG_HDR, size, bad, _READ_CHUNK):
            seq = seq_of(payload)
            while nb < len(bad):
                corrupt.append((first, bad[nb][0], bad[nb][1], between(last, seq)))
                nb += 1
            last = seq
            good_end = off + _FRAME_HDR + len(payload)
            count += 1
        # Bytes after the last intact frame: a write the power cut short, to be cut off,
        # unless they are a whole frame of the next seq that was stored and then damaged:
        # then that seq is spent and never given to another record.
        if nb < len(bad) and _complete_frame_of(f, bad[nb][0], size, last + 1):
            last += 1
            corrupt.append((first, bad[nb][0], bad[nb][1], "seq %d" % last))
    finally:
        f.close()
    found["tail_len"] = good_end
    found["next"] = last + 1
    found["roll"] = bad_header or size > good_end
    found["tail_records"] = count
    found["torn_bytes"] = size - good_end


def _complete_frame_of(f, off, size, seq):
    f.seek(off)
    h = f.read(_FRAME_HDR + 4)
    if len(h) < _FRAME_HDR + 4 or h[0] != _MAGIC:
        return False
    n = h[1] | h[2] << 8
    return off + _FRAME_HDR + n <= size and seq_of(h[_FRAME_HDR:]) == seq
