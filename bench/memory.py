# Heap figures of the real gateway on the MicroPython unix port, where imported bytecode
# lives in the GC heap: the import cost of the resident set (a flash.py image of .mpy
# files), the live heap at steady state and during a technician's CLI session, and a
# quick bisection of the smallest -X heapsize at which a 60 s run against the emulated
# site stays healthy (polling, uploading, no MemoryError). The e2e bisection bench is
# the official figure; this one is a quick check.
import os
import subprocess
import tempfile

from tests.harness import memsite

_RUN_S = 60
_STEP_K = 16

_IMPORT = """
import gc, sys
sys.path.insert(0, ".")
gc.collect()
a = gc.mem_alloc()
import gateway.__main__, gateway.app, hal.board, hal.uart_polled
gc.collect()
print(gc.mem_alloc() - a)
"""


def _import_cost(image):
    env = {k: v for k, v in os.environ.items() if k != "MICROPYPATH"}
    r = subprocess.run([memsite.MICROPYTHON, "-c", _IMPORT], cwd=image, env=env,
                       capture_output=True, text=True, timeout=120)
    return int(r.stdout.split()[-1])


def _run(image, heap_k, seconds=_RUN_S):
    with tempfile.TemporaryDirectory() as tmp:
        return memsite.run(tmp, image, "%dK" % heap_k if heap_k else None, seconds)


def smallest_heap_k(image, lo_k=128, hi_k=512):
    """The smallest heap (KiB, a multiple of _STEP_K) at which a run stays healthy,
    technician session included; None if even hi_k fails."""
    if not _run(image, hi_k).ok:
        return None
    while hi_k - lo_k > _STEP_K:
        mid = (lo_k + hi_k) // 2 // _STEP_K * _STEP_K
        if _run(image, mid).ok:
            hi_k = mid
        else:
            lo_k = mid
    return hi_k


def rows():
    image = memsite.build_image(os.path.join(tempfile.gettempdir(), "gw-bench-mem-image"))
    out = [{"name": "resident set: import cost (.mpy image)", "value": _import_cost(image),
            "unit": "B", "note": "gateway.__main__, app, board, uart (gc.mem_alloc)"}]
    r = _run(image, None, 75)  # default 2 MB heap: the session ends and the CLI unloads
    fig = r.fig
    out.append({"name": "live heap after start-up", "value": (fig.get("started") or [None])[0],
                "unit": "B",
                "note": "gc.mem_alloc() after gc.collect()"})
    out.append({"name": "live heap, steady state (CLI unloaded)", "value": fig.get("live"),
                "unit": "B", "note": "75 s run, last probe"})
    out.append({"name": "live heap, peak of the 5 s probes", "value": fig.get("live_max"),
                "unit": "B", "note": "includes a technician session (CLI loaded)"})
    small = smallest_heap_k(image)
    out.append({"name": "smallest healthy -X heapsize (60 s, CLI session)",
                "value": small if small is not None else -1, "unit": "KiB",
                "note": "bisection in %d KiB steps; -1: not even 512 KiB" % _STEP_K})
    return out
