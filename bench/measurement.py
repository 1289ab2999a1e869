# make bench ARGS=measurement: the accuracy table against the belt model (after
# commissioning by the calibration procedures) and the CPU time of the measurement step
# per poll, and of one vibration capture, on CPython and on MicroPython.
import time

from bench.util import TICKS, cpython, micropython

_POLLS = 20000

# Runs on both interpreters: the measurement job fed by the synthetic belt of the core
# tests (a loaded belt: the gate, the totalizer and production all work every poll).
_STEP = """
import sys
sys.path.insert(0, '.')
import math
from gateway.measure.measurement import Measurement
from hal.virtualclock import VirtualClock
from tests.core.synth import Belt, params
m = Measurement(params(damping_s=3.0, linearization=[[20.0, 0.5], [80.0, -0.3]]), VirtualClock(),
                lambda r, f: 0, lambda c, a, d: None)
m.start()
belt = Belt(load=lambda x: 60000 + (x % 4000) * 5)
for i in range(200):
    m.on_sample(belt.block())
polls = POLLS
t0 = ticks_us()
for i in range(polls):
    m.on_sample(belt.block())
t1 = ticks_us()
for i in range(polls):
    belt.block()
t2 = ticks_us()
print((ticks_diff(t1, t0) - ticks_diff(t2, t1)) / polls)
w = 2 * math.pi / 1000
wave = [int(40 * math.sin(w * 24.7 * i) + 30 * math.sin(w * 312 * i)) for i in range(256)]
t0 = ticks_us()
for i in range(20):
    m.on_capture(wave, 1000)
print(ticks_diff(ticks_us(), t0) / 20)
"""


def rows():
    from emulator import scale_runs as sr

    out = []
    t = time.time()
    rig, res = sr.commission()
    out.append(
        {
            "name": "commissioning: material factor found",
            "value": round(res["material"]["new"]["scale.material_factor"], 6),
            "unit": "",
            "note": "speed %+.3f %%, zero %+.3f %%, span %+.3f %% (%.0f s simulated)"
            % (
                res["speed"]["change_pct"],
                res["zero"]["change_pct"],
                res["span"]["change_pct"],
                rig.belt.t,
            ),
        }
    )
    for name, factory, seconds, opts in sr.SCENARIOS:
        row = sr.run_scenario(rig, name, factory, seconds, opts)
        out.append(
            {
                "name": "accuracy %s" % name,
                "value": round(sr.error_pct(row), 4),
                "unit": "%",
                "note": "%.1f revs, true %.3f kg, measured %.3f kg"
                % (row["revs"], row["true_kg"], row["measured_kg"]),
            }
        )
    kg, design_kg = sr.empty_belt(rig, revs=10)
    out.append(
        {
            "name": "empty belt 10 revs, of design-rate mass",
            "value": round(kg / design_kg * 100, 5),
            "unit": "%",
            "note": "%.3f kg against %.0f kg (limit 0.02 %%); %.0f s wall"
            % (kg, design_kg, time.time() - t),
        }
    )
    for interp, run in (("CPython", cpython), ("MicroPython", micropython)):
        lines = run(TICKS + _STEP.replace("POLLS", str(_POLLS))).split()
        out.append(
            {
                "name": "measurement step per poll, %s" % interp,
                "value": round(float(lines[0]), 1),
                "unit": "us",
                "note": "Measurement.on_sample, loaded belt, linearization on (this PC)",
            }
        )
        out.append(
            {
                "name": "vibration capture analysis, %s" % interp,
                "value": round(float(lines[1]) / 1000, 2),
                "unit": "ms",
                "note": "256-point fixed-point FFT, zone, peaks, hint",
            }
        )
    return out
