# `gateway run`'s start-up: the command line, the configuration file, the hardware and the
# gateway built on them. Loaded by gateway/__main__.py for the start only and forgotten
# (ondemand.once), as are the schema (gateway.config) and the board (hal.board) within it:
# where bytecode lives in RAM their code then costs no heap while the gateway runs.
import builtins
import gc
import sys

from gateway import ondemand
from gateway.errors import ConfigError
from hal.compat import MICROPYTHON

USAGE = """usage: gateway run --config FILE [--seconds N] [--monitor | --screen] [--stats]
  --config FILE  the JSON configuration (docs/config.md)
  --seconds N    stop after N seconds (default: run until stopped)
  --monitor      print one status line per second on the console
  --screen       redraw the LCD panel and the status in place (a terminal)
  --stats        print the live heap and its peak every 10 s (MicroPython)"""


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
        key = config.read_key(cfg["key_file"])
    finally:
        del config
        ondemand.forget(before)
    # Passed as keywords, MicroPython interns the keys (qstrs): read before the gateway's
    # code is loaded, its every "collector.baud" is then that name, not a string of its
    # own (~60 B each where code lives in RAM), and so is the dict's key.
    return dict(**cfg), key


def gateway(argv):
    """(the gateway built as argv says, the options), or the exit status of a run that
    ends here: the usage asked for (0) or wrong (2), a bad configuration (2)."""
    if "--help" in argv or "-h" in argv:
        print(USAGE)
        return 0
    try:
        opts = parse_args(argv)
    except UsageError as e:
        print("error: %s\n%s" % (e, USAGE))
        return 2
    try:
        cfg, key = _configuration(opts["config"])
    except ConfigError as e:
        print("config error: %s" % e)
        return 2
    gc.collect()  # the schema's garbage gone before the gateway's code: less fragmentation
    if MICROPYTHON:
        builtins.__import__ = _import_collected
    try:
        from gateway.app import Gateway

        hw = ondemand.once("hal.board", "build", cfg, opts["screen"])
        gw = Gateway(cfg, key, hw)
    finally:
        builtins.__import__ = _import
    if opts["monitor"] or opts["screen"]:
        from gateway.panel.monitor import Monitor

        gw.monitor = Monitor(gw, sys.stdout, screen=opts["screen"])
    return gw, opts


# Loading a module leaves its scraps (the loader's buffers, a dict's old tables) among the
# objects it keeps. Collected at once, they are filled by the next module; left until the
# heap is full, they cut all of it into pieces of a few hundred bytes, and the jobs built
# next need blocks of 1-2 KB (at 256K: 60 KB left whole after the gateway's code against 12).
_import = builtins.__import__


def _import_collected(name, globals=None, locals=None, fromlist=(), level=0):
    new = name not in sys.modules
    module = _import(name, globals, locals, fromlist, level)
    if new:
        gc.collect()
    return module
