# Power terminals (docs/power.md): the bus time per round for 1, 4 and 16 terminals at 2400
# and 9600 baud next to the datasheet's application note, one round against the emulated
# terminals (the dlt645 package) in real time, and what one run() of the meter job costs
# the loop with a quiet, a hung and a chattering bus. The heap the power side adds:
# bench/memory.py.
#   python -m bench meters
import os
import subprocess
import time

from bench.util import ROOT, micropython

# The datasheet: ~0.25 s a read at 2400 (10 items x 16 terminals ~40 s a round), ~12 s
# a round at 9600. Our rounds read 22 items (20 for the belt drive, whose power and energy
# go every 2 s besides), so they are compared per read.
_NOTE = {2400: 40.0 / 160, 9600: 12.0 / 160}

# Simulated time, the datasheet's turnaround (50 ms typical): what the schedule makes of
# the bus, the same on every machine.
_ROUND_SCRIPT = """
import sys
sys.path.insert(0, '.')
from drivers import meters as mt
from hal.virtualclock import VirtualClock
from tests.core.fakeline import FakeLine
from tests.core.fakemeter import Bus, Terminal
for baud in (2400, 9600):
    for n in (1, 4, 16):
        clock = VirtualClock()
        fakes = [Terminal("%012d" % (12 + k)) for k in range(n)]
        for f in fakes:
            f.delay_ms = 50
        cfg = [{"address": f.digits, "role": "belt_drive" if k == 0 else "other",
                "ct_ratio": 1.0, "pt_ratio": 1.0, "nominal_v": 220.0} for k, f in enumerate(fakes)]
        m = mt.Meters(FakeLine(clock, Bus(fakes, baud)), clock, cfg, baud=baud)
        gaps = []
        last = [None]
        while m.rounds < 2:
            before = m.terminals[0].read_at[mt.P]
            m.run(clock.ticks_ms())
            if m.terminals[0].read_at[mt.P] != before:
                if last[0] is not None:
                    gaps.append(clock.ticks_diff(m.terminals[0].read_at[mt.P], last[0]))
                last[0] = m.terminals[0].read_at[mt.P]
            clock.advance_ms(5)
        print("ROUND", baud, n, m.round_ms, m.round_bus_ms, m.reads // m.rounds, max(gaps))
"""

# Real time, one interpreter: run() of the meter job with the bus quiet between replies,
# hung (nothing ever arrives) and chattering (64 bytes of noise at every call).
_COST_SCRIPT = """
import sys
sys.path.insert(0, '.')
import time
from drivers import meters as mt
from hal.clock import Clock

class Line:
    def __init__(self, mode):
        self.mode = mode
        self.k = 7
    def write(self, data):
        pass
    def readinto(self, buf, timeout_ms):
        if self.mode != "chatter":
            return 0
        for i in range(64):
            self.k = (self.k * 1103515245 + 12345) & 0x7FFFFFFF
            buf[i] = (self.k >> 16) & 0xFF
        return 64
    def discard_input(self):
        return 0

cfg = [{"address": "%012d" % (12 + k), "role": "belt_drive" if k == 0 else "other",
        "ct_ratio": 1.0, "pt_ratio": 1.0, "nominal_v": 220.0} for k in range(2)]
ticks_us = time.ticks_us if hasattr(time, "ticks_us") else lambda: int(time.perf_counter() * 1e6)
for mode in ("hung", "chatter"):
    clock = Clock()
    m = mt.Meters(Line(mode), clock, cfg, baud=2400)
    n = 0
    total = 0
    worst = 0
    end = time.time() + 3
    while time.time() < end:
        t0 = ticks_us()
        m.run(clock.ticks_ms())
        d = ticks_us() - t0
        total += d
        n += 1
        if d > worst:
            worst = d
        time.sleep(0.002)
    print("COST", mode, total // n, worst, n, m.failures)
"""

def _rounds():
    out = []
    for line in micropython(_ROUND_SCRIPT, timeout=900).splitlines():
        if not line.startswith("ROUND"):
            continue
        _, baud, n, round_ms, bus_ms, reads, gap = line.split()
        baud, n, reads = int(baud), int(n), int(reads)
        per_read = int(bus_ms) / 1000 / reads
        out.append({"name": "bus round, %d terminal%s at %d baud" % (n, "s"[: n > 1], baud),
                    "value": int(round_ms) / 1000, "unit": "s",
                    "note": "%d reads, %.3f s a read (datasheet ~%.3f s); belt drive's power"
                            " at most %.1f s old" % (reads, per_read, _NOTE[baud],
                                                     int(gap) / 1000)})
    return out


def _emulated_round():
    # One terminal on the emulated bus (the dlt645 package answering) at 2400 baud.
    from drivers.meters import Meters
    from emulator.belt import Belt
    from emulator.meters import site_bus
    from emulator.scale_runs import Manual
    from hal.board import open_uart
    from hal.clock import Clock

    belt = Belt(seed=1, profile=Manual(800.0, 2.5))
    bus = site_bus(belt, turnaround_ms=50)
    host, port = bus.start_tcp("127.0.0.1", 0)
    try:
        clock = Clock()
        u = open_uart("socket://%s:%d" % (host, port), 2400, "E")
        m = Meters(u, clock, [bus_terminal(bus.terminals[0])], baud=2400)
        end = time.time() + 60
        while m.rounds < 2 and time.time() < end:
            m.run(clock.ticks_ms())
            time.sleep(0.01)
        u.close()
        return {"name": "bus round, 1 terminal at 2400 baud, emulated (dlt645 package)",
                "value": m.round_ms / 1000, "unit": "s",
                "note": "%d reads a round, real time over TCP" % (m.reads // max(1, m.rounds))}
    finally:
        bus.stop()


def bus_terminal(t):
    return {"address": t.address, "role": t.role, "ct_ratio": t.ct, "pt_ratio": t.pt,
            "nominal_v": t.nominal_v}


def _costs():
    out = []
    for interp, runner in (("micropython", lambda s: micropython(s, timeout=120)),
                           ("cpython", _cpython)):
        for line in runner(_COST_SCRIPT).splitlines():
            if line.startswith("COST"):
                _, mode, mean, worst, n, fails = line.split()
                out.append({"name": "meter job run(), %s bus, %s" % (mode, interp),
                            "value": int(mean), "unit": "us",
                            "note": "worst %s us over %s runs (the collector's period: 100 ms)"
                                    % (worst, n)})
    return out


def _cpython(script):
    r = subprocess.run([os.path.join(os.path.dirname(__import__("sys").executable), "python"),
                        "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return r.stdout


def rows():
    return _rounds() + [_emulated_round()] + _costs()
