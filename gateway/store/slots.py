# Small state that must survive power loss (parameters, the checkpoint, center commands),
# kept as two copies. A save writes the copy that is not the current one and syncs it, so
# a cut at any instant leaves the previous copy whole: load() finds the old or the new
# state, never a mix.
#
# File <name>.a / <name>.b: b"GWSL" | generation u32 | length u32 | crc32 u32 | JSON body
# (the CRC covers generation, length and body).
#
# A save streams the JSON to the file a small piece at a time (json.dump twice: once for
# its length, once to write it, the header after it): no body-sized piece of the heap is
# needed, which a long run's fragmented heap may not have, and nothing is kept between
# saves (a checkpoint's kept buffer held 3 KB of a 256K heap).
import io
import json
import struct
from binascii import crc32

from gateway.store.codec import RecordError, check_json
from hal.compat import MICROPYTHON, const

_MAGIC = b"GWSL"
_HDR = const(16)
MAX_BODY = const(65536)
_SUFFIX = const((".a", ".b"))
_PIECE = const(256)  # bytes of the kept buffer copied to the file at a time


class SlotError(ValueError):
    """An object that cannot be saved (not JSON, or too large)."""


class _Body(io.IOBase if MICROPYTHON else object):
    """json.dump's stream: counts the body (f None), or writes it to f _PIECE bytes at a
    time, with its CRC."""

    def __init__(self, f=None, crc=0):
        self.f = f
        self.n = 0
        self.crc = crc
        self.piece = bytearray(_PIECE) if f is not None else None
        self.k = 0  # bytes waiting in piece

    def write(self, data):
        if not MICROPYTHON and isinstance(data, str):
            data = data.encode()  # CPython's json.dump writes text
        m = len(data)
        self.n += m
        if self.f is None:
            return m
        piece = self.piece
        i = 0
        while i < m:
            take = min(m - i, _PIECE - self.k)
            piece[self.k : self.k + take] = data[i : i + take]
            self.k += take
            i += take
            if self.k == _PIECE:
                self.flush()
        return m

    def flush(self):
        if self.k:
            mv = memoryview(self.piece)[: self.k]
            self.crc = crc32(mv, self.crc)
            self.f.write(mv)
            self.k = 0


class Slots:
    def __init__(self, flash, name):
        self._flash = flash
        self.name = name
        self.generation = 0  # of the current copy; 0 before the first save
        self.bad = 0  # copies found damaged by the last load (one is normal after a cut)
        self._cur = -1  # which file holds the current copy
        self._loaded = False

    def _read(self, i):
        """(generation, object) of copy i; None if it is missing, False if damaged."""
        name = self.name + _SUFFIX[i]
        if not self._flash.exists(name):
            return None
        try:
            f = self._flash.open(name, "rb")
            try:
                return self._parse(f)
            finally:
                f.close()
        except OSError:
            return False

    def _parse(self, f):
        # In pieces: the CRC over _PIECE bytes at a time, then the JSON parsed from the
        # file. Read whole, a body and its text would need two body-sized blocks of a heap
        # that may hold no such block (a 12 KB command state failed a 256K start that way).
        hdr = f.read(_HDR)
        if len(hdr) < _HDR or hdr[:4] != _MAGIC:
            return False
        gen, n, crc = struct.unpack_from("<III", hdr, 4)
        if n > MAX_BODY:
            return False
        piece = bytearray(_PIECE)
        mv = memoryview(piece)
        c = crc32(struct.pack("<II", gen, n))
        left = n
        while left:
            k = f.readinto(mv[: min(left, _PIECE)])
            if not k:
                return False  # shorter than its header says
            c = crc32(mv[:k], c)
            left -= k
        if c != crc or f.read(1):
            return False  # damaged, or longer than its header says
        f.seek(_HDR)
        try:
            return gen, json.load(f)  # MicroPython parses from the stream as it reads
        except (ValueError, UnicodeError):
            return False

    def load(self):
        """The valid copy with the highest generation, or None if there is none."""
        self.bad = 0
        self._cur = -1
        best = None
        for i in (0, 1):
            got = self._read(i)
            if got is False:
                self.bad += 1
            elif got is not None and (best is None or got[0] > best[0]):
                best = got
                self._cur = i
        self._loaded = True
        self.generation = 0 if best is None else best[0]
        return None if best is None else best[1]

    def save(self, obj):
        """Write obj (JSON-able) as the next generation into the other copy and sync it.
        Raises SlotError for obj, OSError if the flash fails (the current copy stays)."""
        if not self._loaded:
            self.load()
        try:
            check_json(obj)
        except RecordError as e:
            raise SlotError("%s: %s" % (self.name, e))
        counted = _Body()
        json.dump(obj, counted)
        n = counted.n
        if n > MAX_BODY:
            raise SlotError("%s: %d bytes, the limit is %d" % (self.name, n, MAX_BODY))
        gen = self.generation + 1
        i = 1 if self._cur == 0 else 0
        f = self._flash.open(self.name + _SUFFIX[i], "wb")
        try:
            # The body first, after room for the header; the header, with the body's CRC,
            # last: a copy cut short anywhere fails its magic, length or CRC.
            f.write(bytes(_HDR))
            body = _Body(f, crc32(struct.pack("<II", gen, n)))
            json.dump(obj, body)
            body.flush()
            if body.n != n:
                raise OSError("%s: the body changed while it was written" % self.name)
            f.seek(0)
            f.write(_MAGIC + struct.pack("<III", gen, n, body.crc))
            self._flash.sync(f)
        finally:
            f.close()
        self.generation = gen
        self._cur = i
