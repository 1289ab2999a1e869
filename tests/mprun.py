# Runs the core tests on MicroPython: every test_* function of every tests/core/test_*.py
# (or of the files named on the command line). Prints one line per failure and
# "N passed, N failed, N skipped"; exit status 1 if anything failed.
import gc
import os
import sys

_HERE = __file__.rpartition("/")[0] or "."
_ROOT = (_HERE + "/..") if _HERE != "tests" else "."
sys.path.insert(0, _ROOT)

from tests.core.util import SkipTest  # noqa: E402


def _modules(args):
    if args:
        return [a.rpartition("/")[2][:-3] for a in args]
    names = sorted(os.listdir(_ROOT + "/tests/core"))
    return [n[:-3] for n in names if n.startswith("test_") and n.endswith(".py")]


def main(args):
    passed = failed = skipped = 0
    for name in _modules(args):
        gc.collect()  # free the last module's garbage before this one's code is loaded
        try:
            mod = __import__("tests.core." + name, None, None, ["x"])
        except Exception as e:
            failed += 1
            print("FAIL %s (import): %r" % (name, e))
            sys.print_exception(e)
            continue
        for attr in sorted(dir(mod)):
            fn = getattr(mod, attr)
            if not attr.startswith("test_") or not callable(fn):
                continue
            gc.collect()  # each test starts on a collected heap, as each module does
            try:
                fn()
                passed += 1
            except SkipTest as e:
                skipped += 1
                print("SKIP %s.%s: %s" % (name, attr, e))
            except Exception as e:
                failed += 1
                print("FAIL %s.%s: %r" % (name, attr, e))
                sys.print_exception(e)
    print("MicroPython: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return failed


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1:]) else 0)
