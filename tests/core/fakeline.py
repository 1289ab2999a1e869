# A hal.uart double on a VirtualClock, for the Modbus master's and the collector driver's
# tests: a slave function answers each request with (delay_ms, bytes) pieces that arrive at
# those virtual times.
import struct

from protocols import modbus_rtu as rtu
from tests.core import modbus_slave
from tests.core.util import Rng  # noqa: F401  (the driver's tests take it from here)


class FakeLine:
    def __init__(self, clock, slave):
        self.clock = clock
        self.slave = slave  # slave(request bytes) -> list of (delay_ms, bytes)
        self._q = []  # [arrival_ms, bytes, offset], in arrival order
        self.requests = []  # the latest 64
        self.broken = False  # True: every call raises OSError, as an unplugged adapter

    def _now(self):
        return self.clock.ticks_ms()

    def _due(self, at):
        return self.clock.ticks_diff(at, self._now()) <= 0

    def write(self, data):
        if self.broken:
            raise OSError("unplugged")
        req = bytes(data)
        self.requests.append(req)
        if len(self.requests) > 64:
            self.requests.pop(0)
        now = self._now()
        for delay, chunk in self.slave(req):
            if chunk:
                self._q.append([self.clock.ticks_add(now, delay), chunk, 0])
        self._q.sort(key=lambda e: self.clock.ticks_diff(e[0], now))

    def readinto(self, buf, timeout_ms):
        if self.broken:
            raise OSError("unplugged")
        if not self._q or not self._due(self._q[0][0]):
            wait = timeout_ms
            if self._q:
                d = self.clock.ticks_diff(self._q[0][0], self._now())
                if d <= timeout_ms:
                    wait = d
            self.clock.advance_ms(max(wait, 0))
            if not self._q or not self._due(self._q[0][0]):
                return 0
        n = 0
        while self._q and self._due(self._q[0][0]) and n < len(buf):
            e = self._q[0]
            take = min(len(e[1]) - e[2], len(buf) - n)
            buf[n : n + take] = e[1][e[2] : e[2] + take]
            n += take
            e[2] += take
            if e[2] == len(e[1]):
                self._q.pop(0)
        return n

    def discard_input(self):
        if self.broken:
            raise OSError("unplugged")
        n = 0
        while self._q and self._due(self._q[0][0]):
            e = self._q.pop(0)
            n += len(e[1]) - e[2]
        return n

    def close(self):
        pass


