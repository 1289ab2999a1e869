# The record log: a year of records in append-only segment files on flash, safe
# against power loss at any instant. docs/storage.md has the format and the arguments.
#
# Segment file r<first seq, 10 digits>.seg:
#   header (28 bytes): b"GWRL", version u8, 0 u8, 0 u16, first_seq u32, prev_len u32,
#                      first_t f64, crc32 of the 24 bytes before it
#   frames: 0xA5 | payload length u16 | crc32 of (length, payload) u32 | payload
# A segment is born whole: header and first frame go to r.tmp, are synced, and the file
# is renamed into place. prev_len is the valid length of the segment before it, so a torn
# or failed write at the end of that one is cut off logically (MicroPython files cannot
# truncate) without copying anything. Only the newest segment is scanned at start-up
# (gateway/store/recovery.py).
import struct
from binascii import crc32

from gateway import ondemand
from gateway.store import codec
from gateway.store.codec import RecordError  # noqa: F401  (callers catch it from here)
from hal.compat import const

_MAGIC = const(0xA5)
_MAGIC_B = const(b"\xa5")
_FRAME_HDR = const(7)
_MIN_PAYLOAD = const(7)  # seq, type, tag and one byte of t
_MAX_PAYLOAD = const(8192)
_SEG_MAGIC = const(b"GWRL")
_SEG_VERSION = const(1)
_SEG_FMT = const("<4sBBHIId")
SEG_HDR = const(28)
_NO_PREV = const(0xFFFFFFFF)
_CHUNK = const(4096)
_READ_PER_RECORD = const(256)  # bytes read per record asked for (a prod record is ~40)
TMP_NAME = "r.tmp"  # a segment being born; not a const(): gateway/store/recovery.py imports it
ENOSPC = const(28)  # not in MicroPython's errno module
_SEEN_MAX = const(64)
_ROLLOVER = const("gateway.store.rollover")


def segment_name(first):
    return "r%010d.seg" % first


def parse_header(h):
    """(first_seq, prev_len or None, first_t) of a header, or None if it is not intact."""
    if len(h) < SEG_HDR or struct.unpack_from("<I", h, 24)[0] != crc32(h[:24]):
        return None
    magic, version, _, _, first, prev_len, t = struct.unpack_from(_SEG_FMT, h, 0)
    if magic != _SEG_MAGIC or version != _SEG_VERSION:
        return None
    return first, (None if prev_len == _NO_PREV else prev_len), t


def frame(payload):
    n = len(payload)
    ln = bytes((n & 0xFF, n >> 8))
    return bytes((_MAGIC,)) + ln + struct.pack("<I", crc32(payload, crc32(ln))) + payload


def frames(f, start, end, bad, chunk=_CHUNK):
    """Yield (offset, payload) for every intact frame in bytes [start, end) of file f,
    reading `chunk` bytes at a time (more for a larger frame). Every stretch that is not
    an intact frame is appended to `bad` as (offset, length), and scanning resumes at the
    next frame that checks out."""
    f.seek(start)
    buf = b""
    base = pos = read_to = start
    bad_at = -1
    while pos < end:
        i = pos - base
        have = len(buf) - i
        need = _FRAME_HDR
        if have >= 3 and buf[i] == _MAGIC:
            n = buf[i + 1] | buf[i + 2] << 8
            if _MIN_PAYLOAD <= n <= _MAX_PAYLOAD:
                need = _FRAME_HDR + n
        if have < need and read_to < end:
            got = f.read(min(max(chunk, need), end - read_to))
            if not got:
                end = read_to  # the file is shorter than we were told
                continue
            buf = buf[i:] + got
            base = pos
            read_to += len(got)
            continue
        if need > _FRAME_HDR and have >= need:
            mv = memoryview(buf)
            payload = mv[i + _FRAME_HDR : i + need]
            if struct.unpack_from("<I", buf, i + 3)[0] == crc32(payload, crc32(mv[i + 1 : i + 3])):
                if bad_at >= 0:
                    bad.append((bad_at, pos - bad_at))
                    bad_at = -1
                yield pos, payload
                pos += need
                continue
        if bad_at < 0:
            bad_at = pos
        j = buf.find(_MAGIC_B, i + 1)
        pos = base + j if j >= 0 else base + len(buf)
    if bad_at >= 0:
        bad.append((bad_at, end - bad_at))


