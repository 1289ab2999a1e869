# Heap figures of the real gateway on the MicroPython unix port, where imported bytecode
# lives in the GC heap: what each module costs when imported from the flashed image (.mpy
# files), with the names (qstrs) it interns; what the modules loaded on demand cost while
# they are in; the heap the power side adds (issue 15); start-up against steady state; and
# a quick bisection of the smallest -X heapsize at which a 60 s run against the emulated
# site stays healthy (polling, uploading, no MemoryError). The e2e bisection bench is the
# official figure; this one is a quick check.
#   python -m bench memory            the rows of make bench
#   python -m bench.memory modules    the per-module table, largest first
import os
import re
import subprocess
import sys
import tempfile

from tests.harness import memsite

_RUN_S = 60
_STEP_K = 16

# What the gateway keeps imported on the unix port: the entry point, the app and what its
# start-up imports for the jobs, the hardware's modules and the UART variant; with
# terminals the power side's resident part.
RESIDENT = ("gateway.__main__", "gateway.app", "gateway.compose", "hal.board", "hal.uart_polled")
POWER = ("gateway.power.energy", "drivers.meters", "gateway.power.crosscheck")
# Loaded for the start only, then forgotten (what they import stays).
START_UP = ("gateway.boot", "gateway.compose", "gateway.start", "hal.board")
# Loaded for a call and forgotten (docs/memory.md), each measured on top of the above.
ON_DEMAND = ("gateway.config", "gateway.store.recovery", "gateway.store.rollover",
             "gateway.health.registration", "gateway.power.records",
             "gateway.power.checks", "gateway.health.report", "gateway.control",
             "gateway.center.intake", "gateway.measure.calibration", "gateway.measure.spectrum",
             "gateway.power.judge", "gateway.center.linkcheck", "gateway.cli.session")

# Under MicroPython in the image: the order in which the roots' modules finish loading
# (a module after everything it imports), through a hook on __import__.
_DISCOVER = """
import builtins, sys
sys.path.insert(0, ".")
_import = builtins.__import__
order = []


def hook(name, g=None, l=None, fromlist=(), level=0):
    before = set(sys.modules)
    m = _import(name, g, l, fromlist, level)
    new = [k for k in sys.modules if k not in before and k not in order]
    new.sort(key=lambda k: k.count("."))  # a package before its modules
    order.extend(new)
    return m


builtins.__import__ = hook
for root in ROOTS:
    __import__(root)
print("ORDER", ",".join(order))
"""

# Each module imported alone, in that order (so it costs only itself), with the heap in
# use after a collection and the qstr figures before and after; then each on-demand
# module imported on top and forgotten again. The names it interned stay.
_MEASURE = """
import gc, sys, micropython
sys.path.insert(0, ".")


def forget(before):
    for name in [k for k in sys.modules if k not in before]:
        del sys.modules[name]
        pkg, _, attr = name.rpartition(".")
        if pkg in sys.modules and hasattr(sys.modules[pkg], attr):
            delattr(sys.modules[pkg], attr)


def mark(tag):
    gc.collect()
    print(tag, gc.mem_alloc(), end=" ")
    micropython.qstr_info()


# As gateway/boot.py: the configuration read first, its keys interned, the schema forgotten.
from gateway import config
cfg = dict(**config.validate(CONFIG))
forget(("gateway", "gateway.errors", "hal", "hal.compat", "gateway.ondemand"))
mark("START -")
for name in RESIDENT:
    __import__(name)
    mark("MOD " + name)
for name in ON_DEMAND:
    before = set(sys.modules)
    __import__(name)
    mark("LOAD " + name)
    forget(before)
    mark("FORGOT " + name)
"""
# The least configuration there is, with two terminals (what the keys are interned from).
_CONFIG = {"device_id": 1, "key_file": "-", "data_dir": "/tmp/gw-bench-mem-data",
           "collector": {"port": "socket://127.0.0.1:1"},
           "center": {"host": "127.0.0.1", "port": 1},
           "meters": {"port": "socket://127.0.0.1:2",
                      "terminals": [{"address": "000000000012", "role": "belt_drive"},
                                    {"address": "000000000034", "role": "mine_total"}]}}
