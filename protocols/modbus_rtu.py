# Modbus RTU: the codec (frames for function codes 01-06, CRC-16/MODBUS, exception
# responses as typed errors) and a master that runs one transaction at a time on a hal.uart
# port: stale bytes out, request in, the response found by its expected length and CRC even
# among garbage, checked against the request, all before a deadline. The master raises on
# every failure and counts it; the driver decides what to retry and keeps the link's health
# (drivers/link.py).
import struct
from array import array

from hal.compat import MICROPYTHON, const

READ_COILS = const(1)
READ_DISCRETE_INPUTS = const(2)
READ_HOLDING = const(3)
READ_INPUT = const(4)
WRITE_COIL = const(5)
WRITE_REGISTER = const(6)

_MAX_READ_REGS = const(125)
_MAX_READ_BITS = const(2000)
MAX_ADU = const(256)
_REQUEST = const(8)  # every request the master sends (functions 01-06)

_EXC_BUSY = const(6)

_RX_CAP = const(512)  # two maximum frames: garbage can never grow it further


class ModbusError(Exception):
    """A transaction that gave no valid answer."""


class FrameError(ModbusError):
    """Bytes that are not a valid frame for the request (bad length, CRC, address, echo)."""


class CrcError(FrameError):
    pass


class WrongAddress(FrameError):
    pass


class ResponseTimeout(ModbusError):
    """Nothing at all arrived by the deadline."""


class PortError(ModbusError):
    """The serial port failed (absent, unplugged, connection down)."""


class ModbusException(ModbusError):
    """The slave answered with an exception response; `code` is its exception code (1
    illegal function, 2 illegal data address, 3 illegal data value, 4 device failure)."""

    code = 0

    def __init__(self, fc, code):
        super().__init__("function %d: exception %d" % (fc, code))
        self.fc = fc
        self.code = code


class DeviceBusy(ModbusException):
    """Exception 06: busy now, ask again shortly."""


def exception_for(fc, code):
    return (DeviceBusy if code == _EXC_BUSY else ModbusException)(fc, code)


# --- timing on the wire (8N1: 10 bits a character)


def char_us(baud):
    return 10000000 // baud


def silence_us(baud):
    """The 3.5-character inter-frame silence; fixed 1750 us above 19200 baud."""
    if baud > 19200:
        return 1750
    return 35000000 // baud


def bus_time_us(baud, req_len, resp_len, turnaround_ms=5):
    """Bus time of one transaction: both frames, the silence after each, the slave's turnaround."""
    return (req_len + resp_len) * char_us(baud) + 2 * silence_us(baud) + turnaround_ms * 1000


# --- the codec


if MICROPYTHON:

    def _crc_table():
        # 256 u16 in one 512-byte array (a tuple of ints is 2 KB on a 64-bit port), made
        # at import, while the heap is still whole: by the first frame a small heap may
        # be too fragmented for it.
        t = array("H", bytes(512))
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
            t[i] = c
        return t

    _TABLE = _crc_table()
    del _crc_table  # its code, once run, would stay with the module

    def _crc16(buf, start, end):
        # By index, not over a slice: no allocation per frame on the 10 Hz path.
        t = _TABLE
        c = 0xFFFF
        for i in range(start, end):
            c = (c >> 8) ^ t[(c ^ buf[i]) & 0xFF]
        return c

else:
    # CPython: crcmod's C extension (hal.crc), imported only here so that MicroPython,
    # which has the table above, never loads that module.
    from hal.crc import crc16_modbus

    def _crc16(buf, start, end):
        return crc16_modbus(bytes(buf[start:end]))


def crc_ok(buf, start, length):
    """True if buf[start:start+length] ends with its correct CRC (low byte first)."""
    end = start + length - 2
    c = _crc16(buf, start, end)
    return buf[end] == c & 0xFF and buf[end + 1] == c >> 8


def seal(buf, n):
    """Append the CRC to the n bytes of a frame in buf; returns the frame length."""
    c = _crc16(buf, 0, n)
    buf[n] = c & 0xFF
    buf[n + 1] = c >> 8
    return n + 2


def _check_slave(slave):
    if not 1 <= slave <= 247:
        raise ValueError("slave address %d is out of range 1..247" % slave)


