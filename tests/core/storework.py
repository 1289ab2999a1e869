# The scripted store workload of the power-cut tests: records whose content follows from
# their seq, parameter sets whose every value follows from one number, and a checkpoint.
# After any cut, verify() checks what was acknowledged against what the flash holds.
from gateway.store.recordlog import RecordLog
from gateway.store.slots import Slots

T0 = 1767225600


def make_record(seq):
    """(type, t, fields) of the record with this seq: every kind of value the codec has."""
    t = T0 + 60 * seq
    if seq % 5 == 0:
        t = t + 0.25  # a float time
    k = seq % 7
    if k < 4:
        return (
            "prod",
            t,
            {
                "t0": t - 60,
                "t1": t,
                "mass_kg": (seq * 7919 % 100000) / 1000,
                "total_kg": seq * 16667 + 0.5,
                "rate_tph": seq / 7.0,  # not a whole number of milli: stored as a double
                "speed_mps": 2.5,
                "run_s": 60 - seq % 3,
            },
        )
    if k == 4:
        return ("alarm", t, {"code": "belt_slip", "state": "raise", "detail": "seq %d" % seq})
    if k == 5:
        return ("event", t, {"code": "restart", "detail": {"n": seq, "x": [1.5, None, True]}})
    return ("diag", t, {"detail": {"seq": seq, "pad": "d" * (seq % 40), "v": seq * 0.1}})


def expected(seq):
    rtype, t, fields = make_record(seq)
    rec = {"seq": seq, "t": t, "type": rtype}
    rec.update(fields)
    return rec


def same(a, b):
    """Equal value for value, with ints and floats not mixed up."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        for k in a:
            if k not in b or not same(a[k], b[k]):
                return False
        return True
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def make_params(g):
    return {"g": g, "a": g * 3, "b": "v%d" % g, "c": [g, g + 1], "f": g / 4}


def params_gen(obj):
    """The g of a parameter set, after checking that no value comes from another set."""
    g = obj["g"]
    if not same(obj, make_params(g)):
        raise AssertionError("mixed parameter set %r" % (obj,))
    return g


class Acks:
    """What the device told its callers, kept outside the device (it survives the cut)."""

    def __init__(self):
        self.seq = 0  # highest seq whose append returned with the record durable
        self.inflight = 0  # seq being appended when the power went
        self.params = 0  # g of the last params save that returned
        self.params_inflight = 0
        self.cp = 0
        self.cp_inflight = 0
        self.center_next = 1  # what the center has acknowledged
        self.alarms = []


def open_store(flash, acks, segment_bytes=512, budget_bytes=2048):
    log = RecordLog(
        flash,
        budget_bytes=budget_bytes,
        segment_bytes=segment_bytes,
        ram_buffer=8,
        alarm=lambda code, active, detail: acks.alarms.append((code, active, detail)),
    )
    log.open()
    log.set_acked(acks.center_next)
    params = Slots(flash, "params")
    params.load()
    cp = Slots(flash, "checkpoint")
    cp.load()
    return log, params, cp


def run(flash, acks, until_seq, dead=None, say=None, **kw):
    """Append records up to until_seq, saving params every 3rd and the checkpoint every
    2nd; the center acknowledges now and then. Stops early once dead() says the device
    is (a block device that refuses writes makes the file system raise OSError).
    say(tag, n), if given, reports each step as it happens to a process that outlives
    this one: I seq / A seq (record in flight / acknowledged), p g / P g (params),
    c seq / C seq (checkpoint), K next (center acknowledgement)."""
    try:
        _run(flash, acks, until_seq, dead, say or _quiet, kw)
    except OSError:
        if dead is None or not dead():
            raise


def _quiet(tag, n):
    pass


def _run(flash, acks, until_seq, dead, say, kw):
    log, params, cp = open_store(flash, acks, **kw)
    while log.head < until_seq:
        seq = log.head + 1
        rtype, t, fields = make_record(seq)
        acks.inflight = seq
        say("I", seq)
        got = log.append(rtype, t, fields)
        if got != seq:
            raise AssertionError("append gave seq %d, expected %d" % (got, seq))
        if dead is not None and dead():
            return
        if log.durable >= seq:
            acks.seq = seq
            say("A", seq)
        if seq % 3 == 0:
            acks.params_inflight = seq // 3
            say("p", seq // 3)
            params.save(make_params(seq // 3))
            acks.params = seq // 3
            say("P", seq // 3)
        if seq % 2 == 0:
            acks.cp_inflight = seq
            say("c", seq)
            cp.save({"seq": seq, "total_g": seq * 1000})
            acks.cp = seq
            say("C", seq)
        if seq % 5 == 0:
            acks.center_next = seq - 2
            say("K", seq - 2)
            log.set_acked(acks.center_next)
    log.close()


def apply_said(acks, lines):
    """Replay what a killed process said into acks."""
    for line in lines:
        tag, n = line.split()
        n = int(n)
        if tag == "I":
            acks.inflight = n
        elif tag == "A":
            acks.seq = n
        elif tag == "p":
            acks.params_inflight = n
        elif tag == "P":
            acks.params = n
        elif tag == "c":
            acks.cp_inflight = n
        elif tag == "C":
            acks.cp = n
        elif tag == "K":
            acks.center_next = n


def verify(flash, acks, **kw):
    """After a restart: every acknowledged record is there and intact, seq has no gap and
    no repeat, and each slot holds the old or the new state. Updates acks to what the
    device now holds, so the workload can go on. Returns the reopened log."""
    log, params, cp = open_store(flash, acks, **kw)
    head = log.head
    if not acks.seq <= head <= max(acks.seq, acks.inflight):
        raise AssertionError(
            "head %d, acknowledged %d, in flight %d" % (head, acks.seq, acks.inflight)
        )
    if log.oldest > acks.center_next and log.oldest > 1:
        raise AssertionError("oldest %d: unacknowledged records dropped" % log.oldest)
    seq = log.oldest
    while seq <= head:
        got = log.read(seq, 16)
        if not got:
            raise AssertionError("read(%d) found nothing, head %d" % (seq, head))
        for rec in got:
            if rec["seq"] != seq:
                raise AssertionError("seq %d where %d was due" % (rec["seq"], seq))
            if not same(rec, expected(seq)):
                raise AssertionError("record %d is %r" % (seq, rec))
            seq += 1
    if log.read(head + 1, 4):
        raise AssertionError("records beyond head %d" % head)
    if log.corrupt_found:
        raise AssertionError("power cuts alone reported corruption: %r" % acks.alarms)
    p = params.load()
    g = 0 if p is None else params_gen(p)
    if g not in (acks.params, acks.params_inflight):
        raise AssertionError("params g=%d, acknowledged %d" % (g, acks.params))
    c = cp.load()
    c_seq = 0 if c is None else c["seq"]
    if c_seq not in (acks.cp, acks.cp_inflight) or (c and c["total_g"] != c_seq * 1000):
        raise AssertionError("checkpoint %r, acknowledged %d" % (c, acks.cp))
    acks.seq = acks.inflight = head
    acks.params = acks.params_inflight = g
    acks.cp = acks.cp_inflight = c_seq
    return log
