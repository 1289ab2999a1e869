# The measurement's start-up: restoring the checkpoint and adopting the records written
# after it, loaded for the call only (gateway/ondemand.py).
from hal.compat import const

# Scale's private constants are const(): they leave no name to import, so their values are
# repeated here. The bits of Scale.hold:
_H_IDENTITY = const(1)
_TICKS_HALF = const(1 << 29)  # ticks wrap at 2**30 ms: a difference is known below this
# Scale._hd is [first held gate entry, held 2**-S g, held pulses, held estimate, polls
# that agreed], in the order the snapshot's "hold" keeps after the reasons; Scale.gap[4]
# the blocks to skip at the next poll; Scale._ls[:3] the speed-loss stretch.


def _clear_gate(sc):
    sc._head = sc._mid = sc._tail = 0
    sc._f_cp = sc._f_d = sc._f_n = 0
    sc._b_cp = sc._b_d = sc._b_n = 0


def restore(sc, d):
    sc.total_g = int(d["total_g"])
    sc._frac = int(d["frac"])
    sc._deficit = int(d["deficit"])
    sc.set_autozero(d["az"])
    sc.travel_p = int(d["travel_p"])
    sc.loaded_p = int(d["loaded_p"])
    sc.unweighed_p = int(d["unweighed_p"])
    sc._have = bool(d["have"])
    sc._seq = int(d["seq"])
    sc._pulses = int(d["pulses"])
    sc._uptime = int(d["uptime"])
    sc.sample_ticks = None  # the ticks of before the restart mean nothing now
    sc._r8 = int(d["r8"])
    sc._net_prev = int(d["net_prev"])
    sc._prev_ok = bool(d["prev_ok"])
    _clear_gate(sc)
    b = d["back"]
    if b[2]:
        # The decided part of the window comes back as one entry: only its sums matter.
        sc._g_inc[0] = 0
        sc._g_cp[0] = sc._b_cp = int(b[0])
        sc._g_d[0] = sc._b_d = int(b[1])
        sc._g_n[0] = sc._b_n = int(b[2])
        sc._g_bad[0] = 0
        sc._head = sc._mid = 1
    cap = len(sc._g_inc)
    for e in d["pending"][: cap - 2]:
        i = sc._head & (cap - 1)
        sc._g_inc[i] = int(e[0])
        sc._g_cp[i] = int(e[1])
        sc._g_d[i] = int(e[2])
        sc._g_n[i] = int(e[3])
        sc._g_bad[i] = int(e[4])
        sc._f_cp += sc._g_cp[i]
        sc._f_d += sc._g_d[i]
        sc._f_n += sc._g_n[i]
        sc._head += 1
    sc.est_g = int(d.get("est_g", 0))
    sc.unweighed_n = int(d.get("unweighed_n", 0))
    sc.test_load = bool(d.get("test_load", False))
    sc.calibrating_p = int(d.get("calibrating_p", 0))
    h = d.get("hold") or [0, 0, 0, 0, 0, 0]
    sc.hold = int(h[0])
    hd = sc._hd
    hd[0] = sc._mid + int(h[1])
    for i in range(1, 5):
        hd[i] = int(h[i + 1])
    sc.outage_ms = -1  # the first poll bridges an outage (Measurement sets its length)
    sc.gap[4] = 0
    ls = sc._ls
    ls[0] = ls[1] = ls[5] = 0
    sc.speed_lost = False
    old_shift = int(d["shift"])
    if old_shift != sc.shift:
        from gateway.measure.apply import _rescale

        _rescale(sc, old_shift)


def adopt_total(sc, total_g, n):
    """Continue from a totalizer figure the log holds but the checkpoint did not (a
    power cut fell between a record and the next checkpoint). The pending polls and the
    first n blocks of travel since that checkpoint are inside the figure; the rest of the
    outage is bridged like any other (a share of its travel)."""
    sc.total_g = int(total_g)
    sc._frac = 0
    sc._deficit = 0
    _clear_gate(sc)
    sc._hd[0] = 0
    sc.gap[4] = max(0, int(n))


def measurement(m, d):
    """Measurement.restore: every part from the checkpoint; the first poll then bridges
    the outage, bounded by the wall clock since the checkpoint, and nothing counts
    before the collector's serial is read (another unit may have been fitted)."""
    sc = m.scale
    restore(sc, d["scale"])
    m.autozero.restore(d["autozero"])
    m.running.restore(d["running"])
    production(m.production, d["production"])
    t = d.get("t")
    if t is not None:
        c = m.clock
        ms = int((c.time() - t) * 1000)
        sc.outage_ms = ms if ms >= 0 else -1  # a clock stepped back: not known
        if 0 <= ms < _TICKS_HALF:
            # The last sample's time on this run's ticks: the first poll's bound spans
            # the whole outage, the wait for that poll after this start included.
            sc.sample_ticks = c.ticks_add(c.ticks_ms(), -ms)
    m.restored = True
    lim = m._lim
    lim[6] = lim[7] = lim[8] = None  # restored alarms: their states reported once
    m.autozero.unchecked = None
    if m.verify_identity is not None:
        sc.verify_identity = 1
        sc._hold_on(_H_IDENTITY)
    m._produced(0, 0, False)


def reconcile(m, tail):
    sc = m.scale
    last = production_adopt(m.production, tail, sc.total_g)
    if last is not None:
        # The travel up to the record's end is inside its total; the rest of the outage
        # is bridged like any other.
        out = sc.outage_ms  # since the checkpoint, set by measurement() just before
        if out is None or out < 0:
            counted = 1 << 30  # not known: nothing of the outage is counted
        else:
            counted = int((last["t1"] - m.clock.time()) * 10) + out // 100
        adopt_total(sc, last["total_g"], counted)
        m._produced(0, 0, False)
    return last is not None


def production(p, d):
    iv = d["iv"]
    p.iv = dict(iv) if iv is not None else None
    if p.iv is not None:
        p.iv.setdefault("x", [0, 0, 0])  # written by an older firmware without it
    pend = [int(x) for x in d["pend"]] + [0, 0, 0]
    p._pg, p._pp, p._pr, p._pu = pend[:4]
    p._px = pend[4:7]
    p.periods = {k: list(v) for k, v in d["periods"].items()}
    p.last = {k: list(v) for k, v in d["last"].items()}
    p.history = [list(e) for e in d["history"]]
    p.coef_ppm = int(d["coef_ppm"])
    p._next_coef_t = None
    p._next_boundary = None
    p._last_ticks = None
    p._fresh = True


def production_adopt(p, tail, total_g):
    for r in tail:
        if r.get("type") == "total":
            per = p.periods.get(r.get("period"))
            if per is not None and per[1] == r.get("key"):
                p.last[r["period"]] = [r["key"], r["mass_g"], r["conv_g"]]
                del p.periods[r["period"]]
    last = None
    for r in tail:
        if r.get("type") == "prod" and "total_g" in r:
            last = r
    iv = p.iv
    if last is None or iv is None or last["t0"] < iv["t0"]:
        return None
    # Counted after the checkpoint, inside the record: the open periods get it too.
    g = p._pg + last["total_g"] - total_g
    for per in p.periods.values():
        per[2] += g
        per[3] += g * p.coef_ppm
    p._pg = p._pp = p._pr = p._pu = 0
    p._px = [0, 0, 0]
    p._open_at(last["t1"])
    return last
