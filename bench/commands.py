# An honest center queuing 8 get_params for the flashed gateway on MicroPython at capped
# heaps (tests/harness/memsite.py's emulated site, no CLI): how many are answered, how often the
# link drops, how many records still reach the center in the minute after, and whether
# the resulting data dir starts again at 256K (issue 18, item 2; docs/memory.md).
import os
import tempfile
import time

from tests.harness import memsite

_RUN_S = 60
_COMMANDS = 8
HEAPS = ("256K", "272K", "288K", "320K")


def flood(image, heap, seconds=_RUN_S, commands=_COMMANDS):
    """{answered, errors, reconnects, records, restarts_at_256k} of one run."""
    with tempfile.TemporaryDirectory() as tmp:
        site = memsite.start_site(tmp)
        try:
            dev = memsite.provision(site, image, tmp, None)
            p = memsite.start_gateway(dev, heap, seconds)
            time.sleep(8)  # started, online
            c = site.center
            conn0 = c.connections
            rec0 = c.record_count(memsite.DEVICE_ID)
            ids = [c.command(memsite.DEVICE_ID, "get_params", {}) for _ in range(commands)]
            p.communicate(timeout=seconds + 60)
            res = c.results(memsite.DEVICE_ID)
            results = [res[i]["result"] for i in ids]
            out = {"answered": sum(1 for r in results if r and r.get("ok")),
                   "errors": sum(1 for r in results if r and not r.get("ok")),
                   "reconnects": c.connections - conn0,
                   "records": c.record_count(memsite.DEVICE_ID) - rec0}
            again = memsite.start_gateway(dev, "256K", 8)
            text = again.communicate(timeout=90)[0]
            out["restarts_at_256k"] = again.returncode == 0 and "PROBE started" in text
            return out
        finally:
            site.collector.stop()
            site.center.stop()


def rows():
    image = memsite.build_image(os.path.join(tempfile.gettempdir(), "gw-bench-mem-image"))
    out = []
    for heap in HEAPS:
        r = flood(image, heap)
        out.append({"name": "8 get_params at %s: answered ok" % heap, "value": r["answered"],
                    "unit": "of 8", "note": "%d answered with an error, %d reconnects" % (
                        r["errors"], r["reconnects"])})
        out.append({"name": "8 get_params at %s: records uploaded after" % heap,
                    "value": r["records"], "unit": "in %d s" % _RUN_S,
                    "note": "data dir restarts at 256K: %s" % r["restarts_at_256k"]})
    return out
