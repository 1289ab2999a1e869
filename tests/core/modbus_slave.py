# The slave side of Modbus RTU: parse a request, build a response or an exception. The
# gateway is only ever the master, so this is not part of it: the emulator, the bench and
# the tests answer the master with it (on both interpreters).
import struct

from protocols.modbus_rtu import READ_INPUT, CrcError, FrameError, crc_ok, seal

# Write multiple registers: the collector takes it (../shared/specs/signal-collector.md);
# the gateway never sends it.
WRITE_REGISTERS = 16
MAX_WRITE_REGS = 123


def request_length(buf, n):
    """Length of the request frame at buf[0:n]: 0 while unknown, -1 if no request starts there."""
    if n < 2:
        return 0
    fc = buf[1]
    if 1 <= fc <= 6:
        return 8
    if fc == WRITE_REGISTERS:
        return 9 + buf[6] if n >= 7 else 0
    return -1


def parse_request(buf, n):
    """(slave, fc, address, count_or_value, values) of a whole request frame in buf[0:n].
    values is a tuple of registers for 16, else None. Raises FrameError."""
    if n < 8 or request_length(buf, n) != n:
        raise FrameError("not a whole request (%d bytes)" % n)
    if not crc_ok(buf, 0, n):
        raise CrcError("request CRC")
    slave, fc, address, arg = struct.unpack_from(">BBHH", buf, 0)
    values = None
    if fc == WRITE_REGISTERS:
        if buf[6] != 2 * arg or not 1 <= arg <= MAX_WRITE_REGS:
            raise FrameError("register count %d does not match %d bytes" % (arg, buf[6]))
        values = struct.unpack_from(">%dH" % arg, buf, 7)
    return slave, fc, address, arg, values


def build_response(buf, slave, fc, data):
    """A normal response into buf: data is the byte string after the byte count for reads,
    the 4-byte echo for writes. Returns its length."""
    buf[0] = slave
    buf[1] = fc
    n = len(data)
    if fc <= READ_INPUT:
        buf[2] = n
        buf[3 : 3 + n] = data
        return seal(buf, 3 + n)
    buf[2 : 2 + n] = data
    return seal(buf, 2 + n)


def build_exception(buf, slave, fc, code):
    buf[0] = slave
    buf[1] = fc | 0x80
    buf[2] = code
    return seal(buf, 3)
