# python -m gateway run --config FILE [--seconds N] [--monitor] [--stats]
# micropython -m gateway run --config FILE   (from the repo root or a flashed image)
import gc
import sys

from gateway import ondemand
from hal.compat import const

_STATS_MS = const(10000)


def main(argv):
    # The command line, the configuration and the hardware: gateway/boot.py, for the start.
    built = ondemand.once("gateway.boot", "gateway", argv)
    if isinstance(built, int):
        return built
    gw, opts = built
    built = None
    if opts["stats"]:
        gw.loop.add(_HeapStats(sys.stdout), _STATS_MS, 950)
    status = gw.run(opts["seconds"])
    if gw.monitor is not None:
        gw.monitor.closing()
    return status


class _HeapStats:
    """--stats: the heap still in use after a collection (what the gateway needs, as
    opposed to garbage not yet collected), its peak, and the heap's size, in bytes."""

    name = "stats"

    def __init__(self, out):
        self.out = out
        self.peak = 0

    def run(self, now_ms):
        if not hasattr(gc, "mem_alloc"):
            return  # CPython: its footprint is the process's, not a heap of ours
        gc.collect()
        live = gc.mem_alloc()
        if live > self.peak:
            self.peak = live
        self.out.write("heap live %d peak %d size %d\n" % (live, self.peak, live + gc.mem_free()))


# MicroPython's -m runs this with __name__ == "__main__" and argv[0] the module name.
if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
