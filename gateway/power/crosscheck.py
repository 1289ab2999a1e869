# Output against power (计量产量与用电异常): the belt drive's energy over running time is
# close to linear in what the belt did,
#     E ≈ c0·t_run + c1·distance + c2·mass      (kWh; h, km, t)
# (motor and drive losses while running, empty-belt friction per km, lift and friction per
# tonne). The gateway learns c0..c2 from its own production intervals and sets the mass
# that the power implies, (E − c0·t − c1·d) / c2, beside the scale's. docs/crosscheck.md.
#
# The estimator is exponentially weighted least squares (recursive least squares with
# forgetting, kept as its normal equations, which cannot wind up) solved as a 3x3 system
# once a window. Only + − × ÷ and sqrt: the same bits on MicroPython and CPython.
#
# Windows of crosscheck.window_min running minutes are judged, then learned only when they
# agree, so the model never learns from what it judges. A second rule, fed every drive
# power reading, raises at once when the drive draws loaded power while the scale weighs
# next to nothing (material bypassing the frame, cells or speed sensor disconnected).
from math import sqrt

from hal.compat import const

ALARM = "output_power_mismatch"

# Flags of a production interval (on_interval).
FAULT_SCALE = const(1)  # a cell, ADC or speed fault: judged, not learned
FAULT_METER = const(2)  # the drive's energy is not known: skipped
CALIBRATING = const(4)  # a calibration ran: skipped

# Normal-equation sums, indices into one list: the products of (t, d, m) with each other
# and with E, then ΣE², ΣE and the count.
_TT = const(0)
_TD = const(1)
_TM = const(2)
_DD = const(3)
_DM = const(4)
_MM = const(5)
_TE = const(6)
_DE = const(7)
_ME = const(8)
_EE = const(9)
_E = const(10)
_N = const(11)
_SUMS = const(12)

_MEMORY = const(0.5)  # older windows fade with a time constant of learn_h/2 running hours
_PENDING_WEIGHT = const(0.25)  # a window off by tol/2..tol teaches a quarter as much
_RIDGE = const(1e-6)  # on the unit diagonal: splits running vs friction at one speed only
_SPREAD_MIN_PCT = const(10.0)  # load spread (std of t/h, % of design) needed to be ready
_SPEED_MARGIN = const(0.1)  # judged only within 2 std of the learned speed, + 10 %
_MIN_READINGS = const(2)
_EMPTY_NOW = const(0.25)  # power without output: the scale's rate under 1/4 of the power's
_EMPTY_CARRY = const(0.75)  # ... and its mean over the carry under 3/4 of it
_HOLD_S = const(20)  # ... for this long (a drive starting up)
_BINS = const(8)
_DEV_CAP = const(999.0)
_ANCHOR_MIN = const(0.5)  # a re-anchoring factor outside the material factor's range is refused
_ANCHOR_MAX = const(2.0)

# Why learning is paused (status).
_P_NONE = const(0)
_P_SCALE = const(1)
_P_METER = const(2)
_P_CAL = const(3)
_P_MISMATCH = const(4)
_PAUSED = (None, "scale fault", "meter fault", "calibration", "mismatch")


def _add(s, k, t, d, m, e):
    # One row of weight k.
    s[_TT] += k * t * t
    s[_TD] += k * t * d
    s[_TM] += k * t * m
    s[_DD] += k * d * d
    s[_DM] += k * d * m
    s[_MM] += k * m * m
    s[_TE] += k * t * e
    s[_DE] += k * d * e
    s[_ME] += k * m * e
    s[_EE] += k * e * e
    s[_E] += k * e
    s[_N] += k


