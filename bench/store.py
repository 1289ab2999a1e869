# Record store figures: bytes per record, one year's footprint against the 64 MiB budget,
# start-up recovery time with a full year stored, appends and reads per second on both
# interpreters, and flash wear measured on littlefs2 (MicroPython's VfsLfs2).
import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench import _store_records as store_records
from bench.util import ROOT, micropython
from gateway.store import codec as recordcodec
from gateway.store.recordlog import RecordLog, frame
from hal.fs import Flash

YEAR_S = 365 * 86400
PROD_S = 60
DIAG_S = 600
ALARMS_PER_DAY = 24  # raise and clear pairs of a busy belt: generous
EVENTS_PER_DAY = 8
T0 = 1767225600
BUDGET = 64 << 20
_YEAR_DIR = os.path.join(tempfile.gettempdir(), "gw-bench-store-year-v2")


def _prod(i):
    return store_records.prod(i)


def _prod_worst(i):
    rtype, t, f = _prod(i)
    f = dict(f)
    for k in ("mass_kg", "total_kg", "rate_tph", "speed_mps"):
        f[k] = f[k] + 1e-7 / 3  # full-precision doubles: 8 bytes each
    return rtype, t + 0.123456, f


def _diag(i):
    # A self-diagnosis summary of about 300 bytes of JSON.
    return (
        "diag",
        T0 + DIAG_S * i,
        {
            "detail": {
                "collector": {"ok": True, "errors": i % 5, "timeouts": i % 3, "rtt_ms": 41},
                "cells": [{"ok": True, "mv": 2001 + k} for k in range(4)],
                "speed": {"ok": True, "hz": 250.0},
                "vib": {"rms_mm_s": 2.8, "zone": "A"},
                "supply_mv": 12100,
                "temp_c": 31.5,
                "uplink": {"up": True, "backlog": 0},
                "store": {"used_mib": 31.2, "pending": 0},
            }
        },
    )


def _alarm(i):
    detail = "speed 0.0 m/s with motor running"
    return ("alarm", T0 + i * 3600, {"code": "belt_slip", "state": "raise", "detail": detail})


def _event(i):
    detail = {"step_s": 0.8, "by": "center"}
    return ("event", T0 + i * 10800, {"code": "time_sync", "detail": detail})


def _size(rec):
    rtype, t, f = rec
    return len(frame(recordcodec.encode(123456, rtype, t, f)))


class _NoSyncFlash(Flash):
    """Only to generate a year of data quickly; never used for a figure of durability."""

    def sync(self, f):
        f.flush()

    def rename(self, old, new):
        os.rename(self.path(old), self.path(new))


