# DL/T 645-2007 terminals for the core tests, written apart from protocols/dlt645.py (its
# own framing and BCD), answering on a tests.core.fakeline.FakeLine: a bus of terminals,
# each a dict of items, that answers a request with (delay_ms, bytes) pieces.
FN_READ = 0x11
FN_READ_ADDRESS = 0x13

# The datasheet's items: DI -> (value bytes, signed)
ITEMS = {
    0x00010000: (4, False),
    0x00010100: (4, False),
    0x00010200: (4, False),
    0x00010300: (4, False),
    0x00010400: (4, False),
    0x00020000: (4, False),
    0x00030000: (4, False),
    0x02010100: (2, False),
    0x02010200: (2, False),
    0x02010300: (2, False),
    0x02020100: (3, True),
    0x02020200: (3, True),
    0x02020300: (3, True),
    0x02030000: (3, True),
    0x02040000: (3, True),
    0x02060000: (2, True),
    0x02080100: (2, False),
    0x02080200: (2, False),
    0x02080300: (2, False),
    0x02090100: (2, False),
    0x02090200: (2, False),
    0x02090300: (2, False),
    0x02800002: (2, False),
    0x02800007: (2, True),
}


def addr_bytes(digits):
    return bytes(int(digits[10 - 2 * k : 12 - 2 * k], 16) for k in range(6))


def bcd_bytes(value, n, signed=False):
    v = -value if value < 0 else value
    s = "%d" % v
    s = "0" * (2 * n - len(s)) + s
    if len(s) > 2 * n:
        raise ValueError("too big")
    out = bytearray(int(s[2 * (n - 1 - k) : 2 * (n - k)], 16) for k in range(n))
    if value < 0:
        out[n - 1] |= 0x80
    return bytes(out)


def frame(addr, c, data, wake=0):
    body = bytearray(b"\x68") + addr + b"\x68" + bytes([c, len(data)])
    body += bytes((b + 0x33) & 0xFF for b in data)
    body.append(sum(body) & 0xFF)
    body.append(0x16)
    return b"\xfe" * wake + bytes(body)


def reply(addr, di, value, n, signed=False, wake=0):
    data = bytes((di >> (8 * k)) & 0xFF for k in range(4)) + bcd_bytes(value, n, signed)
    return frame(addr, 0x91, data, wake)


def parse_request(req):
    """(address bytes, C, data) of a request, or None if it is not a whole valid frame."""
    i = 0
    while i < len(req) and req[i] == 0xFE:
        i += 1
    f = req[i:]
    if len(f) < 12 or f[0] != 0x68 or f[7] != 0x68:
        return None
    n = f[9]
    if len(f) != 12 + n or f[-1] != 0x16 or sum(f[: 10 + n]) & 0xFF != f[10 + n]:
        return None
    return bytes(f[1:7]), f[8], bytes((b - 0x33) & 0xFF for b in f[10 : 10 + n])


class Terminal:
    def __init__(self, digits, values=None):
        self.digits = digits
        self.addr = addr_bytes(digits)
        self.values = {}  # DI -> integer in the item's units
        for di in ITEMS:
            self.values[di] = 0
        if values:
            self.values.update(values)
        self.missing = set()  # items it answers with "no such data item"
        self.silent = False
        self.wake = 2
        self.delay_ms = 60  # turnaround
        self.reads = 0

    def answer(self, addr, c, data):
        if self.silent:
            return None
        wild = addr == b"\xaa" * 6
        if addr != self.addr and not wild:
            return None
        if c == FN_READ_ADDRESS:
            return frame(self.addr, 0x93, self.addr, self.wake)
        if c != FN_READ or len(data) != 4:
            return frame(self.addr, 0xC0 | c, b"\x01", self.wake)
        di = data[0] | data[1] << 8 | data[2] << 16 | data[3] << 24
        self.reads += 1
        if di in self.missing or di not in ITEMS:
            return frame(self.addr, 0xD1, b"\x02", self.wake)
        n, signed = ITEMS[di]
        return reply(self.addr, di, self.values[di], n, signed, self.wake)


class Bus:
    """Terminals on one line: the addressed one answers after its turnaround, with its
    reply's bytes in the time they take at baud (8E1)."""

    def __init__(self, terminals, baud=2400):
        self.terminals = list(terminals)
        self.baud = baud
        self.log = []  # (address digits, DI) of each read, the latest 256

    def __call__(self, req):
        got = parse_request(req)
        if got is None:
            return []
        addr, c, data = got
        for t in self.terminals:
            f = t.answer(addr, c, data)
            if f is not None:
                if len(data) == 4:
                    self.log.append((t.digits, data[0] | data[1] << 8 | data[2] << 16
                                     | data[3] << 24))
                    if len(self.log) > 256:
                        self.log.pop(0)
                wire = (len(req) + len(f)) * 11 * 1000 // self.baud
                return [(t.delay_ms + wire, f)]
        return []
