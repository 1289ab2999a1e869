# The power side's figures (docs/power.md): every reading of the terminals (drivers/meters.py)
# is taken into its terminal's interval sums, allocation-free; when production closes an
# interval, one `power` record per terminal is written and the belt drive's kWh per tonne
# goes into the `prod` record; each period's total gets the belt drive's and the mine
# total's kWh and kWh/t (and, for the day, the tariff energies).
#
# Interval energy: the register counts 0.01 kWh on the secondary side, too coarse for an
# interval, so the power readings are integrated (trapezoids, 0.1 Wh); the sum of what
# was reported is then held to the register: never below it, never above it by more than
# one register step plus what was integrated since its last reading. Energy the readings
# missed (the link down, the gateway off) comes back that way, reported as `adj_kwh`.
from array import array

from drivers import meters as mt
from hal.compat import const

# Per terminal sums (an array of ints), indexed by these.
_N = const(0)  # power readings in the interval
_SUM_P = const(1)  # 0.1 W
_MAX_P = const(2)
_FINE = const(3)  # integrated in the interval, 0.1 Wh
_ACC = const(4)  # integration remainder, 0.05 W.ms
_SINCE = const(5)  # integrated since the last energy reading, 0.1 Wh
_LAST_P = const(6)
_LAST_T = const(7)  # ticks of the last power reading
_REP = const(8)  # every interval's reported energy so far, 0.1 Wh (-1: no base yet)
_EQ0 = const(9)  # reactive register (continuous) at the interval's start (-1: none)
_N_PF = const(10)
_SUM_PF = const(11)
_N_F = const(12)
_SUM_F = const(13)
_N_U = const(14)  # per phase, 3
_SUM_U = const(17)  # 3
_N_I = const(20)  # 3
_SUM_I = const(23)  # 3
_THD_U = const(26)  # worst of the interval, 0.01 %
_THD_I = const(27)
_HAVE_P = const(28)  # 1 once a power reading can start a trapezoid
_SIZE = const(29)
_KEEP = const((_REP, _EQ0))  # what the checkpoint keeps; the rest starts afresh
_ZERO = const((_N, _SUM_P, _MAX_P, _FINE))  # cleared at each close, with _N_PF.._THD_I
_FINE_PER_REG = const(100)  # 0.01 kWh in 0.1 Wh
_ACC_PER_FINE = const(7200000)  # 0.1 Wh = 360 J = 7.2e6 (0.05 W.ms)
_GAP_MS = const(120000)  # readings further apart than this are not integrated
_KINDS = ("shift", "day", "month", "quarter", "year")
_NOMINAL_HZ = const(5000)
_PHASE_LOSS = const(50)  # % of nominal voltage
_RATED_MA = const(5000)


def _mean(s, n, scale):
    return round(s / n * scale, 3) if n else None


def _kwh(fine, ratio):
    return round(fine * ratio / 10000, 3)


def _per_t(kwh, mass_g):
    return round(kwh * 1e6 / mass_g, 3) if mass_g > 0 and kwh is not None else None


