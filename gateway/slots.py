# Small state that must survive power loss (parameters, the checkpoint, center commands),
# kept as two copies. A save writes the copy that is not the current one and syncs it, so
# a cut at any instant leaves the previous copy whole: load() finds the old or the new
# state, never a mix.
#
# File <name>.a / <name>.b: b"GWSL" | generation u32 | length u32 | crc32 u32 | JSON body
# (the CRC covers generation, length and body).
import json
import struct
from binascii import crc32

from gateway.recordcodec import RecordError, check_json
from hal.compat import const

_MAGIC = b"GWSL"
_HDR = const(16)
MAX_BODY = const(65536)
_SUFFIX = (".a", ".b")


class SlotError(ValueError):
    """An object that cannot be saved (not JSON, or too large)."""


def _crc(gen, body):
    return crc32(body, crc32(struct.pack("<II", gen, len(body))))


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
                data = f.read()
            finally:
                f.close()
        except OSError:
            return False
        if len(data) < _HDR or data[:4] != _MAGIC:
            return False
        gen, n, crc = struct.unpack_from("<III", data, 4)
        body = data[_HDR:]
        if n != len(body) or _crc(gen, body) != crc:
            return False
        try:
            return gen, json.loads(body.decode())
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
        body = json.dumps(obj).encode()
        if len(body) > MAX_BODY:
            raise SlotError("%s: %d bytes, the limit is %d" % (self.name, len(body), MAX_BODY))
        gen = self.generation + 1
        i = 1 if self._cur == 0 else 0
        data = _MAGIC + struct.pack("<III", gen, len(body), _crc(gen, body)) + body
        f = self._flash.open(self.name + _SUFFIX[i], "wb")
        try:
            f.write(data)
            self._flash.sync(f)
        finally:
            f.close()
        self.generation = gen
        self._cur = i
