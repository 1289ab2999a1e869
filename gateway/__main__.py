# python -m gateway run --config FILE [--seconds N] [--monitor] [--stats]
# micropython -m gateway run --config FILE   (from the repo root or a flashed image)
import gc
import sys

from gateway import ondemand
from gateway.errors import ConfigError
from hal.compat import const

_USAGE = const("""usage: gateway run --config FILE [--seconds N] [--monitor | --screen] [--stats]
  --config FILE  the JSON configuration (docs/config.md)
  --seconds N    stop after N seconds (default: run until stopped)
  --monitor      print one status line per second on the console
  --screen       redraw the LCD panel and the status in place (a terminal)
  --stats        print the live heap and its peak every 10 s (MicroPython)""")
_STATS_MS = const(10000)


class UsageError(Exception):
    pass


def parse_args(argv):
    if not argv or argv[0] != "run":
        raise UsageError("expected the command 'run'")
    opts = {"config": None, "seconds": None, "monitor": False, "screen": False, "stats": False}
    i = 1
    while i < len(argv):
        a = argv[i]
        if a in ("--monitor", "--screen", "--stats"):
            opts[a[2:]] = True
        elif a in ("--config", "--seconds"):
            if i + 1 >= len(argv):
                raise UsageError("%s needs a value" % a)
            v = argv[i + 1]
            if a == "--seconds":
                try:
                    v = float(v)
                except ValueError:
                    raise UsageError("--seconds needs a number, got %r" % v)
                if v <= 0:
                    raise UsageError("--seconds must be positive")
            opts[a[2:]] = v
            i += 1
        else:
            raise UsageError("unknown option %r" % a)
        i += 1
    if not opts["config"]:
        raise UsageError("--config FILE is required")
    return opts


def _configuration(path):
    # The schema is needed only here and when parameters change: forgotten once the file
    # is read (gateway/ondemand.py).
    before = ondemand.loaded()
    from gateway import config

    try:
        cfg = config.load(path)
        return cfg, config.read_key(cfg["key_file"])
    finally:
        del config
        ondemand.forget(before)


def main(argv):
    if "--help" in argv or "-h" in argv:
        print(_USAGE)
        return 0
    try:
        opts = parse_args(argv)
    except UsageError as e:
        print("error: %s\n%s" % (e, _USAGE))
        return 2
    from gateway.app import Gateway
    from hal import board

    gc.collect()  # the imports' garbage gone before the config is read: less fragmentation
    try:
        cfg, key = _configuration(opts["config"])
    except ConfigError as e:
        print("config error: %s" % e)
        return 2
    hw = board.build(cfg, screen=opts["screen"])
    gw = Gateway(cfg, key, hw)
    cfg = key = None  # the gateway keeps what it needs: the file's dict need not stay
    if opts["monitor"] or opts["screen"]:
        from gateway.panel.monitor import Monitor

        gw.monitor = Monitor(gw, sys.stdout, screen=opts["screen"])
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
