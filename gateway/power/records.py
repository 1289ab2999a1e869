# The power side's records (docs/power.md, docs/uplink.md), loaded for each call only
# (gateway/power/energy.py): one `power` record per terminal per production interval, the
# belt drive's kWh and kWh per tonne for the prod record, the belt drive's and the mine
# total's energy for each period's total (the tariffs for the day's), restoring and
# adopting after a restart, and the figures people ask for.
#
# Interval energy: the register counts 0.01 kWh on the secondary side, too coarse for an
# interval, so the power readings are integrated (drivers/meters.py); the sum of what was
# reported is then held to the register: never below it, never above it by more than one
# register step plus what was integrated since its last reading. Energy the readings
# missed (the link down, the gateway off) comes back that way, and `adj_kwh` says how much.
from drivers import meters as mt

_FINE_PER_REG = 100  # 0.01 kWh in 0.1 Wh
_KINDS = ("shift", "day", "month", "quarter", "year")


def _kwh(fine, ratio):
    return round(fine * ratio / 10000, 3)


def _per_t(kwh, mass_g):
    return round(kwh * 1e6 / mass_g, 3) if mass_g > 0 and kwh is not None else None


def _mean(t, item, scale):
    n = t.n[item]
    return round(t.sums[item] / n * scale, 3) if n else None


def _role(pw, t):
    return 0 if t is pw.belt else (1 if t is pw.mine else -1)


def close_interval(pw, t0, t1, mass_g, run_s, dist_m, unweighed, calibrating):
    if t1 > pw.closed_t1:
        for t in pw.terms:
            if pw.done_t1[t.index] >= t1:
                continue  # its record was written when this close ran out of memory before
            fine, rec = _close(pw, t, t0, t1)
            implied = None
            if t is pw.belt and pw.cross is not None:
                implied = _cross(pw, rec, mass_g, run_s, dist_m, unweighed, calibrating)
            pw.emit("power", rec)
            _commit(pw, t, fine, t1)
            if implied is not None:
                _implied_to_periods(pw, implied, mass_g)
            if t is pw.belt:
                pw.last = {"t0": t0, "t1": t1, "kwh": rec["kwh"], "kw_mean": rec["kw_mean"],
                           "n": rec["n"], "state": rec["state"], "adj_kwh": rec["adj_kwh"]}
        pw.closed_t1 = t1
    # else: written before a power cut and closed again after it: no second record
    if pw.last is None:
        return None
    k = _per_t(pw.last["kwh"], mass_g)
    pw.last["kwh_per_t"] = k
    return {"kwh": pw.last["kwh"], "kwh_per_t": k}


def _cross(pw, rec, mass_g, run_s, dist_m, unweighed, calibrating):
    # The interval to the cross-check (docs/crosscheck.md), on the energy the readings
    # integrated: what was held to the register for readings missed is not this interval's.
    # Returns the implied mass (g) or None.
    from gateway.power import crosscheck as xc

    x = pw.cross
    flags = (xc.FAULT_SCALE if unweighed else 0) | (xc.CALIBRATING if calibrating else 0)
    if rec["state"] == "lost":
        flags |= xc.FAULT_METER
    # The readings are integrated up to the last one; the interval ends now. What the
    # drive drew since belongs to this interval, not to the next (a 2 s reading period is
    # a fifth of a 10 s interval).
    b = pw.belt
    c = pw.meters._clock
    tail = 0.0
    if b.have & 1:
        dt = c.ticks_diff(c.ticks_ms(), b.read_at[mt.P])
        if 0 <= dt <= 30000:
            tail = max(b.values[mt.P], 0) * b.ct * b.pt * dt / 3.6e10  # 0.1 W x ms -> kWh
    kwh = rec["kwh"] - rec["adj_kwh"] + tail - x.e_tail
    x.e_tail = tail
    implied = x.on_interval(run_s, dist_m, mass_g / 1000, kwh, rec["n"], flags)
    rec["implied_kg"] = None if implied is None else round(implied, 1)
    return None if implied is None else int(implied * 1000)


def _implied_to_periods(pw, implied_g, mass_g):
    # Beside the belt drive's and the mine's energy: the implied mass, and the scale's
    # over the same intervals.
    for kind in _KINDS:
        per = pw.periods.setdefault(kind, [0, 0])
        if len(per) < 4:
            per += [0, 0]
        per[2] += implied_g
        per[3] += mass_g


def _to_periods(pw, t, fine):
    r = _role(pw, t)
    if r >= 0:
        for kind in _KINDS:
            pw.periods.setdefault(kind, [0, 0])[r] += fine


def _commit(pw, t, fine, t1):
    # Once its record is in the log: the energy reported, the sums started afresh.
    i = t.index
    pw.rep[i] = pw._rep_new
    if t.have >> mt.EQ & 1:
        pw.eq0[i] = t.cum[1]
    _to_periods(pw, t, fine)
    for k in range(mt.N_ITEMS):
        t.n[k] = t.sums[k] = t.maxes[k] = 0
    t.fine = 0
    pw.done_t1[i] = t1


