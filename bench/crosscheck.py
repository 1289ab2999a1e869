# make bench ARGS=crosscheck: what the output-against-power cross-check costs, on CPython
# and on MicroPython: one production interval, one drive power reading, one window closing
# (gateway/power/judge.py: judge, learn, solve; the module already loaded), the bytes each
# allocates, the import cost of both modules, and the size of its state in the checkpoint.
from bench.util import TICKS, cpython, micropython
from tests.core.test_crosscheck import FLAT

# Runs on both interpreters: a learned model, then each operation timed many times.
_SCRIPT = """
import gc, json, sys
sys.path.insert(0, '.')
try:
    alloc = gc.mem_alloc
except AttributeError:
    alloc = None
gc.collect()
a0 = alloc() if alloc else 0
from gateway.power.crosscheck import CrossCheck
gc.collect()
imported = alloc() - a0 if alloc else 0
a0 = alloc() if alloc else 0
from gateway.power import judge
gc.collect()
imported_judge = alloc() - a0 if alloc else 0
flat = FLAT
cc = CrossCheck(lambda r, f: None, lambda c, a, d: None)
cc.apply_params(flat)
loads = (0.3, 0.9, 0.55, 1.1, 0.2, 0.75, 0.45, 1.0)
speeds = (2.5, 2.0, 2.5, 3.0)
for i in range(200):
    mps = speeds[i % 4]
    for k in range(10):
        mass = loads[i % 8] * 1000 / 3.6 * 60
        kwh = 12.0 / 60 + 3.0 * mps * 60 / 1000 + 0.07 * mass / 1000
        cc.on_interval(60, mps * 60, mass, kwh, 12, 0)
assert cc.ready


def timed(fn, n):
    b = 0
    if alloc:
        gc.collect()
        gc.disable()
        a = alloc()
        for i in range(50):
            fn(i)
        b = (alloc() - a) // 50
        gc.enable()
    gc.collect()
    t0 = ticks_us()
    for i in range(n):
        fn(i)
    return ticks_diff(ticks_us(), t0) / n, b


cc.window_h = 1e9  # intervals only, no window closes


def interval(i):
    cc.on_interval(60, 150.0, 10000.0 + i, 2.0, 12, 0)


def reading(i):
    cc.on_power(80.0 + (i & 7), 2.5, 700.0, 5)


def window(i):
    # An hour at 60 % of design and 2.5 m/s, the scale a little off by turns.
    m = 600.0 * (1 + (i & 3) / 100)
    cc.wsum[:] = [1.0, 9.0, m, 81.0, 1.0, 9.0, m, 81.0]
    judge.close_window(cc)


r = [timed(interval, 2000), timed(reading, 2000)]
r.append(timed(window, 500))
print(imported, imported_judge, len(json.dumps(cc.snapshot())))
for us, b in r:
    print(us, b)
"""


def rows():
    script = "FLAT = %r\n%s%s" % (FLAT, TICKS, _SCRIPT)
    out = []
    for interp, run in (("CPython", cpython), ("MicroPython", micropython)):
        lines = run(script).splitlines()
        imported, imported_judge, state = [int(x) for x in lines[0].split()]
        figs = [[float(x) for x in line.split()] for line in lines[1:]]
        for (us, b), what in zip(figs, ("one production interval", "one drive power reading",
                                        "one window closing (judge, learn, solve)")):
            out.append({"name": "crosscheck %s, %s" % (what, interp), "value": round(us, 1),
                        "unit": "us", "note": "%d B allocated" % b if interp == "MicroPython"
                        else "this PC"})
        if interp == "MicroPython":
            out.append({"name": "crosscheck import cost (source), MicroPython",
                        "value": imported, "unit": "B", "note": "resident; compiled from .py"})
            out.append({"name": "crosscheck judge.py import cost (source), MicroPython",
                        "value": imported_judge, "unit": "B",
                        "note": "while a window closes; compiled from .py"})
            out.append({"name": "crosscheck state in the checkpoint", "value": state,
                        "unit": "B", "note": "JSON of snapshot()"})
    return out
