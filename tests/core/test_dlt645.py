# The DL/T 645-2007 codec and master: reference frames, BCD with sign bits, replies found
# among wake-up bytes and noise, abnormal replies as typed errors, and a seeded fuzz of
# the line (garbage, truncation, wrong checksums, wrong addresses, oversize lengths): no
# exception escapes but DltError, no wrong value is taken. Runs under pytest and on
# MicroPython (tests/mprun.py).
from binascii import hexlify

from hal.virtualclock import VirtualClock
from protocols import dlt645 as dlt
from tests.core.fakeline import FakeLine, Rng
from tests.core.fakemeter import Bus, Terminal, addr_bytes, bcd_bytes, frame, reply
from tests.core.util import raises

_A = "000000000012"
_E = 0x00010000  # forward active energy
_P = 0x02030000  # active power, signed


def _hex(buf, n):
    return hexlify(bytes(buf[:n])).decode()


def test_reference_frames():
    b = bytearray(32)
    a = dlt.address_bytes(_A)
    assert a == b"\x12\x00\x00\x00\x00\x00"  # least significant byte first
    assert dlt.address_digits(a) == _A
    # 68 A 68 11 04 DI+33 (00 00 01 00 low byte first: 33 33 34 33) CS 16
    assert _hex(b, dlt.build_read(b, a, _E, wake=0)) == "6812000000000068110433333433c416"
    assert _hex(b, dlt.build_read(b, a, _E))[:8] == "fefefefe"
    n = dlt.build(b, dlt.WILDCARD, dlt.FN_READ_ADDRESS, b"", wake=0)
    assert _hex(b, n) == "68aaaaaaaaaaaa681300" + "df16"


def test_addresses_rejected():
    for bad in ("00000000001", "0000000000123", "00000000001a", 12, None):
        raises(ValueError, dlt.address_bytes, bad)
    raises(dlt.BcdError, dlt.address_digits, b"\x1a\x00\x00\x00\x00\x00")


def test_bcd_values_and_signs():
    assert dlt.bcd(b"\x56\x34\x12\x00", 0, 4, False) == 123456
    assert dlt.bcd(b"\x99\x99\x99\x99", 0, 4, False) == 99999999
    assert dlt.bcd(b"\x00\x50\x81", 0, 3, True) == -15000  # s XX.XXXX: -1.5 kW
    assert dlt.bcd(b"\x00\x50\x81", 0, 3, False) == 815000  # no sign bit in this format
    raises(dlt.BcdError, dlt.bcd, b"\x00\x50\x8a", 0, 3, True)
    raises(dlt.BcdError, dlt.bcd, b"\x0a\x00", 0, 2, False)
    for v, n, s in ((0, 2, False), (9999, 2, False), (-799999, 3, True), (123456, 3, True)):
        assert dlt.bcd(bcd_bytes(v, n, s), 0, n, s) == v


class _Rig:
    def __init__(self, answer, baud=2400):
        self.clock = VirtualClock()
        self.line = FakeLine(self.clock, answer)
        self.m = dlt.Master(self.line, self.clock, baud=baud)

    def run(self, start, *args, step=5):
        """start(*args), then poll every step ms; the result, or raises the DltError."""
        m = self.m
        start(*args)
        while True:
            self.clock.advance_ms(step)
            if m.poll(self.clock.ticks_ms()):
                return m.value

    def read(self, addr, di, n, signed=False):
        return self.run(self.m.start_read, dlt.address_bytes(addr), di, n, signed)


def test_read_on_a_bus_at_2400():
    t1 = Terminal(_A, {_E: 12345678, _P: -15000})
    t2 = Terminal("123456789012", {_E: 1})
    r = _Rig(Bus([t1, t2]))
    assert r.read(_A, _E, 4) == 12345678
    assert r.read(_A, _P, 3, True) == -15000
    assert r.read("123456789012", _E, 4) == 1
    # 4 FE + 16 request bytes, 2 FE + 20 reply bytes at 2400 (4.6 ms each) + 60 ms turnaround
    assert 240 <= r.m.elapsed_ms <= 260
    assert r.m.request_ms(4) == 202  # wire time without the turnaround (4 FE each way)
    assert r.m.replies == 3 and r.m.timeouts == 0


def test_read_address_with_the_wildcard():
    r = _Rig(Bus([Terminal("000000123456")]))
    r.run(r.m.start_read_address)
    assert r.m.address == "000000123456"


