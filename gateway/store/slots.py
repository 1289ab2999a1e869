# Small state that must survive power loss (parameters, the checkpoint, center commands),
# kept as two copies. A save writes the copy that is not the current one and syncs it, so
# a cut at any instant leaves the previous copy whole: load() finds the old or the new
# state, never a mix.
#
# File <name>.a / <name>.b: b"GWSL" | generation u32 | length u32 | crc32 u32 | JSON body
# (the CRC covers generation, length and body).
#
# A slots object saved all the time (the checkpoint, every few seconds) can keep a buffer
# for its JSON, made with it at start-up while the heap is still whole: the body is written
# into it and goes to the file a small piece at a time. Made at each save instead, the
# text, its bytes and the header+body would need three body-sized pieces of a heap that a
# long run has fragmented, and a save could fail with room to spare in smaller pieces.
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


def _crc(gen, body):
    return crc32(body, crc32(struct.pack("<II", gen, len(body))))


class Slots:
    """buffer_bytes: keep a buffer of that size for the JSON of every save (0: none); it
    grows if a body outgrows it."""

    def __init__(self, flash, name, buffer_bytes=0):
        self._flash = flash
        self.name = name
        self.generation = 0  # of the current copy; 0 before the first save
        self.bad = 0  # copies found damaged by the last load (one is normal after a cut)
        self._cur = -1  # which file holds the current copy
        self._loaded = False
        self._buf = None  # the kept buffer (io.BytesIO), or None
        self._piece = None
        if buffer_bytes:
            # MicroPython's BytesIO(n) holds n bytes without growing; CPython's grows.
            self._buf = io.BytesIO(buffer_bytes) if MICROPYTHON else io.BytesIO()
            self._piece = bytearray(_PIECE)

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
        body = self._encode(obj)  # None: it is in the kept buffer
        n = self._buf.tell() if body is None else len(body)
        if n > MAX_BODY:
            raise SlotError("%s: %d bytes, the limit is %d" % (self.name, n, MAX_BODY))
        gen = self.generation + 1
        i = 1 if self._cur == 0 else 0
        crc = crc32(struct.pack("<II", gen, n))
        for piece in self._pieces(body, n):
            crc = crc32(piece, crc)
        f = self._flash.open(self.name + _SUFFIX[i], "wb")
        try:
            f.write(_MAGIC + struct.pack("<III", gen, n, crc))
            for piece in self._pieces(body, n):
                f.write(piece)
            self._flash.sync(f)
        finally:
            f.close()
        self.generation = gen
        self._cur = i

    def _encode(self, obj):
        """obj's JSON as bytes; or None when it went into the kept buffer."""
        buf = self._buf
        if buf is None:
            return json.dumps(obj).encode()
        buf.seek(0)
        if MICROPYTHON:
            json.dump(obj, buf)  # straight into the buffer: no body-sized allocation
        else:
            buf.write(json.dumps(obj).encode())  # json.dump writes text, BytesIO wants bytes
        return None

    def _pieces(self, body, n):
        """The body's n bytes: body in one piece, or the kept buffer _PIECE at a time."""
        if body is not None:
            yield body
            return
        buf = self._buf
        piece = self._piece
        buf.seek(0)
        while n > 0:
            k = buf.readinto(piece)
            if not k:
                return  # cannot happen (n is what was written); a short body fails its CRC
            if k > n:
                k = n  # the buffer still holds the end of a longer body
            yield piece if k == _PIECE else memoryview(piece)[:k]
            n -= k
