# A real process runs the store workload (records, parameter and checkpoint slots) on a
# real directory and is killed with SIGKILL at random moments, many times, on CPython and
# on MicroPython. After each kill: every acknowledged record is there and intact, seq has
# no gap or repeat, and each slot holds the old or the new state.
import os
import random
import select
import signal
import subprocess
import sys
import time

import pytest

from hal.fs import Flash
from tests.core import storework as w
from tests.harness import store_worker

pytestmark = pytest.mark.realtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
KILLS = 25


def _kill_at_random(cmd, acks, rng):
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = b""
    # Half the kills land anywhere from the start (imports, recovery); half while working.
    if rng.random() < 0.5:
        deadline = time.monotonic() + rng.uniform(0.0, 0.25)
    else:
        deadline = None
    while True:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        wait = 1.0 if deadline is None else deadline - now
        r, _, _ = select.select([p.stdout], [], [], wait)
        if r:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break  # the worker ended by itself: a failure, reported below
            out += chunk
            if deadline is None and b"R 0\n" in out:
                deadline = time.monotonic() + rng.uniform(0.0, 0.15)
    p.send_signal(signal.SIGKILL)
    rest, err = p.communicate()
    out += rest
    assert p.returncode == -signal.SIGKILL, (p.returncode, err.decode()[-2000:])
    lines = out.decode().split("\n")[:-1]  # only whole lines were said
    w.apply_said(acks, [ln for ln in lines if not ln.startswith("R")])
    return len(lines)


@pytest.mark.parametrize("interp", ["python", "micropython"])
def test_sigkill_at_random_moments_loses_nothing_acknowledged(interp, tmp_path):
    exe = os.path.join(BIN, interp)
    d = str(tmp_path / "data")
    rng = random.Random(1234)
    acks = w.Acks()
    said = 0
    for i in range(KILLS):
        cmd = [exe] + (["-u"] if interp == "python" else [])
        cmd += ["tests/harness/store_worker.py", d, str(acks.center_next)]
        said += _kill_at_random(cmd, acks, rng)
        try:
            w.verify(
                Flash(d),
                acks,
                segment_bytes=store_worker.SEGMENT_BYTES,
                budget_bytes=store_worker.BUDGET_BYTES,
            )
        except AssertionError as e:
            raise AssertionError("after kill %d: %s" % (i + 1, e))
    assert acks.seq > 200 and said > 500  # the workers did real work between the kills
    segs = [n for n in os.listdir(d) if n.endswith(".seg")]
    assert len(segs) > 3
