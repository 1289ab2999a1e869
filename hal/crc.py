# CRC-16/MODBUS and CRC-32. A table on MicroPython, crcmod's C extension on CPython.
from binascii import crc32  # noqa: F401  (same function on both interpreters)

from hal.compat import MICROPYTHON

if MICROPYTHON:
    _TABLE = None

    def _make_table():
        t = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
            t.append(c)
        # A tuple of small ints: one allocation, then read-only.
        return tuple(t)

    def crc16_modbus(data):
        global _TABLE
        if _TABLE is None:
            _TABLE = _make_table()
        t = _TABLE
        c = 0xFFFF
        for b in data:
            c = (c >> 8) ^ t[(c ^ b) & 0xFF]
        return c

else:
    from hal.pc import crc16_modbus  # noqa: F401