def build_read(buf, slave, fc, start, count):
    """A read request (01, 02, 03, 04) into buf; returns its length (8)."""
    _check_slave(slave)
    limit = _MAX_READ_REGS if fc in (READ_HOLDING, READ_INPUT) else _MAX_READ_BITS
    if fc not in (READ_COILS, READ_DISCRETE_INPUTS, READ_HOLDING, READ_INPUT):
        raise ValueError("function %d is not a read" % fc)
    if not 1 <= count <= limit or not 0 <= start <= 0xFFFF or start + count > 0x10000:
        raise ValueError("read of %d from %d is out of range" % (count, start))
    struct.pack_into(">BBHH", buf, 0, slave, fc, start, count)
    return seal(buf, 6)


def build_write_coil(buf, slave, address, on):
    _check_slave(slave)
    if not 0 <= address <= 0xFFFF:
        raise ValueError("coil %d is out of range" % address)
    struct.pack_into(">BBHH", buf, 0, slave, WRITE_COIL, address, 0xFF00 if on else 0)
    return seal(buf, 6)


def build_write_register(buf, slave, address, value):
    _check_slave(slave)
    if not 0 <= address <= 0xFFFF or not 0 <= value <= 0xFFFF:
        raise ValueError("register %d = %d is out of range" % (address, value))
    struct.pack_into(">BBHH", buf, 0, slave, WRITE_REGISTER, address, value)
    return seal(buf, 6)


def response_length(fc, count):
    """Length of the normal response to a request (count: registers or bits read)."""
    if fc in (READ_COILS, READ_DISCRETE_INPUTS):
        return 5 + (count + 7) // 8
    if fc in (READ_HOLDING, READ_INPUT):
        return 5 + 2 * count
    return 8


# --- the master


