# CRC-16/MODBUS and CRC-32. crcmod's C extension on CPython, a table on MicroPython.
from binascii import crc32  # noqa: F401  (same function on both interpreters)

try:
    import crcmod.predefined

    _crc16 = crcmod.predefined.mkCrcFun("modbus")

    def crc16_modbus(data):
        return _crc16(bytes(data))

except ImportError:
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
