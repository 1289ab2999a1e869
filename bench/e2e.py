# The whole gateway end to end (tests/harness/e2e.py): the smallest MicroPython heap at which a run
# through power cuts passes, the live heap, and the CPU share of the gateway process at the
# default 10 Hz poll on both interpreters.
#
# The smallest heap is found by a k-ary bisection: each round runs several gateways side by
# side on one emulated site (one belt, one center), one per heap size, every one killed
# with SIGKILL twice (once early in a start-up) and checked as the tests check it (records
# complete, totals within the cut allowance, no error printed); the next round narrows to
# the gap between the largest failing and the smallest passing size. A size passes only if
# every larger size tried passes too. Each round takes one belt revolution of feed plus the
# drain: about 2 minutes.
#
#     python -m bench e2e                  E2E_BENCH_OPTS="-O3 -X no-source-lines" for that image
import os
import shlex
import tempfile

from tests.harness import e2e

_LO_K = 128  # the aim
_HI_K = 384
_FIRST = (192, 224, 240, 256, 288, 320)  # plus _HI_K, which must pass
_STEP_K = 8  # stop when the gap is this small
_ROUND_UNITS = 6
_OPTS = tuple(shlex.split(os.environ.get("E2E_BENCH_OPTS", "")))


def _round(heaps_k, with_cpu=False):
    """Run one gateway per heap size; returns ({heap_k: figures or error}, cpu units)."""
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        site = e2e.Site(tmp)
        units = {}
        for h in heaps_k:
            units[h] = site.add(e2e.Unit("mp%dk" % h, "micropython", heap="%dK" % h, kills=2,
                                         early=1, image_opts=_OPTS))
        cpu = []
        if with_cpu:
            # Uncut gateways for the CPU share at the default poll rate over the steady flow.
            cpu.append(site.add(e2e.Unit("cpu_mp", "micropython", heap="%dK" % _HI_K, kills=0,
                                         image_opts=_OPTS)))
            cpu.append(site.add(e2e.Unit("cpu_cpython", "cpython", kills=0)))
        try:
            try:
                site.run(flow_revs=1)
            except AssertionError:
                pass  # every sized unit failed: each verify() below says why
            out = {}
            for h, u in units.items():
                try:
                    out[h] = u.verify()
                except AssertionError as e:
                    out[h] = str(e).splitlines()[0][:160]
            figs = []
            for u in cpu:
                try:
                    figs.append(dict(u.verify(), steady_cpu_pct=u.steady_cpu_pct()))
                except AssertionError as e:
                    figs.append({"unit": u.name, "error": str(e).splitlines()[0][:160]})
        finally:
            site.stop()
        return out, figs


def search():
    """({heap_k: figures or error} over every round, cpu figures, smallest passing heap_k)."""
    tried = {}
    heaps = list(_FIRST) + [_HI_K]
    cpu = None
    while heaps:
        got, figs = _round(heaps, with_cpu=cpu is None)
        cpu = cpu or figs
        tried.update(got)
        fails = [h for h, f in tried.items() if not isinstance(f, dict)]
        lo = max(fails) if fails else _LO_K
        passing = [h for h, f in tried.items() if isinstance(f, dict) and h > lo]
        if not passing:
            break  # even the largest failed: no edge to narrow
        hi = min(passing)
        if hi - lo <= _STEP_K:
            break
        step = max(_STEP_K, (hi - lo) // (_ROUND_UNITS + 1) // _STEP_K * _STEP_K)
        heaps = [h for h in range(lo + step, hi, step) if h not in tried][:_ROUND_UNITS]
    fails = [h for h, f in tried.items() if not isinstance(f, dict)]
    ok = sorted(h for h, f in tried.items() if isinstance(f, dict) and h > max(fails or [0]))
    return tried, cpu, (ok[0] if ok else None)


def rows():
    tried, cpu, smallest = search()
    note_img = "image: mpy-cross %s" % (" ".join(_OPTS) or "(no options)")
    out = [{"name": "smallest -X heapsize passing the e2e run", "value": smallest or 0,
            "unit": "KiB", "note": "%s; tried %s" % (note_img, ", ".join(
                "%d%s" % (h, "" if isinstance(f, dict) else "x") for h, f in sorted(
                    tried.items())))}]
    for h in sorted(tried):
        f = tried[h]
        if isinstance(f, dict):
            out.append({"name": "e2e at %dK: error after 2 cuts" % h, "value": f["err_pct"],
                        "unit": "%", "note": "allowed %s kg, live heap peak %s KiB" % (
                            f["allowed_kg"], f["heap_live_peak_kib"])})
        else:
            out.append({"name": "e2e at %dK: fails" % h, "value": 0, "unit": "",
                        "note": f})
    peaks = [f["heap_live_peak_kib"] for f in tried.values()
             if isinstance(f, dict) and f["heap_live_peak_kib"]]
    if peaks:
        out.append({"name": "live heap peak (after gc.collect, --stats)", "value": max(peaks),
                    "unit": "KiB", "note": "largest of every passing run; %s" % note_img})
    for f in cpu or []:
        if "error" in f:
            out.append({"name": "CPU share, %s" % f["unit"], "value": 0, "unit": "",
                        "note": f["error"]})
            continue
        out.append({"name": "gateway CPU share at 10 Hz poll, %s" % f["interp"],
                    "value": round(f["steady_cpu_pct"], 2), "unit": "% core",
                    "note": "utime+stime over a revolution of steady feed, no cuts; error "
                    "%s %%, %s" % (f["err_pct"], "heap %s" % f["heap"] if f["heap"] else
                                   "peak RSS %d KiB" % f["rss_peak_kib"])})
    return out
