# Helpers for bench areas: run a snippet on the real micropython interpreter.
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