def _close(pw, t, t0, t1):
    """(energy in 0.1 Wh, the record) of terminal t's interval; changes nothing."""
    i = t.index
    ratio = t.ct * t.pt
    fine = integrated = t.fine
    rep = pw.rep[i]
    if t.have >> mt.E & 1:
        lo = t.cum[0] * _FINE_PER_REG
        if rep < 0:
            rep = lo - fine  # the base: the register now
        hi = lo + _FINE_PER_REG + t.fine_since_e
        cand = rep + fine
        if cand < lo:
            fine += lo - cand
        elif cand > hi:
            fine = hi - rep if hi > rep else 0
        rep += fine
    pw._rep_new = rep
    kvarh = None
    if t.have >> mt.EQ & 1 and pw.eq0[i] >= 0:
        kvarh = round((t.cum[1] - pw.eq0[i]) * ratio / 100, 3)
    n = t.n[mt.P]
    thd_v = max(t.maxes[mt.THDU + k] if t.n[mt.THDU + k] else 0 for k in range(3))
    thd_i = max(t.maxes[mt.THDI + k] if t.n[mt.THDI + k] else 0 for k in range(3))
    rec = {
        "t0": t0,
        "t1": t1,
        "address": t.address,
        "role": t.role,
        "kwh": _kwh(fine, ratio),
        "adj_kwh": _kwh(fine - integrated, ratio),
        "kvarh": kvarh,
        "kw_mean": _mean(t, mt.P, ratio / 10000),
        "kw_max": round(t.maxes[mt.P] * ratio / 10000, 3) if n else None,
        "pf": _mean(t, mt.PF, 0.001),
        "v": [_mean(t, mt.UA + k, t.pt / 10) for k in range(3)],
        "a": [_mean(t, mt.IA + k, t.ct / 1000) for k in range(3)],
        "hz": _mean(t, mt.F, 0.01),
        "thd_v": thd_v / 100,
        "thd_i": thd_i / 100,
        "n": n,
        "state": t.link.state,
    }
    return fine, rec


def close_period(pw, kind, mass_g):
    sums = pw.periods.pop(kind, None)
    b, m = (sums[0], sums[1]) if sums else (0, 0)
    out = {}
    if pw.cross is not None:
        have = sums is not None and len(sums) > 3 and sums[3] > 0
        out["implied_kg"] = round(sums[2] / 1000, 1) if have else None
        out["implied_scale_kg"] = round(sums[3] / 1000, 1) if have else None
    for t, s, name in ((pw.belt, b, ""), (pw.mine, m, "mine_")):
        if t is not None:
            kwh = _kwh(s, t.ct * t.pt)
            out[name + "kwh"] = kwh
            out[name + "kwh_per_t"] = _per_t(kwh, mass_g)
    if kind == "day":
        for t, k, name in ((pw.belt, 0, "tariff_kwh"), (pw.mine, 4, "mine_tariff_kwh")):
            if t is not None:
                out[name] = _tariffs(pw, t, k)
    return out or None


def _tariffs(pw, t, k):
    # Sharp, peak, flat, valley over the day, from the tariff registers (continuous).
    out = []
    r = t.ct * t.pt
    for j in range(4):
        now = t.cum[2 + j]
        start = pw.tariff0[k + j]
        out.append(round((now - start) * r / 100, 2) if start >= 0 else None)
        if t.have >> (mt.T1 + j) & 1:
            pw.tariff0[k + j] = now
    return out


def day_start(pw):
    """The tariff registers' first readings start the day's counts (called by checks)."""
    for t, k in ((pw.belt, 0), (pw.mine, 4)):
        if t is not None:
            for j in range(4):
                if pw.tariff0[k + j] < 0 and t.have >> (mt.T1 + j) & 1:
                    pw.tariff0[k + j] = t.cum[2 + j]


# --- after a restart


def restore(pw, d):
    x = d.get("x")
    if pw.cross is not None and x:
        try:
            restore_cross(pw.cross, x)
        except (KeyError, TypeError, ValueError):
            pass  # a state this firmware cannot read: it learns afresh
    terms = d.get("t", [])
    if len(terms) != len(pw.terms):
        return  # another set of terminals: start afresh
    for t, s in zip(pw.terms, terms):
        cum, raw, have, rep, eq0 = s
        for k in range(len(mt.REG_ITEMS)):
            t.cum[k] = cum[k]
            t.values[mt.REG_ITEMS[k]] = raw[k]
        t.have |= have & mt.REG_BITS
        t.unbounded |= have & mt.REG_BITS
        pw.rep[t.index] = rep
        pw.eq0[t.index] = eq0
    pw.periods = {k: list(v) for k, v in d.get("per", {}).items()}
    pw.tariff0 = list(d.get("tar", pw.tariff0))
    pw.closed_t1 = d.get("t1", 0)
    for t in pw.terms:
        pw.done_t1[t.index] = pw.closed_t1