def solve(s):
    """(c0, c1, c2) from the sums, or None without data. Columns scaled to a unit diagonal,
    a small ridge on it, Cramer's rule: exact arithmetic order on every interpreter."""
    if s[_TT] <= 0 or s[_DD] <= 0 or s[_MM] <= 0:
        return None
    k0 = 1 / sqrt(s[_TT])
    k1 = 1 / sqrt(s[_DD])
    k2 = 1 / sqrt(s[_MM])
    a = 1 + _RIDGE
    a01 = s[_TD] * k0 * k1
    a02 = s[_TM] * k0 * k2
    a12 = s[_DM] * k1 * k2
    b0 = s[_TE] * k0
    b1 = s[_DE] * k1
    b2 = s[_ME] * k2
    c00 = a * a - a12 * a12
    c01 = a02 * a12 - a01 * a
    c02 = a01 * a12 - a * a02
    c11 = a * a - a02 * a02
    c12 = a01 * a02 - a * a12
    c22 = a * a - a01 * a01
    det = a * c00 + a01 * c01 + a02 * c02
    if det <= 0:
        return None
    return (
        (c00 * b0 + c01 * b1 + c02 * b2) / det * k0,
        (c01 * b0 + c11 * b1 + c12 * b2) / det * k1,
        (c02 * b0 + c12 * b1 + c22 * b2) / det * k2,
    )


def _spread(s, ij, jj):
    """Weighted std of (column j / t) over the learned intervals: t/h for mass, km/h for
    distance, and its mean."""
    if s[_TT] <= 0:
        return 0.0, 0.0
    mean = s[ij] / s[_TT]
    var = s[jj] / s[_TT] - mean * mean
    return mean, sqrt(var) if var > 0 else 0.0