def _year_records():
    """A year of records in time order: prod every minute, diag every 10 min, alarms, events."""
    n_prod = YEAR_S // PROD_S
    every_diag = DIAG_S // PROD_S
    every_alarm = (86400 // PROD_S) // ALARMS_PER_DAY
    every_event = (86400 // PROD_S) // EVENTS_PER_DAY
    for i in range(n_prod):
        yield _prod(i)
        if i % every_diag == 0:
            yield _diag(i // every_diag)
        if i % every_alarm == 0:
            yield _alarm(i)
        if i % every_event == 0:
            yield _event(i)


def _year():
    """A directory with one year stored (made once), and its counts."""
    mark = os.path.join(_YEAR_DIR, "complete")
    if not os.path.exists(mark):
        shutil.rmtree(_YEAR_DIR, ignore_errors=True)
        log = RecordLog(_NoSyncFlash(_YEAR_DIR))
        log.open()
        for rtype, t, f in _year_records():
            log.append(rtype, t, f)
        year_bytes = log.stats()["bytes_used"]
        year_records = log.head
        # Fill the newest segment to its end: start-up then scans the most it ever scans.
        i = YEAR_S // PROD_S
        newest = max(n for n in os.listdir(_YEAR_DIR) if n.endswith(".seg"))
        newest = os.path.join(_YEAR_DIR, newest)
        while os.path.getsize(newest) + 2 * _size(_prod(i)) <= log.segment_bytes:
            log.append(*_prod(i))
            i += 1
        log.close()
        with open(mark, "w") as f:
            f.write("%d %d\n" % (year_bytes, year_records))
    with open(mark) as f:
        year_bytes, year_records = (int(x) for x in f.read().split())
    return year_bytes, year_records


def _recover_cpython():
    best = None
    for _ in range(3):
        t = time.perf_counter()
        log = RecordLog(Flash(_YEAR_DIR))
        rep = log.open()
        dt = time.perf_counter() - t
        best = dt if best is None or dt < best else best
    return best * 1000, rep


_MP_RECOVER = """
import time
from hal.fs import Flash
from gateway.store.recordlog import RecordLog
best = None
for _ in range(3):
    t = time.ticks_us()
    log = RecordLog(Flash(%r))
    rep = log.open()
    dt = time.ticks_diff(time.ticks_us(), t)
    best = dt if best is None or dt < best else best
print(best / 1000, rep["segments"], rep["tail_records"], rep["head"])
"""

_APPEND = """
import time
from hal.fs import Flash
from gateway.store.recordlog import RecordLog
import bench._store_records as r
from hal.compat import MICROPYTHON
class NoSync(Flash):
    def sync(self, f):
        if not MICROPYTHON:  # MicroPython files are unbuffered and its flush is an fsync
            f.flush()
log = RecordLog((Flash if %r else NoSync)(%r))
log.open()
n = %d
t0 = time.time()
for i in range(n):
    rtype, t1, f = r.prod(i)
    log.append(rtype, t1, f)
dt = time.time() - t0
t0 = time.time()
got = 0
seq = 1
while got < n:
    part = log.read(seq, 256)
    got += len(part)
    seq = part[-1]["seq"] + 1
dr = time.time() - t0
print(n / dt, got / dr)
"""


def _appends(interp, n, durable):
    d = tempfile.mkdtemp(prefix="gw-bench-append-")
    try:
        script = _APPEND % (durable, d, n)
        if interp == "micropython":
            out = micropython(script)
        else:
            out = subprocess.run(
                [sys.executable, "-c", "import sys; sys.path.insert(0, '.')\n" + script],
                cwd=ROOT, capture_output=True, text=True, check=True,
            ).stdout
        a, r = (float(x) for x in out.split())
        return a, r
    finally:
        shutil.rmtree(d, ignore_errors=True)


_WEAR = """
import vfs, os
from hal.fs import Flash
from gateway.store.recordlog import RecordLog
from gateway.store.slots import Slots
import bench._store_records as r

class Dev:
    def __init__(self, bs, n):
        self.bs = bs
        self.data = bytearray(bs * n)
        self.n = n
        self.prog = 0
        self.erases = 0
    def readblocks(self, b, buf, off=0):
        a = b * self.bs + off
        buf[:] = self.data[a:a + len(buf)]
    def writeblocks(self, b, buf, off=0):
        a = b * self.bs + off
        self.data[a:a + len(buf)] = buf
        self.prog += len(buf)
    def ioctl(self, op, arg):
        if op == 4: return self.n
        if op == 5: return self.bs
        if op == 6:
            self.erases += 1
            return 0

dev = Dev(4096, 512)
vfs.VfsLfs2.mkfs(dev)
vfs.mount(vfs.VfsLfs2(dev, progsize=256, readsize=256), "/wear")
fl = Flash("/wear/d")
log = RecordLog(fl, budget_bytes=1 << 20, segment_bytes=256 << 10)
log.open()
N = 600
for i in range(20):
    log.append(*r.prod(i))
e0, p0 = dev.erases, dev.prog
for i in range(20, 20 + N):
    log.append(*r.prod(i))
ea, pa = (dev.erases - e0) / N, (dev.prog - p0) / N
cp = Slots(fl, "checkpoint")
state = r.checkpoint()
for i in range(20):
    cp.save(state)
e0, p0 = dev.erases, dev.prog
for i in range(N):
    state["seq"] = i
    cp.save(state)
ec, pc = (dev.erases - e0) / N, (dev.prog - p0) / N
print(ea, pa, ec, pc, len(__import__("json").dumps(state)))
vfs.umount("/wear")
"""


def _row(name, value, unit, note=""):
    return {"name": name, "value": value, "unit": unit, "note": note}


def rows():
    out = []
    typical = _size(_prod(123456))
    worst = _size(_prod_worst(123456))
    diag = _size(_diag(5))
    alarm = _size(_alarm(5))
    event = _size(_event(5))
    out.append(_row("prod record on flash, typical values", typical, "B",
                    "frame 7 + payload; mass to the gram, totals as integers of grams"))
    out.append(_row("prod record on flash, full-precision floats", worst, "B",
                    "worst case: t and 4 values as 8-byte doubles"))
    out.append(_row("diag record on flash (~300 B JSON detail)", diag, "B"))
    out.append(_row("alarm / event record on flash", alarm, "B", "event: %d B" % event))

    n_prod = YEAR_S // PROD_S
    n_diag = YEAR_S // DIAG_S
    n_other = 365 * (ALARMS_PER_DAY + EVENTS_PER_DAY)
    other = 365 * (ALARMS_PER_DAY * alarm + EVENTS_PER_DAY * event)
    est = n_prod * typical + n_diag * diag + other
    est_worst = n_prod * worst + n_diag * diag + other
    out.append(_row("one year, worst-case prod floats (computed)", round(est_worst / 2**20, 1),
                    "MiB", "%.0f %% of the 64 MiB budget" % (100 * est_worst / BUDGET)))
    t = time.time()
    year_bytes, year_records = _year()
    gen_s = time.time() - t
    out.append(_row("one year stored (measured)", round(year_bytes / 2**20, 1), "MiB",
                    "%d records: %d prod/60 s, %d diag/10 min, %d alarms+events; "
                    "%.0f %% of 64 MiB; computed %.1f MiB"
                    % (year_records, n_prod, n_diag, n_other, 100 * year_bytes / BUDGET,
                       est / 2**20)))
    out.append(_row("days the 64 MiB budget holds at these rates",
                    int(BUDGET / (year_bytes / 365)), "days",
                    "retention drops the oldest 256 KiB segment beyond that"))

    ms, rep = _recover_cpython()
    made = "; year made in %.0f s" % gen_s if gen_s > 1 else ""
    out.append(_row("start-up recovery, full year stored, CPython", round(ms, 2), "ms",
                    "%d segments, newest one full (%d records scanned); PC disk, warm cache%s"
                    % (rep["segments"], rep["tail_records"], made)))
    mp = micropython(_MP_RECOVER % _YEAR_DIR).split()
    out.append(_row("start-up recovery, full year stored, MicroPython", round(float(mp[0]), 2),
                    "ms", "unix port, same files; %s segments, %s records scanned"
                    % (mp[1], mp[2])))

    for interp in ("python", "micropython"):
        a, _ = _appends(interp, 2000, True)
        out.append(_row("durable prod appends per second, %s" % interp, round(a), "1/s",
                        "write + fsync each, ext4 on the shared bench PC: the disk sets it"))
        a, r = _appends(interp, 20000, False)
        out.append(_row("prod appends per second without fsync, %s" % interp, round(a), "1/s",
                        "the store's own cost: encode, frame, CRC, write"))
        out.append(_row("sequential reads per second, %s" % interp, round(r), "1/s",
                        "read(seq, 256), decoded dicts"))

    ea, pa, ec, pc, cp_len = (float(x) for x in micropython(_WEAR, heap="8M").split())
    year_appends = n_prod + n_diag + n_other
    cp_saves = YEAR_S // 10
    battery_saves = 7200 * 50  # 50 outages a year of 2 h at 1 s
    erases = year_appends * ea + (cp_saves + battery_saves) * ec
    blocks = BUDGET // 4096
    out.append(_row("littlefs2 per durable append", round(pa), "B prog",
                    "%.2f block erases (4 KiB blocks, 256 B prog)" % ea))
    out.append(_row("littlefs2 per checkpoint save (%d B JSON)" % cp_len, round(pc), "B prog",
                    "%.2f block erases" % ec))
    out.append(_row("flash wear per year at defaults", round(erases / blocks), "cycles",
                    "erases per 4 KiB block of a 64 MiB area: %d appends, %d checkpoints at "
                    "10 s, %d at 1 s on battery; NOR is rated 100000"
                    % (year_appends, cp_saves, battery_saves)))
    return out