def restore_cross(x, d):
    """The output-against-power cross-check x (gateway.power.crosscheck.CrossCheck) from
    the checkpoint's d. ValueError, KeyError or TypeError for one it cannot read."""
    learn = [float(v) for v in d["learn"]]
    wsum = [float(v) for v in d["w"]]
    ring, b, at_m, carry0 = d["carry"]
    ring = [float(v) for v in ring]
    bins = len(x.ring)
    if len(learn) != 12 or len(wsum) != 8 or len(ring) != bins:
        raise ValueError("crosscheck state of another shape")
    coef = d["coef"]
    coef = None if coef is None else (float(coef[0]), float(coef[1]), float(coef[2]))
    x.learn, x.wsum, x.ring = learn, wsum, ring
    x.bin = int(b) % bins
    x.bin_at_m = float(at_m)
    x.carry0 = float(carry0)
    x.hours = float(d["h"])
    x.windows = int(d["n"])
    x.dev_pct = d["dev"]
    x.win_bad, x.now_bad = [bool(v) for v in d["bad"]]
    x.anchor = d["anchor"]
    x.coef = coef
    x.ready = bool(d["ready"]) and coef is not None and coef[2] > 0


def adopt(pw, tail):
    """The power and total records written after the checkpoint (a cut between them and
    it), in the log's order: their energy is taken as reported, and a period whose total
    was written starts afresh, so nothing is lost or counted twice."""
    by_addr = {}
    for t in pw.terms:
        by_addr[t.address] = t
    since = pw.closed_t1  # the checkpoint's: records after it are adopted
    prod_g = {}
    for r in tail:
        if r.get("type") == "prod" and r["t1"] > since:
            prod_g[r["t1"]] = r.get("mass_g", 0)
    for r in tail:
        kind = r.get("type")
        if kind == "total" and int(r["t"]) > since and r.get("period") in pw.periods:
            del pw.periods[r["period"]]
            if r["period"] == "day":
                for t, k in ((pw.belt, 0), (pw.mine, 4)):
                    if t is not None:
                        for j in range(4):
                            pw.tariff0[k + j] = -1  # the next readings start the day
            continue
        if kind != "power" or r["t1"] <= since:
            continue
        t = by_addr.get(r.get("address"))
        if t is None:
            continue
        fine = int(r["kwh"] * 10000 / (t.ct * t.pt) + 0.5)
        if pw.rep[t.index] >= 0:
            pw.rep[t.index] += fine
        _to_periods(pw, t, fine)
        if t is pw.belt:
            pw.last = {"t0": r["t0"], "t1": r["t1"], "kwh": r["kwh"], "kw_mean": r["kw_mean"],
                       "n": r["n"], "state": r["state"], "adj_kwh": r["adj_kwh"]}
            if r.get("implied_kg") is not None and pw.cross is not None:
                _implied_to_periods(pw, int(r["implied_kg"] * 1000), prod_g.get(r["t1"], 0))
        if r["t1"] > pw.closed_t1:
            pw.closed_t1 = r["t1"]
        pw.done_t1[t.index] = r["t1"]


# --- for people


def _kw(t):
    return round(t.values[mt.P] * t.ct * t.pt / 10000, 2) if t.have & 1 else None


def figures(pw):
    """The LCD's: the belt drive's kW, the last interval's kWh/t, terminals answering."""
    up = 0
    for t in pw.terms:
        up += t.link.state != "lost"
    last = pw.last or {}
    return {"kw": _kw(pw.belt) if pw.belt else None, "kwh_per_t": last.get("kwh_per_t"),
            "up": up, "n": len(pw.terms)}


def status(pw):
    m = pw.meters
    bus = m.bus
    out = {"terminals": [], "last": pw.last,
           "bus": {"round_ms": m.round_ms, "round_bus_ms": m.round_bus_ms, "rounds": m.rounds,
                   "reads": m.reads, "failures": m.failures, "fast_late": m.fast_late,
                   "requests": bus.requests, "replies": bus.replies, "timeouts": bus.timeouts,
                   "checksum_errors": bus.checksum_errors, "frame_errors": bus.frame_errors,
                   "wrong_address": bus.wrong_address, "abnormal": bus.abnormal,
                   "uart_errors": bus.uart_errors}}
    for t in pw.terms:
        v = t.values
        out["terminals"].append({
            "address": t.address,
            "role": t.role,
            "state": t.link.state,
            "kw": _kw(t),
            "kwh": round(v[mt.E] * t.ct * t.pt / 100, 2) if t.have >> mt.E & 1 else None,
            "pf": v[mt.PF] / 1000 if t.have >> mt.PF & 1 else None,
            "v": [v[mt.UA + k] * t.pt / 10 if t.have >> (mt.UA + k) & 1 else None
                  for k in range(3)],
        })
    if pw.belt is not None:
        # The day so far: its closed intervals and what the open one has integrated.
        sums = pw.periods.get("day")
        out["day_kwh"] = _kwh((sums[0] if sums else 0) + pw.belt.fine,
                              pw.belt.ct * pw.belt.pt)
    if pw.cross is not None:
        out["crosscheck"] = pw.cross.status()
    return out
