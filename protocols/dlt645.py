# DL/T 645-2007 (../shared/specs/power-meter.md): frames (wake-up bytes, the address low
# byte first, data +0x33, checksum), BCD values with sign bits, abnormal replies as typed
# errors, and a master that runs one transaction at a time on a hal.uart port without ever
# waiting: start() sends, poll() takes what has arrived and says whether the reply is in.
# At 2400 baud a transaction takes a quarter of a second; the loop's other jobs go on
# meanwhile. The master raises on every failure and counts it; the driver retries.
from hal.compat import const

_START = const(0x68)
_END = const(0x16)
_WAKE = const(0xFE)
_OFFSET = const(0x33)
FN_READ = const(0x11)
FN_READ_ADDRESS = const(0x13)
_REPLY = const(0x80)
_ABNORMAL = const(0x40)
_FN_MASK = const(0x1F)
ERR_NO_ITEM = const(2)

MAX_DATA = const(200)  # L: the datasheet's cap
_HEADER = const(10)  # 68 A0..A5 68 C L
_FRAME_MIN = const(12)  # header, CS, 16
_WAKE_BYTES = const(4)
_TX_CAP = const(32)  # the longest request the gateway sends: 4 + 12 + 6
_RX_CAP = const(320)  # the longest frame and more: garbage can never grow it further
_READ_MAX = const(64)  # bytes taken per poll(): a babbling line costs a bounded time a run
_TURNAROUND_MAX_MS = const(500)  # the datasheet's longest answer delay and byte gap
_HARD_MS = const(3000)  # no transaction longer than this, however the bytes trickle in
CHAR_BITS = const(11)  # 8E1

WILDCARD = b"\xaa\xaa\xaa\xaa\xaa\xaa"


class DltError(Exception):
    """A transaction that gave no valid answer."""


class FrameError(DltError):
    """Bytes that are not a valid reply to the request (checksum, length, address, item)."""


class ChecksumError(FrameError):
    pass


class WrongAddress(FrameError):
    pass


class BcdError(FrameError):
    """The reply's value is not BCD: taken for no value at all."""


class ResponseTimeout(DltError):
    """Nothing at all arrived by the deadline."""


class PortError(DltError):
    """The serial port failed (absent, unplugged, connection down)."""


class AbnormalReply(DltError):
    """The terminal answered with C = D1 (or D3): `code` is its error byte (bit 0 other,
    bit 1 no such item: NoSuchItem, bit 2 unauthorised, ...)."""

    def __init__(self, fn, code):
        super().__init__("function %02X: abnormal reply, error byte %02X" % (fn, code))
        self.code = code


class NoSuchItem(AbnormalReply):
    """Error bit 1: the terminal does not have that data item."""


def abnormal(fn, code):
    return (NoSuchItem if code & ERR_NO_ITEM else AbnormalReply)(fn, code)


# --- addresses, BCD


def address_bytes(digits):
    """The 6 address bytes (least significant first) of a 12-digit address string."""
    if not isinstance(digits, str) or len(digits) != 12 or not digits.isdigit():
        raise ValueError("a terminal address is 12 decimal digits, got %r" % (digits,))
    out = bytearray(6)
    for k in range(6):
        i = 10 - 2 * k
        out[k] = (ord(digits[i]) - 48) << 4 | (ord(digits[i + 1]) - 48)
    return bytes(out)


def address_digits(buf, off=0):
    """The 12-digit string of the 6 address bytes at buf[off] (least significant first);
    BcdError if they are not BCD."""
    out = ""
    for k in range(5, -1, -1):
        b = buf[off + k]
        if b >> 4 > 9 or b & 15 > 9:
            raise BcdError("address byte %02X is not BCD" % b)
        out += "%02X" % b
    return out


def bcd(buf, off, n, signed):
    """The integer of n BCD bytes at buf[off], least significant first; with signed, the
    top bit of the last (most significant) byte is the sign. BcdError for a nibble > 9."""
    v = 0
    neg = False
    for k in range(n - 1, -1, -1):
        b = buf[off + k]
        if signed and k == n - 1:
            neg = b & 0x80
            b &= 0x7F
        hi = b >> 4
        lo = b & 15
        if hi > 9 or lo > 9:
            raise BcdError("%02X is not BCD" % b)
        v = v * 100 + hi * 10 + lo
    return -v if neg else v


# --- frames


def build(buf, addr, c, data=b"", wake=_WAKE_BYTES):
    """A frame into buf: wake-up bytes, 68 addr 68 C L data+33 CS 16; returns its length."""
    n = len(data)
    if n > MAX_DATA or len(addr) != 6 or wake + _FRAME_MIN + n > len(buf):
        raise ValueError("frame does not fit: %d data bytes" % n)
    for i in range(wake):
        buf[i] = _WAKE
    p = wake
    buf[p] = _START
    for k in range(6):
        buf[p + 1 + k] = addr[k]
    buf[p + 7] = _START
    buf[p + 8] = c
    buf[p + 9] = n
    for k in range(n):
        buf[p + _HEADER + k] = (data[k] + _OFFSET) & 0xFF
    end = p + _HEADER + n
    s = 0
    for i in range(p, end):
        s += buf[i]
    buf[end] = s & 0xFF
    buf[end + 1] = _END
    return end + 2