def between(prev, nxt):
    """Which seqs a damaged stretch may have held, as far as its neighbours tell."""
    if prev is None and nxt is None:
        return "records"
    if prev is None:
        return "records before seq %d" % nxt
    if nxt is None:
        return "records after seq %d" % prev
    if nxt == prev + 1:
        return "bytes between seq %d and %d" % (prev, nxt)
    return "seq %d..%d" % (prev + 1, nxt - 1)


def seq_of(payload):
    return struct.unpack_from("<I", payload, 0)[0]


class RecordLog:
    """Append-only, power-loss-safe record store. open() before use.

    alarm(code, active, detail) is told about storage_full, storage_write_error,
    storage_corrupt, retention_overrun and storage_records_lost."""

    def __init__(
        self, flash, budget_bytes=64 << 20, segment_bytes=256 << 10, ram_buffer=256, alarm=None
    ):
        if segment_bytes < 512 or budget_bytes < 3 * segment_bytes:
            raise ValueError("need segment_bytes >= 512 and budget_bytes >= 3 segments")
        if ram_buffer < 1:
            raise ValueError("ram_buffer must be at least 1")
        self._flash = flash
        self.budget_bytes = budget_bytes
        self.segment_bytes = segment_bytes
        self.ram_buffer = ram_buffer
        self._alarm = alarm
        self._reset()

    def _reset(self):
        self._segs = []  # first seq of each segment, ascending
        self._sizes = {}  # first seq -> bytes on flash
        self._meta = {}  # first seq -> (prev_len or None, first_t or None), read lazily
        self._used = 0
        self._f = None  # append handle on the newest segment
        self._tail_len = 0  # valid bytes of the newest segment
        self._roll = True  # the next write starts a new segment
        self._next = 1
        self.durable = 0  # highest seq written and synced to flash
        self._pending = []  # (seq, t, frame) held in RAM until the flash takes them
        self._acked = 0  # the center holds every seq below this
        self._cursor = None  # (next seq, segment, offset) where the last read stopped
        self._seen_bad = []
        self._active = {}
        self._err = 0
        self.corrupt_found = 0
        self.write_errors = 0
        self.lost = 0
        self.dropped_segments = 0
        self.report = None

    # --- start-up ---------------------------------------------------------------
    def open(self):
        """Recover after any stop, clean or not, reading only the newest segment.
        Returns (and keeps in .report) what was found."""
        self.close()
        self._reset()
        # Once per start: gateway/store/recovery.py, loaded for it only.
        found = ondemand.call("gateway.store.recovery", "recover", self._flash)
        self._segs = found["segs"]
        self._sizes = found["sizes"]
        self._used = found["used"]
        self._meta = found["meta"]
        self._tail_len = found["tail_len"]
        self._next = found["next"]
        self._roll = found["roll"]
        self.durable = self._next - 1
        self.report = {
            "segments": len(self._segs),
            "head": self.head,
            "oldest": self.oldest,
            "records": self.head - self.oldest + 1,
            "tail_records": found["tail_records"],
            "torn_bytes": found["torn_bytes"],
            "corrupt_skipped": len(found["corrupt"]),
        }
        # Told only once the log is whole again: the alarm engine writes its record
        # into this log at once.
        for first, off, ln, what in found["corrupt"]:
            self._corrupt(first, off, ln, what)
        return self.report

    # --- properties -------------------------------------------------------------
    @property
    def head(self):
        """The last seq appended (stored, or held in RAM until the flash takes it); 0 if none."""
        return self._next - 1

    @property
    def oldest(self):
        """The oldest seq still held; head + 1 if there is none."""
        if self._segs:
            return self._segs[0]
        if self._pending:
            return self._pending[0][0]
        return self._next

    @property
    def pending(self):
        return len(self._pending)

    # --- writing ----------------------------------------------------------------
    def append(self, rtype, t, fields):
        """Store one record and return its seq. Durable on return unless the flash failed;
        then the record waits in RAM (bounded), an alarm is raised and it is written by a
        later append or flush_pending(). Raises RecordError for a record it cannot store."""
        seq = self._next
        payload = codec.encode(seq, rtype, t, fields)
        if len(payload) > _MAX_PAYLOAD:
            raise RecordError("record of %d bytes, the limit is %d" % (len(payload), _MAX_PAYLOAD))
        fr = frame(payload)
        self._next = seq + 1
        if self._pending:
            self._hold(seq, t, fr)
            self.flush_pending()
            return seq
        try:
            self._write(seq, t, fr)
        except (OSError, MemoryError) as e:  # the flash, or no room for a new segment's code
            # Held first: the alarm raised next writes a record into this log at once,
            # and that one must queue behind this one.
            self._hold(seq, t, fr)
            self._failed(e)
            return seq
        self._healthy()
        return seq

    def flush_pending(self):
        """Write what waits in RAM. True when nothing waits any more."""
        if self._err == ENOSPC:
            self._drop_acked()  # the center may have acknowledged more since
        while self._pending:
            seq, t, fr = self._pending[0]
            try:
                self._write(seq, t, fr)
            except (OSError, MemoryError) as e:
                self._failed(e)
                return False
            self._pending.pop(0)
        self._healthy()
        return True

    def _write(self, seq, t, fr):
        if self._roll or not self._segs or self._tail_len + len(fr) > self.segment_bytes:
            self._new_segment(seq, t, fr)
        else:
            first = self._segs[-1]
            if self._f is None:
                self._f = self._flash.open(segment_name(first), "ab")
            n = self._f.write(fr)
            if n is not None and n != len(fr):
                raise OSError(5, "short write")
            self._flash.sync(self._f)
            self._tail_len += len(fr)
            self._used += len(fr)
            self._sizes[first] = self._tail_len
        self.durable = seq

    def _new_segment(self, seq, t, fr):
        # A segment is born every segment_bytes, after a failed write and at the first
        # write of a start that found a torn tail: gateway/store/rollover.py, loaded for it.
        ondemand.call(_ROLLOVER, "new_segment", self, seq, t, fr)

    def _drop_oldest(self):
        ondemand.call(_ROLLOVER, "drop_oldest", self)

    def _hold(self, seq, t, fr):
        """Queue a record in RAM. Queued before anything here can raise an alarm: the
        alarm writes its record into this log at once, and it must come after this one."""
        self._pending.append((seq, t, fr))
        if len(self._pending) <= self.ram_buffer:
            return
        if self._err == ENOSPC and len(self._segs) > 1:
            # Full flash: the oldest segment goes first, as with the budget.
            try:
                self._drop_oldest()
            except (OSError, MemoryError):
                pass
            self.flush_pending()
        if len(self._pending) > self.ram_buffer:
            old = self._pending.pop(0)
            self.lost += 1
            self._raise(
                "storage_records_lost",
                "seq %d lost: flash failing and %d records already wait in RAM"
                % (old[0], self.ram_buffer),
            )

    def _failed(self, e):
        self.write_errors += 1
        self._close_tail()
        self._roll = True  # whatever the failed write left behind is never read
        self._err = e.errno if hasattr(e, "errno") else 0
        if self._err == ENOSPC:
            self._set("storage_full", True, "flash full (%s); records wait in RAM" % (e,))
            self._drop_acked()
        else:
            self._set("storage_write_error", True, "write failed (%s); records wait in RAM" % (e,))

    def _drop_acked(self):
        """On a full flash, records the center already holds go at once to make room."""
        while len(self._segs) > 1 and self._segs[1] - 1 < self._acked:
            try:
                self._drop_oldest()
            except (OSError, MemoryError):
                return

    def _healthy(self):
        if self._err:
            self._err = 0
            self._set("storage_full", False, "records written again")
            self._set("storage_write_error", False, "records written again")

    def _close_tail(self):
        f = self._f
        self._f = None
        if f is not None:
            try:
                f.close()
            except OSError:
                pass

    def close(self):
        self._close_tail()

    def set_acked(self, next_seq):
        """The center durably holds every seq below next_seq (it may be dropped silently).
        A seq the center holds is never used again, even if this log lost it. The caller
        keeps next_seq below 2^31 (the spec's bound on seqs)."""
        if next_seq > self._acked:
            self._acked = next_seq
        if next_seq > self._next:
            self._next = next_seq

    # --- alarms -----------------------------------------------------------------
    def _set(self, code, active, detail):
        if self._active.get(code, False) != active:
            self._active[code] = active
            if self._alarm is not None:
                self._alarm(code, active, detail)

    def _raise(self, code, detail):
        if self._alarm is not None:
            self._alarm(code, True, detail)

    def _corrupt(self, first, off, ln, what):
        key = (first, off)
        if key in self._seen_bad:
            return
        if len(self._seen_bad) < _SEEN_MAX:
            self._seen_bad.append(key)
        self.corrupt_found += 1
        self._raise(
            "storage_corrupt",
            "%s: %d bytes at offset %d of %s unreadable, skipped"
            % (what, ln, off, segment_name(first)),
        )

    # --- reading ----------------------------------------------------------------
    def _valid_len(self, i):
        first = self._segs[i]
        if i == len(self._segs) - 1:
            return self._tail_len
        size = self._sizes[first]
        prev_len = self._header(i + 1)[0]
        return size if prev_len is None or prev_len > size else prev_len

    def _header(self, i):
        """(prev_len or None, first_t or None) of segment i, read once and kept."""
        first = self._segs[i]
        m = self._meta.get(first)
        if m is None:
            h = b""
            f = self._flash.open(segment_name(first), "rb")
            try:
                h = f.read(SEG_HDR)
            finally:
                f.close()
            hdr = parse_header(h)
            if hdr is None or hdr[0] != first:
                self._corrupt(first, 0, SEG_HDR, "segment header")
                m = (None, None)
            else:
                m = (hdr[1], hdr[2])
            self._meta[first] = m
        return m

    def _find(self, seq):
        """Index of the segment that would hold seq."""
        segs = self._segs
        lo, hi = 0, len(segs) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if segs[mid] <= seq:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _scan(self, i, from_seq, keep, out, max_n, chunk=_CHUNK):
        """Append to out the decoded records of segment i with seq >= from_seq that
        keep(payload) accepts; stop at max_n. Returns False once max_n is reached."""
        first = self._segs[i]
        start = SEG_HDR
        c = self._cursor
        if c is not None and c[1] == first and c[0] <= from_seq:
            start = c[2]
        bad = []
        nb = 0
        prev = None
        f = self._flash.open(segment_name(first), "rb")
        try:
            for off, payload in frames(f, start, self._valid_len(i), bad, chunk):
                seq = seq_of(payload)
                while nb < len(bad):
                    self._corrupt(first, bad[nb][0], bad[nb][1], between(prev, seq))
                    nb += 1
                prev = seq
                if seq < from_seq or (keep is not None and not keep(payload)):
                    continue
                try:
                    out.append(codec.decode(payload))
                except RecordError:
                    self._corrupt(first, off, _FRAME_HDR + len(payload), "seq %d" % seq)
                    continue
                if len(out) >= max_n:
                    self._cursor = (seq + 1, first, off + _FRAME_HDR + len(payload))
                    return False
            while nb < len(bad):
                self._corrupt(first, bad[nb][0], bad[nb][1], between(prev, None))
                nb += 1
        finally:
            f.close()
        return True

    def _pending_into(self, from_seq, keep, out, max_n):
        for seq, _, fr in self._pending:
            if len(out) >= max_n:
                return
            payload = memoryview(fr)[_FRAME_HDR:]
            if seq >= from_seq and (keep is None or keep(payload)):
                out.append(codec.decode(payload))

    def read(self, from_seq, max_n=256):
        """Up to max_n records with seq >= from_seq, ascending, as dicts. A damaged record
        is reported (storage_corrupt) and skipped; the others are still returned."""
        out = []
        if max_n <= 0:
            return out
        if self._segs and from_seq <= self.durable:
            # Reads sized to the request: the uplink of a fragmented small heap asks for a
            # record or two, and a 4 KB read buffer may be more than it has in one piece.
            chunk = min(_CHUNK, _READ_PER_RECORD * max_n)
            i = self._find(from_seq)
            while i < len(self._segs) and self._scan(i, from_seq, None, out, max_n, chunk):
                i += 1
        if len(out) < max_n:
            if out:
                from_seq = out[-1]["seq"] + 1
            self._pending_into(from_seq, None, out, max_n)
        return out

    def stats(self):
        try:
            free = self._flash.free_bytes()
        except OSError:
            free = -1
        return {
            "bytes_used": self._used,
            "budget_bytes": self.budget_bytes,
            "segments": len(self._segs),
            "records": self.head - self.oldest + 1,
            "head": self.head,
            "oldest": self.oldest,
            "durable": self.durable,
            "acked": self._acked,
            "pending": len(self._pending),
            "corrupt_found": self.corrupt_found,
            "write_errors": self.write_errors,
            "lost": self.lost,
            "dropped_segments": self.dropped_segments,
            "free_bytes": free,
        }