_MARK = re.compile(r"^(\w+) (\S+) (\d+) qstr pool: n_pool=(\d+), n_qstr=(\d+), "
                   r"n_str_data_bytes=(\d+), n_total_bytes=(\d+)", re.M)
# A qstr pool entry on the 64-bit port: a pointer, a hash (2 bytes) and a length (1 byte).
_QSTR_ENTRY = 11


def _micropython(script, image):
    env = {k: v for k, v in os.environ.items() if k != "MICROPYPATH"}
    r = subprocess.run([memsite.MICROPYTHON, "-X", "heapsize=2M", "-c", script], cwd=image,
                       env=env, capture_output=True, text=True, timeout=120)
    if r.returncode:
        raise RuntimeError(r.stdout[-2000:] + r.stderr[-2000:])
    return r.stdout


def _script(template, **names):
    return "".join("%s = %r\n" % kv for kv in names.items()) + template


def module_costs(image, roots=RESIDENT + POWER, start_up=START_UP, on_demand=ON_DEMAND):
    """Per module, in import order: {name, kind ("resident", "start-up" or "on demand"),
    heap (bytes it added after a collection, pool growth included), names (qstrs it
    interned), name_bytes (their text), pool (bytes of qstr pools opened by it), code (heap
    less what the names took: bytecode, functions, classes, constants), mpy (file size)}.
    Start-up and on-demand modules are measured on top of the resident set, one at a time."""
    out = _micropython(_script(_DISCOVER, ROOTS=roots), image)
    order = [m for m in out.split("ORDER ")[-1].split()[0].split(",") if m not in start_up]
    out = _micropython(_script(_MEASURE, RESIDENT=order, ON_DEMAND=start_up + on_demand,
                               CONFIG=_CONFIG), image)
    marks = _MARK.findall(out)
    rows = []
    for prev, (step, name, alloc, pools, n, text, total) in zip(marks, marks[1:]):
        if step == "FORGOT":
            continue
        d = [int(a) - int(b) for a, b in zip((alloc, pools, n, text, total), prev[2:])]
        pool = d[4] - d[3]  # the pools' growth: entries of the pools opened
        kind = "resident" if step == "MOD" else "start-up" if name in start_up else "on demand"
        rows.append({"name": name, "kind": kind, "heap": d[0], "names": d[2],
                     "name_bytes": d[3], "pool": pool if d[1] else 0, "code": d[0] - d[4],
                     "mpy": _mpy_size(image, name)})
    return rows


def _mpy_size(image, name):
    base = os.path.join(image, *name.split("."))
    for path in (base + ".mpy", os.path.join(base, "__init__.mpy")):
        if os.path.exists(path):
            return os.path.getsize(path)
    return 0


def own_cost(row):
    """A module's share of the heap: its code and objects, its names' text and their
    entries in a pool (pools open in lumps, shared by whoever comes after)."""
    return row["code"] + row["name_bytes"] + row["names"] * _QSTR_ENTRY


def power_share(rows):
    mods = [r for r in rows if r["kind"] == "resident" and _is_power(r["name"])]
    return sum(own_cost(r) for r in mods), sum(r["names"] for r in mods)


def _is_power(name):
    return name.startswith(("gateway.power", "drivers.meters", "protocols.dlt645"))


def table(rows, top=None):
    lines = ["%-30s %-9s %7s %7s %6s %6s %7s" % ("module", "", "own B", "heap B", "names",
                                                  "pool", ".mpy")]
    for r in sorted(rows, key=own_cost, reverse=True)[:top]:
        lines.append("%-30s %-9s %7d %7d %6d %6d %7d" % (
            r["name"], r["kind"], own_cost(r), r["heap"], r["names"], r["pool"], r["mpy"]))
    res = [r for r in rows if r["kind"] == "resident"]
    lines.append("resident: %d B in %d modules, %d names, pools %d B" % (
        sum(r["heap"] for r in res), len(res), sum(r["names"] for r in res),
        sum(r["pool"] for r in res)))
    return "\n".join(lines)


