# The cross-check gives the same bits on MicroPython and CPython: one fixed sequence
# (tests/harness/crosscheck_vectors.py) run on both.
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def _run(interpreter):
    r = subprocess.run(
        [os.path.join(BIN, interpreter), "tests/harness/crosscheck_vectors.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.splitlines()


def test_same_bits_on_micropython_and_cpython():
    cpython = _run("python")
    assert len(cpython) > 60 and any(" True " in line for line in cpython)
    assert cpython[-1] == "alarms [False, True]"  # reported after the restart, then raised
    assert _run("micropython") == cpython