def build_read(buf, addr, di, wake=_WAKE_BYTES):
    """A read-data request (C 11) for the data item di (an int, 0x00010000 for `00 01 00 00`)."""
    n = build(buf, addr, FN_READ, b"\x00\x00\x00\x00", wake)
    p = wake + _HEADER
    for k in range(4):
        buf[p + k] = ((di >> (8 * k)) + _OFFSET) & 0xFF
    s = 0
    for i in range(wake, p + 4):
        s += buf[i]
    buf[p + 4] = s & 0xFF
    return n


def frame_time_ms(n_bytes, baud):
    """Time on the wire of n_bytes at baud (8E1), rounded up."""
    return (n_bytes * CHAR_BITS * 1000 + baud - 1) // baud


# --- the master


class Master:
    """One transaction at a time on a hal.uart port. start_read() / start_read_address()
    send a request; poll() returns False while the reply is still due, True once a valid
    one is in (its value in `value`, or for a read of the address `address`), or raises a
    DltError. A reply must come within the frames' wire time plus `timeout_ms`; bytes
    still trickling in (up to 500 ms apart, as the datasheet allows) extend that up to
    3 s. `wake` FE bytes go before each request."""

    def __init__(self, uart, clock, baud=2400, timeout_ms=_TURNAROUND_MAX_MS, wake=_WAKE_BYTES):
        self._uart = uart
        self._clock = clock
        self.baud = baud
        self.timeout_ms = timeout_ms
        self.wake = wake
        self._tx = bytearray(_TX_CAP)
        self._txmv = memoryview(self._tx)
        self._read_len = wake + _FRAME_MIN + 4
        self._tx_read = self._txmv[: self._read_len]  # every read request: no slice per read
        self.rx = bytearray(_RX_CAP)
        self._rxmv = memoryview(self.rx)
        self._chunk = bytearray(_READ_MAX)  # read into this, copied by index: no slice per poll
        self._addr = bytearray(6)
        self.address = None  # the answer to start_read_address()
        self.value = 0
        self.busy = False
        # the transaction in progress
        self._fn = 0
        self._di = 0
        self._len = 0  # the value's bytes
        self._signed = False
        self._wild = False
        self._n = 0
        self._scan_from = 0
        self._sent = 0
        self._deadline = 0
        self._hard = 0
        self._heard = 0
        self._bad_cs = 0
        self._bad_addr = 0
        self._other = 0  # valid frames that are not the reply: an echo, a late answer
        self.elapsed_ms = 0  # the last transaction's time from its request to its end
        self.requests = 0
        self.replies = 0
        self.timeouts = 0
        self.checksum_errors = 0
        self.frame_errors = 0
        self.wrong_address = 0
        self.abnormal = 0
        self.uart_errors = 0
        self.stale_bytes = 0

    def request_ms(self, value_len):
        """Wire time of one read of a value_len-byte item: request and reply, no turnaround."""
        return frame_time_ms(2 * (self.wake + _FRAME_MIN) + 8 + value_len, self.baud)

    # --- requests

    def start_read(self, addr, di, value_len, signed=False):
        """Ask the terminal at addr (6 bytes) for item di, a value_len-byte BCD value."""
        if not 1 <= value_len <= MAX_DATA - 4:
            raise ValueError("value length %d" % value_len)
        a = self._addr
        for k in range(6):
            a[k] = addr[k]
        self._wild = False
        self._di = di
        self._len = value_len
        self._signed = signed
        n = build_read(self._tx, self._addr, di, self.wake)
        self._send(FN_READ, n, n + 4 + value_len)

    def start_read_address(self):
        """Ask the single terminal on the bus for its address (the wildcard AA..AA)."""
        self._addr[:] = WILDCARD
        self._wild = True
        self._len = 6
        n = build(self._tx, WILDCARD, FN_READ_ADDRESS, b"", self.wake)
        self._send(FN_READ_ADDRESS, n, n + 6)

    def _write(self, n):
        try:
            self._flush()
            self._uart.write(self._tx_read if n == self._read_len else self._txmv[:n])
        except OSError as e:  # UartError and anything the port raises
            self.uart_errors += 1
            raise PortError("port: %s" % e)

    def _send(self, fn, req_len, reply_len):
        self.requests += 1
        self.busy = False
        self._fn = fn
        self._n = self._scan_from = 0
        self._heard = self._bad_cs = self._bad_addr = self._other = 0
        self._write(req_len)
        c = self._clock
        self._sent = now = c.ticks_ms()
        self._deadline = c.ticks_add(now, frame_time_ms(req_len + reply_len, self.baud)
                                     + self.timeout_ms)
        self._hard = c.ticks_add(now, _HARD_MS)
        self.busy = True

    def _flush(self):
        """Drop stale bytes: a late answer, noise after a direction switch."""
        n = self._uart.discard_input()
        if n:
            self.stale_bytes += n

    # --- the reply

    def poll(self, now_ms):
        """Take what has arrived: True when the reply is in, False while it is due;
        raises a DltError (then the transaction is over)."""
        if not self.busy:
            raise DltError("no request in progress")
        c = self._clock
        rx = self._rxmv
        n = self._n
        if n > _RX_CAP - _READ_MAX:
            # Full of garbage: keep only what a frame could still start in.
            keep = n - self._scan_from
            if keep > _RX_CAP - _READ_MAX:
                keep = _RX_CAP - _READ_MAX
            rx[0:keep] = rx[n - keep : n]
            self._scan_from = 0
            n = self._n = keep
        ch = self._chunk
        try:
            got = self._uart.readinto(ch, 0)
        except OSError as e:
            self.busy = False
            self.uart_errors += 1
            raise PortError("port: %s" % e)
        if got:
            for k in range(got):
                rx[n + k] = ch[k]
            self._heard += got
            self._n = n + got
            old = n
            # The datasheet's byte gap: a reply still arriving gets that long again.
            ext = c.ticks_add(now_ms, _TURNAROUND_MAX_MS)
            if c.ticks_diff(ext, self._deadline) > 0:
                self._deadline = ext if c.ticks_diff(ext, self._hard) < 0 else self._hard
            i = self._scan(old)
            if i >= 0:
                self.busy = False
                self.elapsed_ms = c.ticks_diff(now_ms, self._sent)
                return self._take(i)
        if c.ticks_diff(now_ms, self._deadline) >= 0:
            self.busy = False
            self.elapsed_ms = c.ticks_diff(now_ms, self._sent)
            raise self._failure()
        return False

    def _failure(self):
        if self._bad_cs:
            self.checksum_errors += 1
            return ChecksumError("checksum error in the reply")
        if self._bad_addr:
            self.wrong_address += 1
            return WrongAddress("reply from another terminal")
        if self._heard:
            self.frame_errors += 1
            return FrameError("%d bytes but no valid reply" % self._heard)
        self.timeouts += 1
        return ResponseTimeout("no reply")

    def _scan(self, old):
        """The start of the first valid reply completed by the bytes old.._n of rx, or
        -1. Each candidate is judged once, when its last byte arrives; a candidate still
        incomplete does not hide a complete one after it (noise that looks like a header)."""
        rx = self.rx
        n = self._n
        i = self._scan_from
        pending = False
        while i < n:
            if rx[i] == _START:
                if i + _HEADER > n:
                    return -1  # no later start can have its header either
                length = rx[i + 9]
                if rx[i + 7] == _START and length <= MAX_DATA:
                    end = i + _HEADER + length
                    if end + 2 > n:
                        pending = True
                        i += 1
                        continue
                    if end + 2 > old:
                        s = 0
                        for k in range(i, end):
                            s += rx[k]
                        if rx[end] != s & 0xFF or rx[end + 1] != _END:
                            self._bad_cs += 1
                        elif self._mine(i, length):
                            return i
            if not pending:
                self._scan_from = i + 1
            i += 1
        return -1

    def _mine(self, i, length):
        """Whether the valid frame at rx[i] is the reply to the request."""
        rx = self.rx
        c = rx[i + 8]
        if not c & _REPLY or c & _FN_MASK != self._fn:
            self._other += 1  # our own echo, another master's traffic
            return False
        a = self._addr
        if not self._wild:
            for k in range(6):
                if rx[i + 1 + k] != a[k]:
                    self._bad_addr += 1
                    return False
        if c & _ABNORMAL:
            return length == 1
        if self._fn == FN_READ:
            if length != 4 + self._len:
                return False
            di = self._di
            for k in range(4):
                if (rx[i + _HEADER + k] - _OFFSET) & 0xFF != (di >> (8 * k)) & 0xFF:
                    self._other += 1  # a late answer for another item
                    return False
            return True
        return length == 6

    def _take(self, i):
        rx = self.rx
        p = i + _HEADER
        length = rx[i + 9]
        for k in range(p, p + length):
            rx[k] = (rx[k] - _OFFSET) & 0xFF
        if rx[i + 8] & _ABNORMAL:
            self.abnormal += 1
            self.replies += 1
            raise abnormal(self._fn, rx[p])
        try:
            if self._fn == FN_READ:
                self.value = bcd(rx, p + 4, self._len, self._signed)
            else:
                self.address = address_digits(rx, p)
        except BcdError:
            self.frame_errors += 1
            raise
        self.replies += 1
        return True