def _import_cost(image, roots=RESIDENT):
    return sum(r["heap"] for r in module_costs(image, roots, ()))


def _run(image, heap_k, seconds=_RUN_S, meters=False, with_session=True, cuts=()):
    with tempfile.TemporaryDirectory() as tmp:
        return memsite.run(tmp, image, "%dK" % heap_k if heap_k else None, seconds,
                           with_session=with_session, meters=meters, cuts=cuts)


def smallest_heap_k(image, lo_k=176, hi_k=336, meters=False):
    """The smallest heap (KiB, a multiple of _STEP_K) at which a run stays healthy,
    technician session included; None if even hi_k fails."""
    if not _run(image, hi_k, meters=meters).ok:
        return None
    while hi_k - lo_k > _STEP_K:
        mid = (lo_k + hi_k) // 2 // _STEP_K * _STEP_K
        if _run(image, mid, meters=meters).ok:
            hi_k = mid
        else:
            lo_k = mid
    return hi_k


def _image():
    return memsite.build_image(os.path.join(tempfile.gettempdir(), "gw-bench-mem-image"))


def rows():
    image = _image()
    costs = module_costs(image)
    resident = [r for r in costs if r["kind"] == "resident"]
    plain = [r for r in resident if not _is_power(r["name"])]
    out = [{"name": "resident set: import cost (.mpy image)",
            "value": sum(r["heap"] for r in plain), "unit": "B",
            "note": "%d modules, %d names; without terminals" % (
                len(plain), sum(r["names"] for r in plain))}]
    power_b, power_names = power_share(costs)
    out.append({"name": "power side: import cost, resident (codec, driver, energy)",
                "value": power_b, "unit": "B",
                "note": "only with terminals; %d names (their pool entries included)"
                        % power_names})
    for r in costs:
        if r["kind"] == "on demand":
            out.append({"name": "on demand: %s" % r["name"], "value": r["heap"], "unit": "B",
                        "note": "while loaded; %d names stay interned" % r["names"]})
    lives = {}
    for meters in (False, True):
        # Default 2 MB heap: the session ends and the CLI unloads.
        r = _run(image, None, 75, meters=meters)
        fig = r.fig
        lives[meters] = fig.get("live")
        tag = ", two terminals" if meters else ""
        out.append({"name": "live heap after start-up" + tag,
                    "value": (fig.get("started") or [None])[0], "unit": "B",
                    "note": "gc.mem_alloc() after gc.collect()"})
        out.append({"name": "live heap, steady state (CLI unloaded)" + tag,
                    "value": fig.get("live"), "unit": "B", "note": "75 s run, last probe"})
        out.append({"name": "live heap, peak of the 5 s probes" + tag,
                    "value": fig.get("live_max"), "unit": "B",
                    "note": "includes a technician session (CLI loaded)"})
    out.append({"name": "power side: live heap it adds at steady state",
                "value": (lives[True] or 0) - (lives[False] or 0), "unit": "B",
                "note": "two terminals against none"})
    # The acceptance's setting: 256K, two terminals, power cuts (a restart restores).
    r = _run(image, 256, _RUN_S, meters=True, with_session=False, cuts=(20, 35))
    out.append({"name": "256K, two terminals, 2 cuts: least free heap at steady state",
                "value": r.fig.get("free_min") or -1, "unit": "B",
                "note": "healthy: %s; live after each start %s" % (r.ok, r.fig.get("started"))})
    for meters in (False, True):
        small = smallest_heap_k(image, meters=meters)
        out.append({"name": "smallest healthy -X heapsize (60 s, CLI session)"
                            + (", two terminals" if meters else ""),
                    "value": small if small is not None else -1, "unit": "KiB",
                    "note": "bisection in %d KiB steps; -1: not even 336 KiB" % _STEP_K})
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["modules"]:
        print(table(module_costs(_image())))
    else:
        for row in rows():
            print(row)
