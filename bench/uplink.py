# Uplink figures: a 30-day backlog (one prod record a minute) drained over loopback into
# the center emulator (its own process, SQLite, ACK after commit), with the gateway on
# CPython and on MicroPython; the gateway's CPU per record; the cost of sealing alone.
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from bench.util import MICROPYTHON, ROOT

N_30_DAYS = 30 * 24 * 60
DEV = 7
KEY_HEX = bytes(range(32)).hex()

# The same script runs on both interpreters: the uplink as a loop job every 10 ms next to
# nothing else, reading the real record log (on an in-memory flash), until the center has
# acknowledged everything. CPU from /proc/self/stat.
_DRAIN = r"""
import sys, json, time
sys.path.insert(0, '.')
from hal.clock import Clock
from hal.net import TcpConnector
from gateway.loop import Loop
from gateway.center.uplink import Uplink
from gateway.store.recordlog import RecordLog
from tests.core.faultfs import FaultFlash
from tests.core.uplink_fakes import fill_prod
try:
    ticks_us, ticks_diff = time.ticks_us, time.ticks_diff
except AttributeError:
    ticks_us = lambda: time.perf_counter_ns() // 1000
    ticks_diff = lambda a, b: a - b

def cpu_s():
    with open('/proc/self/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0

N = %d
log = RecordLog(FaultFlash())
log.open()
fill_prod(log, N)
clock = Clock()
up = Uplink(TcpConnector('127.0.0.1', %d), %d, bytes(range(32)), log, None, clock)

class Timed:
    name = 'uplink'
    max_us = 0
    def run(self, now):
        a = ticks_us()
        up.run(now)
        d = ticks_diff(ticks_us(), a)
        if d > self.max_us:
            self.max_us = d
        if up.breakpoint == N + 1:
            loop.stop()

loop = Loop(clock)
job = loop.add(Timed(), 10)
up.start()
c0 = cpu_s()
t0 = ticks_us()
loop.run(600000)
elapsed = ticks_diff(ticks_us(), t0) / 1e6
print(json.dumps({"n": N, "acked": up.breakpoint - 1, "elapsed_s": elapsed,
                  "cpu_s": cpu_s() - c0, "max_run_ms": job.max_us / 1000,
                  "reconnects": up.reconnects}))
"""

_SEAL = r"""
import sys, json, time
sys.path.insert(0, '.')
from protocols import center_link as cl
from gateway.center.uplink import _records_plaintext
from tests.core.uplink_fakes import MemLog, fill_prod
try:
    ticks_us, ticks_diff = time.ticks_us, time.ticks_diff
except AttributeError:
    ticks_us = lambda: time.perf_counter_ns() // 1000
    ticks_diff = lambda a, b: a - b
log = MemLog()
fill_prod(log, 256)
recs = log.read(1, 256)
s = cl.Session(cl.Keys(bytes(range(32))), 7, cl.GATEWAY)
s.nonce_g = s.nonce_c = bytes(16)
rounds = 20
t0 = ticks_us()
for _ in range(rounds):
    pt, n = _records_plaintext(recs)
    frame = s.seal(cl.RECORDS, pt)
us = ticks_diff(ticks_us(), t0)
print(json.dumps({"us_per_record": us / (rounds * 256), "frame_bytes": len(frame)}))
"""


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _start_center(tmp):
    keys = os.path.join(tmp, "keys")
    os.mkdir(keys)
    with open(os.path.join(keys, "%d.key" % DEV), "w") as f:
        f.write(KEY_HEX + "\n")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator.center", "--listen", "127.0.0.1:%d" % port,
         "--db", os.path.join(tmp, "center.db"), "--keys", keys, "--summary-s", "0",
         "--quiet"], cwd=ROOT)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("center did not start")


def _run(interp, script):
    # The log double holds the month in RAM (on a board it is on flash): a larger heap.
    heap = ["-X", "heapsize=64M"] if interp == MICROPYTHON else []
    r = subprocess.run([interp] + heap + ["-c", script], cwd=ROOT, capture_output=True,
                       text=True, timeout=900)
    if r.returncode:
        raise RuntimeError("%s failed: %s" % (interp, (r.stdout + r.stderr)[-2000:]))
    return json.loads(r.stdout.strip().splitlines()[-1])


def _drain(interp):
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = _start_center(tmp)
        try:
            out = _run(interp, _DRAIN % (N_30_DAYS, port, DEV))
        finally:
            proc.terminate()
            proc.wait(10)
    if out["acked"] != N_30_DAYS:
        raise RuntimeError("drain incomplete: %r" % out)
    return out


def rows():
    out = []
    for label, interp in (("CPython", sys.executable), ("MicroPython", MICROPYTHON)):
        d = _drain(interp)
        seal = _run(interp, _SEAL)
        note = "%s gateway, job every 10 ms; center in its own process, SQLite FULL sync" % label
        out += [
            {"name": "drain 30-day backlog (43200 prod records), %s" % label,
             "value": round(d["elapsed_s"], 2), "unit": "s", "note": note},
            {"name": "records uploaded per second over loopback, %s" % label,
             "value": round(d["n"] / d["elapsed_s"]), "unit": "rec/s", "note": note},
            {"name": "gateway CPU per record uploaded, %s" % label,
             "value": round(d["cpu_s"] / d["n"] * 1e6, 1), "unit": "us",
             "note": "process user+system time / records (10 ms tick resolution)"},
            {"name": "longest uplink run() during the drain, %s" % label,
             "value": round(d["max_run_ms"], 2), "unit": "ms",
             "note": "time the loop is held by one uplink step"},
            {"name": "JSON + AES-CBC + HMAC per record, %s" % label,
             "value": round(seal["us_per_record"], 2), "unit": "us",
             "note": "256-record RECORDS frame of %d bytes, sealing only" % seal["frame_bytes"]},
        ]
    return out
