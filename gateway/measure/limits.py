# Limit monitoring of the belt scale (Intecont-style min/max of rate, load and speed; the
# 35 % / 98 % of design rate that HB44 asks a belt scale to indicate), judged once a
# second over the polls of that second. A limit of 0 is off. The low limits of rate and
# load are judged only while material is on the belt, the low speed limit only while it
# runs. A speed far beyond the design speed is first of all a wrong scale.pulses_per_m.
from hal.compat import const

_IMPLAUSIBLE_X = const(2)  # x design speed (or above the sensor's 8 m/s)
_MAX_MPS = const(8)


class Limits:
    def __init__(self, alarm):
        self.alarm = alarm
        self._on = {}  # code -> the state last reported (a detail is formatted on changes only)

    def apply_params(self, flat, scale):
        self.design_tph = float(flat["scale.design_tph"])
        self.design_mps = float(flat["scale.design_speed_mps"])
        self.ppm = scale.pulses_per_m
        self.design_counts = scale.design_kgpm * scale.counts_per_kgpm
        self.dropout_pct = scale.dropout_pct
        self.rate = (flat["alarms.rate_min_pct"], flat["alarms.rate_max_pct"])
        self.load = (flat["alarms.load_min_pct"], flat["alarms.load_max_pct"])
        self.speed = (flat["alarms.speed_min_pct"], flat["alarms.speed_max_pct"])

    def check(self, g, n, p, cp, running):
        """One second's polls: g grams totalized over n blocks, p pulses, cp counts x
        pulses; running: the belt runs."""
        if not n:
            return
        rate_pct = g * 3.6 / n / self.design_tph  # g per 0.1 s -> % of design t/h
        load_pct = cp * 100.0 / p / self.design_counts if p else 0.0
        mps = p * 10.0 / n / self.ppm
        material = running and load_pct >= self.dropout_pct
        implausible = running and (
            mps > _IMPLAUSIBLE_X * self.design_mps or mps > _MAX_MPS
        )
        self._set("speed_implausible", implausible, mps, "m/s", self.design_mps, "x")
        self._limit("rate_limit", rate_pct, self.rate, material, "% of design rate")
        self._limit("load_limit", load_pct, self.load, material, "% of design load")
        spd_pct = mps * 100.0 / self.design_mps
        self._limit("speed_limit", spd_pct, self.speed, running and not implausible,
                    "% of design speed")

    def _limit(self, code, v, lims, low_applies, unit):
        lo, hi = lims
        if hi and v > hi:
            self._set(code, True, v, unit, hi, "above")
        elif lo and low_applies and v < lo:
            self._set(code, True, v, unit, lo, "below")
        else:
            self._set(code, False, v, unit, 0)

    def _set(self, code, active, v, unit, limit, side=None):
        state = side if active else False
        if self._on.get(code) == state:
            return  # None at first: reported once after every start
        self._on[code] = state
        if not active:
            detail = "back within limits"
        elif side == "x":
            detail = (
                "belt reads %.2f m/s against a design speed of %.2f m/s: "
                "check scale.pulses_per_m (speed calibration)" % (v, limit)
            )
        else:
            detail = "%.1f %s, %s the limit of %s" % (v, unit, side, limit)
        self.alarm(code, active, detail)
