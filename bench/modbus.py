# Collector link: how fast the Modbus master polls the emulated collector, next to what
# the RS485 bus itself allows at 115200 baud, and the CPU one poll costs on each interpreter.
#   python -m bench modbus
import subprocess
import time

from bench.util import ROOT, micropython

_BAUD = 115200
_FAST_REQ = 8
_FAST_RESP = 55  # 25 registers

# One script for both interpreters: the driver polls an in-memory line that answers every
# fast-block read at once, so only the gateway's own work (request, framing, CRC, checks,
# unpacking into the Sample, callbacks) is timed.
_CPU_SCRIPT = """
import sys
sys.path.insert(0, '.')
import time
from drivers.collector import Collector
from hal.virtualclock import VirtualClock
from protocols import modbus_rtu as rtu
from tests.core import modbus_slave

class Line:
    def __init__(self):
        self.frames = []
        b = bytearray(256)
        for seq in range(1, 257):
            data = bytearray(50)
            data[2] = seq >> 8
            data[3] = seq & 255
            self.frames.append(bytes(b[: modbus_slave.build_response(b, 1, 4, data)]))
        self.exc = bytes(b[: modbus_slave.build_exception(b, 1, 3, 2)])
        self.k = 0
        self.out = None
    def write(self, data):
        if data[1] == 4 and data[3] == 0:
            self.out = self.frames[self.k & 255]
            self.k += 1
        else:
            self.out = self.exc
    def readinto(self, buf, timeout_ms):
        out = self.out
        if out is None:
            return 0
        self.out = None
        n = len(out)
        buf[:n] = out
        return n
    def discard_input(self):
        return 0

clock = VirtualClock()
coll = Collector(Line(), clock, baud=115200, identity_s=100000, capture_s=100000)
got = [0]
def sample(s):
    got[0] += 1
coll.on_sample = sample
N = %d
for _ in range(20):
    coll.run(clock.ticks_ms()); clock.advance_ms(100)
if hasattr(time, "ticks_us"):
    clk = time.ticks_us
    diff = time.ticks_diff
else:
    clk = lambda: time.process_time() * 1e6
    diff = lambda a, b: a - b
t0 = clk()
for _ in range(N):
    coll.run(clock.ticks_ms())
    clock.advance_ms(100)
us = diff(clk(), t0)
print(us / N, coll.polls, got[0])
"""

# Back-to-back fast-block reads against the emulator over a port, on MicroPython.
_MP_POLL_SCRIPT = """
import sys
sys.path.insert(0, '.')
import time
from hal.clock import Clock
from hal.uart import _split_socket_url
from hal.uart_polled import SocketUart, TtyUart
from protocols import modbus_rtu as rtu
url = %r
u = SocketUart(*_split_socket_url(url)) if url.startswith('socket://') else TtyUart(url, 115200)
m = rtu.Master(u, Clock(), 115200, 200)
m.read(1, 4, 0, 25)
n = 0
t0 = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), t0) < %d:
    try:
        m.read(1, 4, 0, 25)
        n += 1
    except rtu.ModbusError:
        pass
print(n * 1000 / time.ticks_diff(time.ticks_ms(), t0))
"""


def bus_limit_polls_per_s(baud=_BAUD):
    from protocols.modbus_rtu import bus_time_us

    return 1e6 / bus_time_us(baud, _FAST_REQ, _FAST_RESP)


def _cpython_polls_per_s(url, seconds):
    from hal.clock import Clock
    from hal.uart_pyserial import PySerialUart
    from protocols import modbus_rtu as rtu

    u = PySerialUart(url, _BAUD)
    m = rtu.Master(u, Clock(), _BAUD, 200)
    m.read(1, 4, 0, 25)
    n = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            m.read(1, 4, 0, 25)
            n += 1
        except rtu.ModbusError:
            pass
    rate = n / (time.monotonic() - t0)
    u.close()
    return rate


def _cpu_cpython(n):
    import sys

    r = subprocess.run(
        [sys.executable, "-c", _CPU_SCRIPT % n],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(r.stdout.split()[0])


def rows():
    from emulator.belt import Belt
    from emulator.collector import CollectorEmulator

    limit = bus_limit_polls_per_s()
    out = [
        {
            "name": "bus limit: fast-block polls/s at 115200 8N1",
            "value": round(limit, 1),
            "unit": "1/s",
            "note": "8+55 bytes, 2 x 1.75 ms silence, 5 ms turnaround",
        }
    ]
    emu = CollectorEmulator(Belt(seed=1), speed=1.0)
    emu.faults.turnaround_ms = 0
    try:
        pty = emu.start_pty()
        tcp = "socket://%s:%d" % emu.start_tcp()
        for label, url in (("pty", pty), ("TCP", tcp)):
            rate = _cpython_polls_per_s(url, 3.0)
            out.append(
                {
                    "name": "fast-block polls/s vs emulator, CPython, %s" % label,
                    "value": round(rate, 1),
                    "unit": "1/s",
                    "note": "ratio to bus limit %.2f (emulator: pymodbus, no turnaround)"
                    % (rate / limit),
                }
            )
        for label, url in (("pty", pty), ("TCP", tcp)):
            rate = float(micropython(_MP_POLL_SCRIPT % (url, 3000)).split()[0])
            out.append(
                {
                    "name": "fast-block polls/s vs emulator, MicroPython, %s" % label,
                    "value": round(rate, 1),
                    "unit": "1/s",
                    "note": "ratio to bus limit %.2f" % (rate / limit),
                }
            )
    finally:
        emu.stop()
    # The machine is shared: the best of 3 runs is the figure least disturbed by others.
    n = 20000
    cp = min(_cpu_cpython(n) for _ in range(3))
    out.append(
        {
            "name": "CPU per poll, CPython (driver + codec, in-memory line)",
            "value": round(cp, 1),
            "unit": "us",
            "note": "best of 3 means of %d polls (process time)" % n,
        }
    )
    mp = min(float(micropython(_CPU_SCRIPT % n).split()[0]) for _ in range(3))
    out.append(
        {
            "name": "CPU per poll, MicroPython unix (driver + codec)",
            "value": round(mp, 1),
            "unit": "us",
            "note": "best of 3 means of %d polls (ticks_us); a board is slower by its clock" % n,
        }
    )
    return out
