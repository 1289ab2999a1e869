# The record log's segments born and retired (gateway/store/recordlog.py, whose format and
# state this works on): a new segment, every segment_bytes, after a failed write and at the
# first write of a start that found a torn tail, with the oldest ones dropped first to stay
# within the budget; the oldest dropped to make room on a full flash. Loaded for each of
# those and forgotten after (gateway/ondemand.py): they come rarely.
import struct
from binascii import crc32

from gateway.store.recordlog import SEG_HDR, TMP_NAME, segment_name
from hal.compat import const

# The segment header of gateway/store/recordlog.py.
_SEG_FMT = const("<4sBBHIId")
_SEG_MAGIC = const(b"GWRL")
_SEG_VERSION = const(1)
_NO_PREV = const(0xFFFFFFFF)


def _seg_header(first, t, prev_len):
    h = struct.pack(_SEG_FMT, _SEG_MAGIC, _SEG_VERSION, 0, 0, first, prev_len, t)
    return h + struct.pack("<I", crc32(h))


def new_segment(log, seq, t, fr):
    """A new newest segment whose first frame is fr (seq, at t): born whole in TMP_NAME,
    synced, renamed into place."""
    log._close_tail()
    _retain(log)
    fl = log._flash
    prev_len = log._tail_len if log._segs else _NO_PREV
    hdr = _seg_header(seq, t, prev_len)
    try:
        f = fl.open(TMP_NAME, "wb")
        try:
            f.write(hdr + fr)
            fl.sync(f)
        finally:
            f.close()
        fl.rename(TMP_NAME, segment_name(seq))
    except OSError:
        try:
            fl.remove(TMP_NAME)  # give back the space a half-written segment holds
        except OSError:
            pass
        raise
    if log._segs:
        # The old newest segment keeps only its valid bytes in the count.
        last = log._segs[-1]
        log._used -= log._sizes[last] - log._tail_len
        log._sizes[last] = log._tail_len
    n = SEG_HDR + len(fr)
    log._segs.append(seq)
    log._sizes[seq] = n
    log._meta[seq] = (None if prev_len == _NO_PREV else prev_len, t)
    log._used += n
    log._tail_len = n
    log._roll = False


def _retain(log):
    """Make room for one more segment within the budget; never the newest one."""
    while log._used + log.segment_bytes > log.budget_bytes and len(log._segs) > 1:
        drop_oldest(log)


def drop_oldest(log):
    segs = log._segs
    first = segs[0]
    last = segs[1] - 1
    log._flash.remove(segment_name(first))
    if last >= log._acked:
        lo = first if first > log._acked else log._acked
        log._raise(
            "retention_overrun",
            "seq %d..%d dropped before the center acknowledged them" % (lo, last),
        )
    segs.pop(0)
    log._used -= log._sizes.pop(first)
    log._meta.pop(first, None)
    log.dropped_segments += 1
    if log._cursor is not None and log._cursor[1] == first:
        log._cursor = None