def test_abnormal_replies_are_typed():
    t = Terminal(_A)
    t.missing.add(_P)
    r = _Rig(Bus([t]))
    e = raises(dlt.NoSuchItem, r.read, _A, _P, 3, True)
    assert e.code == 2 and isinstance(e, dlt.AbnormalReply)
    assert r.m.abnormal == 1
    assert type(dlt.abnormal(0x11, 1)) is dlt.AbnormalReply
    assert type(dlt.abnormal(0x11, 4)) is dlt.AbnormalReply  # unauthorised: not asked again


def _fixed(pieces):
    def answer(req):
        return pieces

    return answer


def test_reply_among_noise_echo_and_a_late_answer():
    a = addr_bytes(_A)
    good = reply(a, _E, 4321, 4, wake=4)
    late = reply(a, 0x00020000, 99, 4)  # a late answer for another item
    echo = frame(a, 0x11, b"\x00\x00\x01\x00")  # our own request, echoed by the adapter
    noise = b"\x68\x00\x68\x01\x02\x68\x00\x00\x00\x00\x00\x00\x68\x11\xc8"  # a header of L 200
    r = _Rig(_fixed([(10, echo), (30, noise), (80, late), (120, good[:9]), (140, good[9:])]))
    assert r.read(_A, _E, 4) == 4321


def test_failures_are_typed():
    a = addr_bytes(_A)
    good = reply(a, _E, 4321, 4)
    bad_cs = bytearray(good)
    bad_cs[-2] ^= 1
    other = reply(addr_bytes("000000000013"), _E, 4321, 4)
    bad_bcd = reply(a, _E, 0, 4)
    bad_bcd = bytearray(bad_bcd)
    bad_bcd[14] = (0x0A + 0x33) & 0xFF
    bad_bcd[-2] = sum(bad_bcd[:-2]) & 0xFF
    for pieces, exc in (
        ([], dlt.ResponseTimeout),
        ([(50, bytes(bad_cs))], dlt.ChecksumError),
        ([(50, other)], dlt.WrongAddress),
        ([(50, good[:-3])], dlt.FrameError),  # truncated
        ([(50, bytes(bad_bcd))], dlt.BcdError),
        ([(50, b"\xfe" * 40)], dlt.FrameError),
    ):
        r = _Rig(_fixed(pieces))
        raises(exc, r.read, _A, _E, 4)
        assert not r.m.busy


def test_deadline_and_trickling_bytes():
    a = addr_bytes(_A)
    good = reply(a, _E, 7, 4)
    # Inside the 500 ms turnaround: taken. After it: a timeout, and the late reply is
    # dropped before the next request.
    r = _Rig(_fixed([(600, good)]))
    assert r.read(_A, _E, 4) == 7
    r = _Rig(_fixed([(900, good)]))
    raises(dlt.ResponseTimeout, r.read, _A, _E, 4)
    # Bytes 400 ms apart keep the reply alive (the datasheet allows 500 ms), up to 3 s.
    r = _Rig(_fixed([(100 + 400 * k, good[k : k + 1]) for k in range(len(good))]))
    raises(dlt.FrameError, r.read, _A, _E, 4)
    assert r.m.elapsed_ms <= 3000 + 5
    r = _Rig(_fixed([(100 + 400 * k, good[2 * k : 2 * k + 2]) for k in range(5)]
                    + [(2100, good[10:])]))
    assert r.read(_A, _E, 4) == 7


def test_port_error():
    r = _Rig(_fixed([]))
    r.line.broken = True
    raises(dlt.PortError, r.read, _A, _E, 4)
    assert r.m.uart_errors == 1 and not r.m.busy