class CrossCheck:
    def __init__(self, emit, alarm):
        self.emit = emit
        self.alarm = alarm
        self.learn = [0.0] * _SUMS  # what the model knows, forgotten over running hours
        self.hours = 0.0  # running hours learned, not forgotten
        self.ready = False
        self.coef = None  # (c0 kW, c1 kWh/km, c2 kWh/t) while it has data
        self._wsum = [0.0] * 8  # this window's t, d, m, E (judged), and of its clean
        # intervals (learned, as one row, if the window agrees)
        self.dev_pct = None  # the last judged window's scale against power, %
        self.win_bad = False  # a window disagreed beyond the tolerance
        self.now_bad = False  # power without output
        self.anchor = False  # a material test asks the next loaded window to re-anchor
        self._ring = [0.0] * _BINS  # weighed (t) per bin of belt travel
        self._bin = 0
        self._bin_m = 0.0  # travel into the current bin
        self._carry0 = 0.0  # carry_t() when the window opened
        self._without_s = 0.0
        self._agree_s = 0.0
        self._paused = _P_NONE
        self._reported = False  # the alarm's state as last reported
        self._report = False  # report it at the next judgement (after a restore)
        self._anchor_who = None

    def apply_params(self, flat):
        self.learn_h = float(flat["crosscheck.learn_h"])
        self.window_h = float(flat["crosscheck.window_min"]) / 60
        self.tol_pct = float(flat["crosscheck.tolerance_pct"])
        self.design_tph = float(flat["scale.design_tph"])
        self.min_tph = float(flat["crosscheck.min_load_pct"]) * self.design_tph / 100
        self.design_mps = float(flat["scale.design_speed_mps"])
        # Weighed material rides the carry side, half the belt's length, to the head.
        self.bin_m = float(flat["scale.belt_length_m"]) / 2 / _BINS

    # --- every production interval
    def on_interval(self, run_s, dist_m, mass_kg, kwh, readings, flags):
        """One production interval of the belt drive: run_s of belt running, dist_m of
        belt travel, the scale's mass_kg, the drive's kwh over the interval from
        `readings` power readings, FAULT_*/CALIBRATING flags. Returns the mass (kg) the
        energy implies, or None (no model yet, or the energy is not known)."""
        if kwh is None or readings < _MIN_READINGS or flags & FAULT_METER:
            self._paused = _P_METER
            return None
        t = run_s / 3600
        d = dist_m / 1000
        m = mass_kg / 1000
        implied = self.implied_t(t, d, kwh) * 1000 if self.ready else None
        if flags & CALIBRATING:
            self._paused = _P_CAL
            return implied
        if run_s <= 0:
            return implied
        w = self._wsum
        w[0] += t
        w[1] += d
        w[2] += m
        w[3] += kwh
        if flags & FAULT_SCALE:
            self._paused = _P_SCALE
        else:
            self._paused = _P_MISMATCH if self.win_bad or self.now_bad else _P_NONE
            w[4] += t
            w[5] += d
            w[6] += m
            w[7] += kwh
        if w[0] >= self.window_h:
            self._close_window()
        return implied

    def implied_t(self, t_h, d_km, kwh):
        """The mass (t) that kwh implies over t_h running hours and d_km of travel."""
        c = self.coef
        return (kwh - c[0] * t_h - c[1] * d_km) / c[2]

    def _close_window(self):
        w = self._wsum
        # Energy is spent carrying material from the frame to the head: count the part of
        # the carrying done in this window, not the mass weighed in it.
        carry = self.carry_t()
        lag = self._carry0 - carry
        self._carry0 = carry
        t, d, m, e = w[0], w[1], w[2] + lag, w[3]
        w[6] += lag
        weight = 0.0 if self.win_bad or self.now_bad else 1.0
        if self.ready:
            implied = self.implied_t(t, d, e)
            dev = self._deviation(t, d, m, implied)
            if self.anchor and dev is not None and self._reanchor(dev):
                weight = 1.0
            elif self.anchor:
                weight = 0.0  # nothing learned between the material test and its window
            elif dev is not None:
                self._verdict(dev, t, m, implied)
                if self.win_bad:
                    weight = 0.0
                elif abs(dev) > self.tol_pct / 2:
                    weight *= _PENDING_WEIGHT
        if weight > 0 and w[4] > 0:
            self._merge(weight)
        for i in range(8):
            w[i] = 0.0

    def _deviation(self, t, d, m, implied):
        """The window's scale against power (%), or None when it is not judged: a low
        load, or a belt speed the model has not learned."""
        if max(m, implied) < self.min_tph * t:
            return None
        v_mean, v_std = _spread(self.learn, _TD, _DD)
        if abs(d / t - v_mean) > 2 * v_std + _SPEED_MARGIN * v_mean:
            return None
        dev = (m - implied) / max(implied, self.design_tph * t / 20) * 100
        return max(-_DEV_CAP, min(_DEV_CAP, dev))

    def _verdict(self, dev, t, m, implied):
        # Hysteresis: beyond the tolerance raises, within half of it clears.
        self.dev_pct = dev
        mag = abs(dev)
        if mag > self.tol_pct:
            self.win_bad = True
            if self._due():
                self._set(
                    "scale %s by %.1f %% against the drive's power over %d running min "
                    "(scale %.1f t, power implies %.1f t)"
                    % ("under-reads" if dev < 0 else "over-reads", mag, t * 60 + 0.5, m, implied)
                )
        elif mag <= self.tol_pct / 2:
            self.win_bad = False
            if self._due():
                self._set("scale and drive power agree again (%.1f %%)" % dev)

    def _merge(self, weight):
        """The window's clean intervals into the model as one row of `weight`, older rows
        forgotten by e^(-weight*t/(learn_h/2)) (a Padé ratio: no exp, the same on every
        interpreter). A whole window, not each interval: what an interval's energy
        carries was weighed over the belt's transit, partly in the interval before."""
        w = self._wsum
        t = w[4]
        x = min(weight * t / (self.learn_h * _MEMORY), 1.0) / 2
        f = (1 - x) / (1 + x)
        s = self.learn
        for i in range(_SUMS):
            s[i] *= f
        _add(s, weight, t, w[5], w[6], w[7])
        self.hours += t
        coef = solve(s)
        if coef is None or coef[2] <= 0:
            return
        self.coef = coef
        if not self.ready and self.hours >= self.learn_h:
            if _spread(s, _TM, _MM)[1] * 100 >= _SPREAD_MIN_PCT * self.design_tph:
                self.ready = True
                self.emit("event", {"code": "crosscheck_ready", "detail": self._model()})

    # --- every drive power reading
    def on_power(self, kw, speed_mps, rate_tph, dt_s):
        """One reading of the drive's power (kW), with the scale's belt speed and rate
        (t/h) now, dt_s after the last: power without output raises at once."""
        c = self.coef
        c0 = max(c[0], 0.0) if c is not None else 0.0
        # While the drive runs the belt moves: at design speed if the sensor says not.
        mps = speed_mps if speed_mps > 0 else self.design_mps
        if kw > c0 / 2:
            self._carry(rate_tph * dt_s / 3600, mps * dt_s)
        if not self.ready:
            return
        implied = (kw - c0 - max(c[1], 0.0) * 3.6 * speed_mps) / c[2]
        if implied < self.min_tph:
            self._without_s = 0.0
            return
        # The scale weighs next to nothing now, and what it weighed on the carry does not
        # account for the power either (after a feed stops, the carry empties and the
        # power falls with it; a belt stopped loaded starts again with its load).
        if rate_tph < implied * _EMPTY_NOW and self.carry_tph(mps) < implied * _EMPTY_CARRY:
            self._without_s += dt_s
            self._agree_s = 0.0
            if self._without_s >= _HOLD_S and not self.now_bad:
                self.now_bad = True
                if self._due():
                    self._set(
                        "power without output: the belt drive draws %.0f kW, %.0f t/h by "
                        "the model, while the scale weighs %.0f t/h (material bypassing "
                        "the frame, cells or speed sensor disconnected)" % (kw, implied, rate_tph)
                    )
        else:
            self._without_s = 0.0
            self._agree_s += dt_s
            if self._agree_s >= _HOLD_S and self.now_bad:
                self.now_bad = False
                if self._due():
                    self._set("the scale weighs what the drive's power implies again")

    def _carry(self, t, dx_m):
        # What the scale weighed, in bins of belt travel over the last carry length.
        i = self._bin
        self._ring[i] += t
        self._bin_m += dx_m
        if self._bin_m >= self.bin_m:
            self._bin_m = 0.0
            i = (i + 1) % _BINS
            self._ring[i] = 0.0
            self._bin = i

    def carry_tph(self, speed_mps):
        """The flow (t/h) that the scale's material on the carry makes at speed_mps: what
        the drive's power should imply."""
        span_m = (_BINS - 1) * self.bin_m + self._bin_m
        return sum(self._ring) * speed_mps * 3600 / span_m

    def carry_t(self):
        """What the drive has still to carry of what the scale weighed (t): the mass on
        the carry, each bin by the share of the carry it has left to go."""
        out = 0.0
        i = self._bin
        for k in range(_BINS):
            out += self._ring[(i - k) % _BINS] * (_BINS - k - 0.5)
        return out / _BINS

    def _due(self):
        # One alarm, two rules: reported when it changes, and once after a restart (the
        # detail is formatted only then).
        return (self.win_bad or self.now_bad) != self._reported or self._report

    def _set(self, detail):
        self._reported = self.win_bad or self.now_bad
        self._report = False
        self.alarm(ALARM, self._reported, detail)

    # --- the technician
    def reanchor(self, who=None):
        """A technician-confirmed material test: the scale is right from now on. While
        learning, learning starts again; once ready, the next loaded window sets the
        model's mass axis to the scale's (an event says by how much)."""
        for i in range(8):
            self._wsum[i] = 0.0
        if self.ready:
            self.anchor = True
            self._anchor_who = who
            return
        for i in range(_SUMS):
            self.learn[i] = 0.0
        self.hours = 0.0
        self.coef = None
        detail = {"by": who, "restart": True}
        self.emit("event", {"code": "crosscheck_reanchored", "detail": detail})

    def _reanchor(self, dev):
        self.anchor = False
        r = 1 + dev / 100
        detail = {"by": self._anchor_who, "factor": r}
        if not _ANCHOR_MIN <= r <= _ANCHOR_MAX:
            # No material test moves a scale that far: judge the window as any other.
            detail["refused"] = True
            self.emit("event", {"code": "crosscheck_reanchored", "detail": detail})
            return False
        # Every learned mass as the corrected scale would have weighed it.
        s = self.learn
        s[_TM] *= r
        s[_DM] *= r
        s[_ME] *= r
        s[_MM] *= r * r
        self.coef = (self.coef[0], self.coef[1], self.coef[2] / r)
        if self.win_bad:
            self.win_bad = False
            if self._due():
                self._set("re-anchored by a material test")
        self.emit("event", {"code": "crosscheck_reanchored", "detail": detail})
        return True

    # --- for people
    def _model(self):
        c = self.coef or (0.0, 0.0, 0.0)
        return {"kw_run": c[0], "kwh_per_km": c[1], "kwh_per_t": c[2], "hours": self.hours}

    def status(self):
        s = self.learn
        out = self._model()
        out["state"] = "ready" if self.ready else "learning"
        out["learn_h"] = self.learn_h
        out["spread_pct"] = _spread(s, _TM, _MM)[1] * 100 / self.design_tph
        out["fit_pct"] = fit_pct(s, self.coef)
        out["window_min"] = self._wsum[0] * 60
        out["dev_pct"] = self.dev_pct
        out["mismatch"] = self.win_bad or self.now_bad
        out["paused"] = _PAUSED[self._paused]
        if self.anchor:
            out["anchor"] = "waiting for a loaded window"
        return out

    # --- persistence (the checkpoint's state slot)
    def snapshot(self):
        return {
            "learn": self.learn,
            "wsum": self._wsum,
            "hours": self.hours,
            "ready": self.ready,
            "coef": self.coef,
            "dev": self.dev_pct,
            "bad": [self.win_bad, self.now_bad, self.anchor],
            "carry": [self._ring, self._bin, self._bin_m, self._carry0],
        }

    def restore(self, d):
        self.learn = [float(x) for x in d["learn"]]
        self._wsum = [float(x) for x in d["wsum"]]
        if len(self.learn) != _SUMS or len(self._wsum) != 8:
            raise ValueError("crosscheck state of another shape")
        self.hours = float(d["hours"])
        self.ready = bool(d["ready"])
        self.dev_pct = d["dev"]
        self.win_bad, self.now_bad, self.anchor = [bool(x) for x in d["bad"]]
        self._anchor_who = None
        self._reported = self.win_bad or self.now_bad
        ring, self._bin, self._bin_m, self._carry0 = d["carry"]
        self._ring = [float(x) for x in ring]
        if len(self._ring) != _BINS:
            raise ValueError("crosscheck state of another shape")
        coef = d["coef"]
        self.coef = None if coef is None else (float(coef[0]), float(coef[1]), float(coef[2]))
        if self.coef is None or not self.coef[2] > 0:
            self.coef = None
            self.ready = False
        self._report = True


def fit_pct(s, coef):
    """RMS residual of the learned intervals, % of their mean energy."""
    if coef is None or s[_N] <= 0 or s[_E] <= 0:
        return None
    c0, c1, c2 = coef
    sse = (
        s[_EE]
        - 2 * (c0 * s[_TE] + c1 * s[_DE] + c2 * s[_ME])
        + c0 * c0 * s[_TT]
        + c1 * c1 * s[_DD]
        + c2 * c2 * s[_MM]
        + 2 * (c0 * c1 * s[_TD] + c0 * c2 * s[_TM] + c1 * c2 * s[_DM])
    )
    return sqrt(max(sse, 0.0) / s[_N]) / (s[_E] / s[_N]) * 100