class RegisterSlave:
    """A slave with input registers 0..24 and 100..355, holding 1000..1004, 1010..1023,
    1100..1101, 1200, 2 coils and 2 discrete inputs. Register values follow from `block_seq`
    so a test can tell any value that did not come from a genuine frame."""

    def __init__(self, address=1, clock=None):
        self.address = address
        self.clock = clock  # given: block_seq moves every 100 ms and wave_seq every 2 s
        self._t0 = clock.ticks_ms() if clock else 0
        self._seq0 = self.block_seq = 1000
        self._wave0 = self.wave_seq = 7
        self.coils = [False, False]
        self.status = 0
        self.uptime_s = 100
        self.config_counter = 3
        self.holding = {}
        for i, v in enumerate((0x4B4A, 0x0105, 0x015F, 0x90A1, 203)):
            self.holding[1000 + i] = v
        for i in range(14):
            self.holding[1010 + i] = 0x1000 + i
        self.holding[1100] = address
        self.holding[1101] = 0
        self.holding[1200] = 0
        self.busy_next = 0  # answer this many requests with exception 06
        self.writes = []
        self._buf = bytearray(rtu.MAX_ADU)

    @staticmethod
    def cell(seq, i):
        return ((seq * 7919 + i * 104729) % 400000) - 200000

    def input_regs(self):
        s = self.block_seq
        regs = bytearray(50)
        struct.pack_into(
            ">IiiiiIIHHHHhIHHHH", regs, 0, s,
            self.cell(s, 0), self.cell(s, 1), self.cell(s, 2), self.cell(s, 3),
            (s * 25 + 0xFFFF0000) & 0xFFFFFFFF, 25000, 240, 1, self.status, 12000, 231,
            self.uptime_s, self.config_counter, self.wave_seq, 256, 1000,
        )
        return regs

    @staticmethod
    def wave_value(wave_seq, k):
        return ((wave_seq * 31 + k * 17) % 2001) - 1000

    def register(self, fc, a):
        if fc == rtu.READ_INPUT:
            if 0 <= a < 25:
                return struct.unpack_from(">H", self.input_regs(), 2 * a)[0]
            if 100 <= a < 356:
                return self.wave_value(self.wave_seq, a - 100) & 0xFFFF
            return None
        return self.holding.get(a)

    def restart(self):
        self._t0 = self.clock.ticks_ms()
        self._seq0 = self._wave0 = 0
        self.uptime_s = 0
        self.status |= 0x100
        self.coils = [False, False]

    def _advance(self):
        ms = self.clock.ticks_diff(self.clock.ticks_ms(), self._t0)
        self.block_seq = (self._seq0 + ms // 100) & 0xFFFFFFFF
        self.wave_seq = (self._wave0 + ms // 2000) & 0xFFFF

    def answer(self, req):
        """The frame this slave sends for a request (None if it stays silent)."""
        b = self._buf
        if self.clock is not None:
            self._advance()
        try:
            slave, fc, addr, arg, values = modbus_slave.parse_request(req, len(req))
        except rtu.FrameError:
            return None
        if slave != self.address:
            return None
        if self.busy_next:
            self.busy_next -= 1
            return bytes(b[: modbus_slave.build_exception(b, slave, fc, 6)])
        if fc in (rtu.READ_HOLDING, rtu.READ_INPUT):
            data = bytearray()
            for a in range(addr, addr + arg):
                v = self.register(fc, a)
                if v is None:
                    return bytes(b[: modbus_slave.build_exception(b, slave, fc, 2)])
                data += struct.pack(">H", v)
            return bytes(b[: modbus_slave.build_response(b, slave, fc, data)])
        if fc in (rtu.READ_COILS, rtu.READ_DISCRETE_INPUTS):
            if addr + arg > 2:
                return bytes(b[: modbus_slave.build_exception(b, slave, fc, 2)])
            bits = self.coils if fc == rtu.READ_COILS else [True, False]
            v = 0
            for i in range(arg):
                if bits[addr + i]:
                    v |= 1 << i
            return bytes(b[: modbus_slave.build_response(b, slave, fc, bytes([v]))])
        if fc == rtu.WRITE_COIL:
            if addr > 1 or arg not in (0, 0xFF00):
                return bytes(b[: modbus_slave.build_exception(b, slave, fc, 2 if addr > 1 else 3)])
            self.coils[addr] = arg == 0xFF00
        elif fc == rtu.WRITE_REGISTER:
            if addr not in (1100, 1101, 1200):
                return bytes(b[: modbus_slave.build_exception(b, slave, fc, 2)])
            if addr == 1200:
                if arg != 0xA5A5:
                    return bytes(b[: modbus_slave.build_exception(b, slave, fc, 3)])
                self.status &= ~0x100
            self.holding[addr] = arg
        elif fc == modbus_slave.WRITE_REGISTERS:
            for i, v in enumerate(values):
                if addr + i not in (1100, 1101):
                    return bytes(b[: modbus_slave.build_exception(b, slave, fc, 2)])
            for i, v in enumerate(values):
                self.holding[addr + i] = v
        else:
            return bytes(b[: modbus_slave.build_exception(b, slave, fc, 1)])
        self.writes.append((fc, addr, arg))
        return bytes(b[: modbus_slave.build_response(b, slave, fc, req[2:6])])

    def __call__(self, req):
        frame = self.answer(req)
        return [(5, frame)] if frame else []