def test_garbage_flood_is_bounded():
    junk = bytes((i * 37 + 11) & 0xFF for i in range(4000))
    r = _Rig(_fixed([(1 + i // 64, junk[i : i + 64]) for i in range(0, len(junk), 64)]))
    cap = len(r.m.rx)
    raises(dlt.DltError, r.read, _A, _E, 4, False)
    assert len(r.m.rx) == cap


# --- the fuzz


def _reference(stream, addr, di, n, signed):
    """What a reading of the whole stream must give: ("value", v), ("abnormal", code),
    ("bcd", None) or None (no reply to this request in it). Written apart from the codec."""
    for i in range(len(stream)):
        f = stream[i:]
        if len(f) < 12 or f[0] != 0x68 or f[7] != 0x68 or f[9] > 200:
            continue
        ln = f[9]
        if len(f) < 12 + ln or sum(f[: 10 + ln]) & 0xFF != f[10 + ln] or f[11 + ln] != 0x16:
            continue
        c = f[8]
        if not c & 0x80 or c & 0x1F != 0x11 or bytes(f[1:7]) != addr:
            continue
        data = bytes((b - 0x33) & 0xFF for b in f[10 : 10 + ln])
        if c & 0x40:
            if ln == 1:
                return ("abnormal", data[0])
            continue
        if ln != 4 + n or data[:4] != bytes((di >> (8 * k)) & 0xFF for k in range(4)):
            continue
        v = data[4:]
        if any(b >> 4 > 9 or b & 15 > 9 for b in v[:-1]):
            return ("bcd", None)
        top = v[-1] & 0x7F if signed else v[-1]
        if top >> 4 > 9 or top & 15 > 9:
            return ("bcd", None)
        x = 0
        for k in range(n - 1, -1, -1):
            b = top if k == n - 1 else v[k]
            x = x * 100 + (b >> 4) * 10 + (b & 15)
        return ("value", -x if signed and v[-1] & 0x80 else x)
    return None


_ITEMS = ((0x00010000, 4, False), (0x02030000, 3, True), (0x02010100, 2, False),
          (0x02060000, 2, True))


def _case(rng, addr, other):
    di, n, signed = _ITEMS[rng.below(len(_ITEMS))]
    v = rng.below(10 ** (2 * n) // (2 if signed else 1))
    if signed and rng.chance(50):
        v = -v
    if signed and v >= 8 * 10 ** (2 * n - 1):
        v = v // 10
    good = bytearray(reply(addr, di, v, n, signed, wake=rng.below(5)))
    kind = rng.below(11)
    if kind == 0:  # garbage alone
        stream = rng.bytes(rng.below(300))
    elif kind == 1:  # truncated
        stream = bytes(good[: rng.below(len(good))])
    elif kind == 2:  # a flipped byte (checksum, data, address, length, ends)
        k = rng.below(len(good))
        good[k] ^= 1 << rng.below(8)
        stream = bytes(good)
    elif kind == 3:  # a wrong checksum
        good[-2] = (good[-2] + 1 + rng.below(255)) & 0xFF
        stream = bytes(good)
    elif kind == 4:  # another terminal's reply
        stream = reply(other, di, v, n, signed)
    elif kind == 5:  # an oversize or wrong length, checksum made right
        start = len(good) - (16 + n)
        good[start + 9] = 201 + rng.below(55) if rng.chance(50) else rng.below(30)
        good[-2] = sum(good[start:-2]) & 0xFF
        stream = bytes(good)
    elif kind == 6:  # noise around a good reply
        stream = rng.bytes(rng.below(40)) + bytes(good) + rng.bytes(rng.below(40))
    elif kind == 7:  # several random bytes changed
        for _ in range(1 + rng.below(4)):
            good[rng.below(len(good))] = rng.below(256)
        stream = bytes(good)
    elif kind == 8:  # noise that starts a header, then the reply
        stream = b"\x68" + rng.bytes(6) + b"\x68" + rng.bytes(rng.below(12)) + bytes(good)
    elif kind == 9:  # random value bytes (often not BCD), the checksum made right
        for k in range(n):
            good[-3 - k] = rng.below(256)
        good[-2] = sum(good[len(good) - (16 + n) : -2]) & 0xFF
        stream = bytes(good)
    else:  # an abnormal reply, or the right one
        stream = frame(addr, 0xD1, bytes([rng.below(256)])) if rng.chance(50) else bytes(good)
    return di, n, signed, stream


def test_fuzz_10000_seeded_cases():
    rng = Rng(645)
    addr = addr_bytes(_A)
    other = addr_bytes("000000000021")
    clock = VirtualClock()
    pieces = []
    line = FakeLine(clock, lambda req: pieces)
    m = dlt.Master(line, clock, baud=9600)
    seen = {}
    for case in range(10000):
        di, n, signed, stream = _case(rng, addr, other)
        pieces[:] = []
        at = 20
        i = 0
        while i < len(stream):
            k = 1 + rng.below(40)
            pieces.append((at, stream[i : i + k]))
            at += 1 + rng.below(30)  # distinct times: MicroPython sorts unstably
            i += k
        want = _reference(stream, addr, di, n, signed)
        got = None
        m.start_read(addr, di, n, signed)
        try:
            while not m.poll(clock.ticks_ms()):
                clock.advance_ms(10)
            got = ("value", m.value)
        except dlt.AbnormalReply as e:
            got = ("abnormal", e.code)
        except dlt.BcdError:
            got = ("bcd", None)
        except dlt.DltError:
            got = None
        assert got == want, (case, hexlify(stream), got, want)
        clock.advance_ms(1000)  # what was left on the line goes stale
        seen[want[0] if want else None] = seen.get(want[0] if want else None, 0) + 1
    # Every outcome was exercised.
    for k in ("value", "abnormal", "bcd", None):
        assert seen.get(k, 0) >= 50, seen
