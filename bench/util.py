# Helpers for bench areas: run a snippet on the real micropython interpreter, or in this
# CPython process; the microsecond ticks both have for a snippet that runs on either.
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")


def micropython(script, heap=None, timeout=600):
    """Run script (source text) under micropython from the repo root; return stdout."""
    cmd = [MICROPYTHON]
    if heap:
        cmd += ["-X", "heapsize=%s" % heap]
    r = subprocess.run(cmd + ["-c", script], cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode:
        raise RuntimeError("micropython failed: %s" % (r.stdout + r.stderr)[-2000:])
    return r.stdout


# A snippet's prelude: ticks_us and ticks_diff on both interpreters.
TICKS = """
try:
    from time import ticks_diff, ticks_us
except ImportError:
    from time import perf_counter

    def ticks_us():
        return int(perf_counter() * 1e6)

    def ticks_diff(b, a):
        return b - a
"""


def cpython(script):
    """Run script (source text) in this process; return what it printed."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(script, "<bench>", "exec"), {"__name__": "__bench__"})
    return out.getvalue()
