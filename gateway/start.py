# The gateway's start (gateway/app.py runs it): the record log recovered, what the last
# stop left restored from the checkpoint and reconciled with the log's tail, every job
# started and put on the loop. Loaded by Gateway.start and forgotten after (ondemand.once),
# as gateway/compose.py, which built the jobs, is by then.
from gateway import FIRMWARE_VERSION
from gateway.app import _Job
from hal.compat import const

_TAIL_RECORDS = const(64)  # records read back at start-up to reconcile the checkpoint with the log
_TAIL_CHUNK = const(8)


def start(gw):
    """Recover the log, restore the checkpoint, reconcile it with the log's tail, and
    start every job."""
    report = gw.log.open()
    restored = _restore(gw)
    if restored:
        tail = _log_tail(gw.log, gw.power.closed_t1 if gw.power else None)
        gw.measurement.reconcile(tail)
        if gw.power:
            gw.power.adopt(tail)
        tail = None
    gw.emit(
        "event",
        {
            "code": "gateway_start",
            "detail": {
                "fw": FIRMWARE_VERSION,
                "restored": restored,
                "records": report.get("head", 0),
                "torn_bytes": report.get("torn_bytes", 0),
                "corrupt_skipped": report.get("corrupt_skipped", 0),
            },
        },
    )
    gw.alarms.start()
    gw.diag.start()
    gw.measurement.start()
    gw.commands.start()
    gw.collector.start()
    gw.uplink.start()
    # The first checkpoint at the job's first run. (A due time of 0 would be half a
    # ticks period away whenever the counter reads in the upper half.)
    gw._ckpt_due_ms = gw.clock.ticks_ms()
    loop = gw.loop
    loop.add(_Job("collector", gw.collector.run), 10)
    loop.add(_Job("measurement", gw._measurement_job), 1000, 500)
    loop.add(gw.uplink, 20, 5)
    loop.add(gw.commands, 100, 7)
    loop.add(gw.alarms, 1000, 300)
    loop.add(gw.diag, 1000, 600)
    loop.add(_Job("checkpoint", gw._checkpoint_job), 200, 50)
    loop.add(_Job("flush", gw._flush_job), 2000, 150)
    if gw.power:
        gw.power.start(loop)
    if gw.lcd:
        gw.lcd.start()
        loop.add(gw.lcd, 500, 250)
    if gw.monitor:
        loop.add(gw.monitor, 1000, 900)
    if gw.cli:
        gw.cli.start()
        loop.add(gw.cli, 20, 3)
    if gw.hw.watchdog:
        gw.hw.watchdog.start()


def _restore(gw):
    ck = gw._ckpt_slots.load()
    if not ck:
        return False
    clock = gw.clock
    if "clock_offset_s" in ck and hasattr(clock, "offset_s"):
        clock.offset_s = ck["clock_offset_s"]
    gw.uplink.restore(ck["uplink"])
    gw.measurement.restore(ck["measurement"])
    gw.alarms.restore(ck["alarms"])
    gw.diag.restore(ck["diag"])
    if gw.cli and "cli" in ck:
        gw.cli.restore(ck["cli"])
    if gw.power and ck.get("power"):
        gw.power.restore(ck["power"])
    return True


def _log_tail(log, power_since=None):
    """What reconciling needs of the newest _TAIL_RECORDS, oldest first: the total
    records, the newest prod record with its total, and the power records of intervals
    after power_since (the checkpoint's last closed one; None: no power side). Read a few
    at a time and kept only if needed, so that a small heap never holds the whole tail
    (power records are large); fewer at a time, down to one, where the heap has no room
    for the read (a read takes a block of 256 B a record asked for)."""
    seq = max(log.oldest, log.head - _TAIL_RECORDS + 1)
    out = []
    prod = None
    n = _TAIL_CHUNK
    while seq <= log.head:
        try:
            recs = log.read(seq, n)
        except MemoryError:
            if n == 1:
                raise
            n //= 2
            continue
        if not recs:
            break
        for r in recs:
            kind = r.get("type")
            if kind == "prod" and "total_g" in r:
                if prod is not None:
                    out.remove(prod)
                prod = r
            elif kind != "total" and not (
                kind == "power" and power_since is not None and r.get("t1", 0) > power_since
            ):
                continue
            out.append(r)
        seq = recs[-1]["seq"] + 1
        recs = None
    return out