class Master:
    """One transaction at a time on a hal.uart port.

    Every request method sends, waits for the response until its deadline
    (request and response frame time at `baud` plus `timeout_ms`), and returns the offset of
    the response's data in `rx` (valid until the next request), or raises a ModbusError
    (ResponseTimeout and PortError: nothing was heard)."""

    def __init__(self, uart, clock, baud=9600, timeout_ms=100):
        self._uart = uart
        self._clock = clock
        self.baud = baud
        self.timeout_ms = timeout_ms
        self._char_us = char_us(baud)
        self._gap_ms = (silence_us(baud) + 999) // 1000
        self.flush_max_ms = 5 * self._gap_ms  # _flush: one silence, then up to 4 more
        self._tx = bytearray(_REQUEST)
        self.rx = bytearray(_RX_CAP)
        self._rxmv = memoryview(self.rx)
        # Per-transaction state
        self._slave = 0
        self._fc = 0
        self._resp_len = 0
        self._heard = 0
        self._bad_crc = 0
        self._bad_addr = 0
        self._scan_from = 0
        self._quiet_at = None  # no request before this tick: the inter-frame silence
        self.requests = 0
        self.responses = 0
        self.timeouts = 0
        self.crc_errors = 0
        self.frame_errors = 0
        self.wrong_address = 0
        self.exceptions = 0
        self.busy = 0
        self.uart_errors = 0
        self.stale_bytes = 0
        self._lat_sum = 0
        self._lat_n = 0
        self.latency_ms_max = 0
        self.latency_ms = 0

    def counters(self):
        return {
            "requests": self.requests,
            "responses": self.responses,
            "timeouts": self.timeouts,
            "crc_errors": self.crc_errors,
            "frame_errors": self.frame_errors,
            "wrong_address": self.wrong_address,
            "exceptions": self.exceptions,
            "busy": self.busy,
            "uart_errors": self.uart_errors,
            "stale_bytes": self.stale_bytes,
            "latency_ms_avg": self._lat_sum // self._lat_n if self._lat_n else 0,
            "latency_ms_sum": self._lat_sum,  # over `responses`: a caller's window of it
            "latency_ms_max": self.latency_ms_max,
        }

    # --- requests

    def read(self, slave, fc, start, count):
        """Read registers (03, 04) or bits (01, 02); returns the offset of the data in rx
        (registers big-endian, bits packed LSB first)."""
        n = build_read(self._tx, slave, fc, start, count)
        return self._transact(slave, fc, n, response_length(fc, count))

    def write_coil(self, slave, address, on):
        return self._transact(slave, WRITE_COIL, build_write_coil(self._tx, slave, address, on), 8)

    def write_register(self, slave, address, value):
        n = build_write_register(self._tx, slave, address, value)
        return self._transact(slave, WRITE_REGISTER, n, 8)

    def _transact(self, slave, fc, req_len, resp_len):
        c = self._clock
        self._slave = slave
        self._fc = fc
        self._resp_len = resp_len
        self._heard = self._bad_crc = self._bad_addr = 0
        self.requests += 1
        try:
            self._flush()
            self._uart.write(self._tx)
        except OSError as e:  # UartError and anything the port raises
            self.uart_errors += 1
            raise PortError("port: %s" % e)
        sent = c.ticks_ms()
        wire_ms = ((req_len + resp_len) * self._char_us + 999) // 1000
        deadline = c.ticks_add(sent, wire_ms + self.timeout_ms)
        try:
            start = self._receive(deadline)
        except OSError as e:
            self.uart_errors += 1
            raise PortError("port: %s" % e)
        now = c.ticks_ms()
        self._quiet_at = c.ticks_add(now, self._gap_ms)
        lat = c.ticks_diff(now, sent)
        self.latency_ms = lat
        self._lat_sum += lat
        self._lat_n += 1
        if lat > self.latency_ms_max:
            self.latency_ms_max = lat
        self.responses += 1
        return self._check(start)

    def _flush(self):
        """Drop stale bytes (a late answer, noise after a direction switch) and keep the
        inter-frame silence before the next request."""
        c = self._clock
        u = self._uart
        if self._quiet_at is not None:
            wait = c.ticks_diff(self._quiet_at, c.ticks_ms())
            if 0 < wait <= self._gap_ms:
                c.sleep_ms(wait)
        dropped = u.discard_input()
        if dropped:
            # Something was still arriving: wait for one silence and drop what follows.
            for _ in range(4):
                got = u.readinto(self._rxmv, self._gap_ms)
                if not got:
                    break
                dropped += got
            self.stale_bytes += dropped

    def _receive(self, deadline):
        """Read until a valid frame for the request is in rx; returns where it starts."""
        c = self._clock
        rx = self._rxmv
        n = 0
        self._scan_from = 0
        while True:
            left = c.ticks_diff(deadline, c.ticks_ms())
            if left <= 0:
                self._quiet_at = c.ticks_add(c.ticks_ms(), self._gap_ms)
                raise self._failure()
            if n == _RX_CAP:
                # Full of garbage: keep only the bytes a pending frame could still start in.
                keep = self._resp_len - 1
                rx[0:keep] = rx[n - keep : n]
                self._scan_from = max(0, self._scan_from - (n - keep))
                n = keep
            got = self._uart.readinto(rx[n:] if n else rx, left)
            if not got:
                continue
            self._heard += got
            old = n
            n += got
            i = self._scan(old, n)
            if i >= 0:
                return i

    def _failure(self):
        if self._bad_crc:
            self.crc_errors += 1
            return CrcError("CRC error in the response from %d" % self._slave)
        if self._bad_addr:
            self.wrong_address += 1
            return WrongAddress("response from another slave than %d" % self._slave)
        if self._heard:
            self.frame_errors += 1
            return FrameError("%d bytes but no valid response" % self._heard)
        self.timeouts += 1
        return ResponseTimeout("no response from %d" % self._slave)

    def _claimed(self, i, n):
        """Length of the response that would start at rx[i]: 0 if not known yet, -1 if none."""
        rx = self.rx
        if i + 2 > n:
            return 0
        fc = rx[i + 1]
        if fc == self._fc | 0x80:
            return 5
        if fc != self._fc:
            return -1
        if fc <= READ_INPUT:
            if i + 3 > n:
                return 0
            if rx[i + 2] != self._resp_len - 5:
                return -1
        return self._resp_len

    def _scan(self, old, n):
        """Check every candidate frame that became complete with the bytes old..n."""
        rx = self.rx
        i = self._scan_from
        while i < n - 1:
            length = self._claimed(i, n)
            if length == 0:
                break  # the header is still arriving
            end = i + length
            if length > 0 and old < end <= n:
                if crc_ok(rx, i, length):
                    if rx[i] == self._slave:
                        return i
                    self._bad_addr += 1
                elif rx[i] == self._slave:
                    self._bad_crc += 1
            if i == self._scan_from and (length < 0 or end <= n):
                self._scan_from = i + 1  # rejected for good
            i += 1
        return -1

    def _check(self, i):
        rx = self.rx
        fc = rx[i + 1]
        if fc & 0x80:
            code = rx[i + 2]
            self.exceptions += 1
            if code == _EXC_BUSY:
                self.busy += 1
            raise exception_for(fc & 0x7F, code)
        if fc <= READ_INPUT:
            return i + 3
        # A write's echo must repeat the request's address and value (or count).
        tx = self._tx
        if rx[i + 2] != tx[2] or rx[i + 3] != tx[3] or rx[i + 4] != tx[4] or rx[i + 5] != tx[5]:
            self.frame_errors += 1
            raise FrameError("write echo does not match the request")
        return i + 2