class Power:
    """meters: the drivers.meters.Meters job; emit, alarm: the app's; running(): the belt's
    state from DI1 and the pulses ("running", "stopped", ...)."""

    name = "power"

    def __init__(self, meters, emit, alarm, running, params):
        self.meters = meters
        self.emit = emit
        self.alarm = alarm
        self.running = running
        self.terms = meters.terminals
        self._acc = []
        for t in self.terms:
            a = array("i", bytes(4 * _SIZE))
            a[_REP] = a[_EQ0] = -1
            self._acc.append(a)
        self.belt = meters.belt
        self.mine = None
        for t in self.terms:
            if t.role == "mine_total":
                self.mine = t
        self.periods = {}  # kind -> [belt 0.1 Wh, mine 0.1 Wh]
        self.tariff0 = [-1] * 8  # continuous tariff registers at the day's start: belt, mine
        self.closed_t1 = 0  # the last interval closed (or adopted)
        self.last = None  # the last interval's belt-drive figures, for people and issue 16
        self.apply(params)
        meters.on_reading = self.on_reading
        meters.on_event = self.on_event

    def apply(self, p):
        self.dev_pct = p["alarms.voltage_dev_pct"]
        self.pf_min = p["alarms.pf_min"]
        self.thd_max = int(p["alarms.thd_v_max_pct"] * 100)
        self.freq_dev = int(p["alarms.freq_dev_hz"] * 100)
        self.drive_run_kw = p["alarms.drive_run_kw"]

    # --- per reading (drivers.meters.Meters.on_reading): no allocation

    def on_reading(self, t, item, v, now_ms):
        a = self._acc[t.index]
        if item == mt.P:
            self._integrate(a, v, now_ms)
            a[_N] += 1
            a[_SUM_P] += v
            if a[_N] == 1 or v > a[_MAX_P]:
                a[_MAX_P] = v
        elif item == mt.E:
            a[_SINCE] = 0
            if a[_REP] < 0:
                a[_REP] = t.cum[mt.REG_E] * _FINE_PER_REG
        elif item == mt.EQ:
            if a[_EQ0] < 0:
                a[_EQ0] = t.cum[mt.REG_EQ]
        elif item == mt.PF:
            a[_N_PF] += 1
            a[_SUM_PF] += v if v >= 0 else -v
        elif item == mt.F:
            a[_N_F] += 1
            a[_SUM_F] += v
        elif mt.UA <= item < mt.UA + 3:
            a[_N_U + item - mt.UA] += 1
            a[_SUM_U + item - mt.UA] += v
        elif mt.IA <= item < mt.IA + 3:
            a[_N_I + item - mt.IA] += 1
            a[_SUM_I + item - mt.IA] += v if v >= 0 else -v
        elif mt.THDU <= item < mt.THDU + 3:
            if v > a[_THD_U]:
                a[_THD_U] = v
        elif mt.THDI <= item < mt.THDI + 3:
            if v > a[_THD_I]:
                a[_THD_I] = v
        elif mt.T1 <= item < mt.T1 + 4:
            k = -1
            if t is self.belt:
                k = 0
            elif t is self.mine:
                k = 4
            if k >= 0 and self.tariff0[k + item - mt.T1] < 0:
                self.tariff0[k + item - mt.T1] = t.cum[mt.REG_T1 + item - mt.T1]

    def _integrate(self, a, p, now_ms):
        if p < 0:
            p = 0  # forward energy only, as the register counts it
        if a[_HAVE_P]:
            dt = self.meters._clock.ticks_diff(now_ms, a[_LAST_T])
            if 0 < dt <= _GAP_MS:
                acc = a[_ACC] + (a[_LAST_P] + p) * dt
                d = acc // _ACC_PER_FINE
                a[_ACC] = acc - d * _ACC_PER_FINE
                a[_FINE] += d
                a[_SINCE] += d
        a[_HAVE_P] = 1
        a[_LAST_P] = p
        a[_LAST_T] = now_ms

    def on_event(self, code, t, detail):
        self.emit("event", {"code": code, "detail": detail})
        if code != "meter_rollover":
            self.alarm("meter_replaced", True, "%s: %s" % (t.address, code))

    # --- production's hooks (gateway.measure.production.Production)

    def close_interval(self, t0, t1, mass_g):
        """The interval [t0, t1) closed with mass_g of output: a `power` record per
        terminal; returns the fields for the prod record."""
        if t1 <= self.closed_t1:
            # Written before a power cut, then closed again: no second record.
            return self._prod_fields(mass_g)
        belt_kwh = None
        for t in self.terms:
            fine, rec = self._close(t, t0, t1)
            self.emit("power", rec)
            per = 0 if t is self.belt else (1 if t is self.mine else -1)
            if per >= 0:
                for kind in _KINDS:
                    self.periods.setdefault(kind, [0, 0])[per] += fine
            if t is self.belt:
                belt_kwh = rec["kwh"]
                self.last = {"t0": t0, "t1": t1, "kwh": belt_kwh, "kw_mean": rec["kw_mean"],
                             "n": rec["n"], "state": rec["state"], "adj_kwh": rec["adj_kwh"]}
        self.closed_t1 = t1
        return self._prod_fields(mass_g)

    def _prod_fields(self, mass_g):
        if self.last is None:
            return None
        k = _per_t(self.last["kwh"], mass_g)
        self.last["kwh_per_t"] = k
        return {"kwh": self.last["kwh"], "kwh_per_t": k}

    def _close(self, t, t0, t1):
        a = self._acc[t.index]
        ratio = t.ct * t.pt
        fine = a[_FINE]
        integrated = fine
        if t.have >> mt.E & 1 and a[_REP] >= 0:
            lo = t.cum[mt.REG_E] * _FINE_PER_REG
            hi = lo + _FINE_PER_REG + a[_SINCE]
            cand = a[_REP] + fine
            if cand < lo:
                fine += lo - cand
            elif cand > hi:
                fine = hi - a[_REP] if hi > a[_REP] else 0
            a[_REP] += fine
        kvarh = None
        if a[_EQ0] >= 0:
            eq = t.cum[mt.REG_EQ]
            kvarh = round((eq - a[_EQ0]) * ratio / 100, 3)
            a[_EQ0] = eq
        n = a[_N]
        rec = {
            "t0": t0,
            "t1": t1,
            "address": t.address,
            "role": t.role,
            "kwh": _kwh(fine, ratio),
            "adj_kwh": _kwh(fine - integrated, ratio),
            "kvarh": kvarh,
            "kw_mean": _mean(a[_SUM_P], n, ratio / 10000),
            "kw_max": round(a[_MAX_P] * ratio / 10000, 3) if n else None,
            "pf": _mean(a[_SUM_PF], a[_N_PF], 0.001),
            "v": [_mean(a[_SUM_U + k], a[_N_U + k], t.pt / 10) for k in range(3)],
            "a": [_mean(a[_SUM_I + k], a[_N_I + k], t.ct / 1000) for k in range(3)],
            "hz": _mean(a[_SUM_F], a[_N_F], 0.01),
            "thd_v": a[_THD_U] / 100,
            "thd_i": a[_THD_I] / 100,
            "n": n,
            "state": t.link.state,
        }
        for k in _ZERO:
            a[k] = 0
        for k in range(_N_PF, _HAVE_P):
            a[k] = 0
        return fine, rec

    def close_period(self, kind, mass_g):
        """A shift, day, month, quarter or year closed with mass_g: its total's fields."""
        sums = self.periods.pop(kind, None)
        if self.belt is None and self.mine is None:
            return None
        b, m = sums if sums else (0, 0)
        out = {}
        if self.belt is not None:
            kwh = _kwh(b, self.belt.ct * self.belt.pt)
            out["kwh"] = kwh
            out["kwh_per_t"] = _per_t(kwh, mass_g)
        if self.mine is not None:
            kwh = _kwh(m, self.mine.ct * self.mine.pt)
            out["mine_kwh"] = kwh
            out["mine_kwh_per_t"] = _per_t(kwh, mass_g)
        if kind == "day":
            for name, t, k in (("tariff_kwh", self.belt, 0), ("mine_tariff_kwh", self.mine, 4)):
                if t is not None:
                    out[name] = self._tariffs(t, k)
        return out

    def _tariffs(self, t, k):
        # Sharp, peak, flat, valley over the day, from the tariff registers.
        out = []
        r = t.ct * t.pt
        for j in range(4):
            now = t.cum[mt.REG_T1 + j]
            start = self.tariff0[k + j]
            out.append(round((now - start) * r / 100, 2) if start >= 0 else None)
            if t.have >> (mt.T1 + j) & 1:
                self.tariff0[k + j] = now
        return out

    # --- checks (a job, every second): docs/alarms.md

    def run(self, now_ms):
        m = self.meters
        lost = ""
        dev = loss = pf = thd = hz = ""
        max_age = max(30000, 3 * m.round_ms)
        for t in self.terms:
            if t.link.state == "lost":
                lost += " " + t.address
                continue
            v = t.values
            nom = int(t.nominal_v * 10)
            ok = False
            low = 0
            for k in range(3):
                if not m.fresh(t, mt.UA + k, now_ms, max_age):
                    continue
                u = v[mt.UA + k]
                if u * 100 > nom * 80:
                    ok = True
                if u * 100 < nom * _PHASE_LOSS:
                    low += 1
                elif abs(u - nom) * 100 > nom * self.dev_pct:
                    dev += " %s/%s" % (t.address, "ABC"[k])
                if m.fresh(t, mt.THDU + k, now_ms, max_age) and v[mt.THDU + k] > self.thd_max:
                    thd += " %s/%s" % (t.address, "ABC"[k])
            if low and ok:
                loss += " " + t.address
            if m.fresh(t, mt.PF, now_ms, max_age) and m.fresh(t, mt.P, now_ms, max_age) and \
                    v[mt.P] > 0 and abs(v[mt.PF]) < self.pf_min * 1000 and self._loaded(t):
                pf += " %s" % t.address
            if m.fresh(t, mt.F, now_ms, max_age) and abs(v[mt.F] - _NOMINAL_HZ) > self.freq_dev:
                hz += " %s" % t.address
        al = self.alarm
        al("meter_link_lost", bool(lost), lost.strip())
        al("voltage_deviation", bool(dev), dev.strip())
        al("phase_loss", bool(loss), loss.strip())
        al("power_factor_low", bool(pf), pf.strip())
        al("voltage_thd_high", bool(thd), thd.strip())
        al("frequency_out_of_range", bool(hz), hz.strip())
        self._drive_check(now_ms)

    def _loaded(self, t):
        # Power factor means something only under load: a tenth of the rated current.
        for k in range(3):
            if abs(t.values[mt.IA + k]) * 10 >= _RATED_MA:
                return True
        return False

    def _drive_check(self, now_ms):
        b = self.belt
        if b is None or not self.meters.fresh(b, mt.P, now_ms, 3 * mt.FAST_MS + 2000):
            self.alarm("drive_power_belt_stopped", False)
            self.alarm("belt_running_no_drive_power", False)
            return
        kw = b.values[mt.P] * b.ct * b.pt / 10000
        state = self.running()
        drawing = kw > self.drive_run_kw
        self.alarm("drive_power_belt_stopped", drawing and state == "stopped",
                   "%.1f kW" % kw if drawing else "")
        self.alarm("belt_running_no_drive_power", not drawing and state == "running",
                   "%.1f kW" % kw if not drawing else "")

    # --- for people (LCD, CLI status, the center's status) and issue 16

    def kw_now(self, t):
        if not t.have & 1:
            return None
        return round(t.values[mt.P] * t.ct * t.pt / 10000, 2)

    def status(self):
        out = {"terminals": [], "last": self.last, "bus": self.meters.counters()}
        for t in self.terms:
            v = t.values
            out["terminals"].append({
                "address": t.address,
                "role": t.role,
                "state": t.link.state,
                "kw": self.kw_now(t),
                "kwh": round(v[mt.E] * t.ct * t.pt / 100, 2) if t.have >> mt.E & 1 else None,
                "pf": v[mt.PF] / 1000 if t.have >> mt.PF & 1 else None,
                "v": [v[mt.UA + k] * t.pt / 10 if t.have >> (mt.UA + k) & 1 else None
                      for k in range(3)],
            })
        if self.belt is not None:
            sums = self.periods.get("day")
            if sums:
                out["day_kwh"] = _kwh(sums[0], self.belt.ct * self.belt.pt)
        return out

    # --- persistence

    def snapshot(self):
        return {
            "t": [[t.snapshot(), [self._acc[t.index][k] for k in _KEEP]] for t in self.terms],
            "per": self.periods,
            "tar": self.tariff0,
            "t1": self.closed_t1,
        }

    def restore(self, d):
        terms = d.get("t", [])
        if len(terms) != len(self.terms):
            return  # another set of terminals: start afresh
        for t, (ts, keep) in zip(self.terms, terms):
            t.restore(ts)
            a = self._acc[t.index]
            for k, v in zip(_KEEP, keep):
                a[k] = v
        self.periods = {k: list(v) for k, v in d.get("per", {}).items()}
        self.tariff0 = list(d.get("tar", self.tariff0))
        self.closed_t1 = d.get("t1", 0)

    def adopt(self, tail):
        """After restore(): take over the power records written after the checkpoint (a
        cut between them and it), so that their energy is neither lost nor counted twice."""
        by_addr = {}
        for t in self.terms:
            by_addr[t.address] = t
        for r in tail:
            if r.get("type") != "power" or r["t1"] <= self.closed_t1:
                continue
            t = by_addr.get(r.get("address"))
            if t is None:
                continue
            a = self._acc[t.index]
            fine = int(r["kwh"] * 10000 / (t.ct * t.pt) + 0.5)
            if a[_REP] >= 0:
                a[_REP] += fine
            per = 0 if t is self.belt else (1 if t is self.mine else -1)
            if per >= 0:
                for kind in _KINDS:
                    self.periods.setdefault(kind, [0, 0])[per] += fine
            if t is self.belt:
                self.last = {"t0": r["t0"], "t1": r["t1"], "kwh": r["kwh"],
                             "kw_mean": r.get("kw_mean"), "n": r.get("n"),
                             "state": r.get("state"), "adj_kwh": r.get("adj_kwh")}
        for r in tail:
            if r.get("type") == "power" and r["t1"] > self.closed_t1:
                self.closed_t1 = r["t1"]
