# Output against power (计量产量与用电异常): the belt drive's energy over running time is
# close to linear in what the belt did,
#     E ≈ c0·t_run + c1·distance + c2·mass      (kWh; h, km, t)
# (motor and drive losses while running, empty-belt friction per km, lift and friction per
# tonne). The gateway learns c0..c2 from its own running and sets the mass that the power
# implies, (E − c0·t − c1·d) / c2, beside the scale's. docs/crosscheck.md.
#
# Resident here: what each power reading and each production interval need (the window's
# sums, the carry, power without output). Closing a window (judging it, learning from it,
# solving the model), re-anchoring and the figures people ask for are loaded for the call
# only (gateway/power/judge.py), and so is restoring (gateway/power/records.py). Only
# + − × ÷ and sqrt: the same bits on MicroPython and CPython.
from gateway import ondemand
from hal.compat import const

_ALARM = const("output_power_mismatch")

# Flags of a production interval (on_interval).
FAULT_SCALE = const(1)  # travel went unweighed (a cell or ADC fault): judged, not learned
FAULT_METER = const(2)  # the drive's energy is not known: skipped
CALIBRATING = const(4)  # a calibration ran: skipped

_JUDGE = const("gateway.power.judge")
_RECORDS = const("gateway.power.records")
_MIN_READINGS = const(2)
_EMPTY_NOW = const(0.25)  # power without output: the scale's rate under 1/4 of the power's
_EMPTY_CARRY = const(0.75)  # ... and the flow of what it weighed on the carry under 3/4
_HOLD_S = const(20)  # ... for this long (a drive starting up)
_GAP_S = const(30)  # readings further apart than this feed nothing
_BINS = const(8)  # the carry, in bins of belt travel

# Why learning is paused (status; gateway/power/judge.py names them).
_P_NONE = const(0)
_P_SCALE = const(1)
_P_METER = const(2)
_P_CAL = const(3)
_P_MISMATCH = const(4)


class CrossCheck:
    """emit, alarm: the app's. As a loop job (run() every second, after attach()) it feeds
    on_power from the belt drive's terminal; the power side feeds on_interval."""

    name = "crosscheck"

    def __init__(self, emit, alarm):
        self.emit = emit
        self.alarm = alarm
        self.learn = [0.0] * 12  # the model's normal equations (gateway/power/judge.py)
        self.hours = 0.0  # running hours learned, not forgotten
        self.ready = False
        self.coef = None  # (c0 kW, c1 kWh/km, c2 kWh/t) while it has data
        self.wsum = [0.0] * 8  # this window's t, d, m, E (judged), and of its clean
        # intervals (learned, as one row, if the window agrees)
        self.windows = 0  # windows judged
        self.dev_pct = None  # the last judged window's scale against power, %
        self.win_bad = False  # a window disagreed beyond the tolerance
        self.now_bad = False  # power without output
        self.anchor = False  # a material test's technician ("" unnamed) until it re-anchors
        self.ring = [0.0] * _BINS  # weighed (t) per bin of belt travel
        self.bin = 0
        self.bin_at_m = 0.0  # travel into the current bin
        self.carry0 = 0.0  # what was left to carry when the window opened (judge.py)
        self.paused = _P_NONE
        self._without_s = 0.0
        self._agree_s = 0.0
        self._fresh = False  # the first interval after a start is not whole: skipped
        self.e_tail = 0.0  # kWh drawn after the last reading, given to the interval closed
        self._reported = False  # the alarm's state as last reported
        self._report = False  # report it at the next judgement (after a restore)
        self._src = None  # attach(): the belt drive's terminal, the scale, the collector
        self._at = None  # the last power reading used: its ticks, total_g, travel_p
        self._g = 0
        self._p = 0

    def apply_params(self, flat):
        self.learn_h = float(flat["crosscheck.learn_h"])
        self.window_h = float(flat["crosscheck.window_min"]) / 60
        self.tol_pct = float(flat["crosscheck.tolerance_pct"])
        self.design_tph = float(flat["scale.design_tph"])
        self.min_tph = float(flat["crosscheck.min_load_pct"]) * self.design_tph / 100
        self.design_mps = float(flat["scale.design_speed_mps"])
        # Weighed material rides the carry side, half the belt's length, to the head.
        self.bin_m = float(flat["scale.belt_length_m"]) / 2 / _BINS

    # --- every drive power reading
    def attach(self, belt, scale, collector, clock):
        """The belt drive's terminal (drivers.meters.Terminal), the scale and the collector
        driver whose figures run() hands to on_power."""
        self._src = (belt, scale, collector, clock)
        self._fresh = True

    def run(self, now_ms):
        # A new power reading: with what the scale weighed and the belt travelled since the
        # last one (exact, from the totalizer and the pulse count).
        belt, sc, coll, clock = self._src
        at = belt.read_at[0]  # item 0: active power (drivers/meters.py's P), 0.1 W
        if not belt.have & 1 or at == self._at:
            return
        last, g, p = self._at, self._g, self._p
        self._at, self._g, self._p = at, sc.total_g, sc.travel_p
        if last is None or not coll.online:
            return
        dt = clock.ticks_diff(at, last) / 1000
        if 0 < dt <= _GAP_S:
            self.on_power(belt.values[0] * belt.ct * belt.pt / 10000,
                          (self._p - p) / sc.pulses_per_m / dt, (self._g - g) * 0.0036 / dt, dt)

    def on_power(self, kw, speed_mps, rate_tph, dt_s):
        """One reading of the drive's power (kW), with the belt's speed and the scale's rate
        (t/h) since the last, dt_s before: power without output raises at once."""
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
        # What the scale weighed, in bins of belt travel over the last carry length: t
        # spread over the dx_m the belt moved (a reading may span several bins).
        if dx_m <= 0:
            self.ring[self.bin] += t
            return
        left = dx_m
        for _ in range(_BINS + 1):
            room = self.bin_m - self.bin_at_m
            step = left if left < room else room
            self.ring[self.bin] += t * step / dx_m
            self.bin_at_m += step
            left -= step
            if self.bin_at_m >= self.bin_m:
                self.bin_at_m = 0.0
                self.bin = (self.bin + 1) % _BINS
                self.ring[self.bin] = 0.0
            if left <= 0:
                return

    def carry_tph(self, speed_mps):
        """The flow (t/h) that the scale's material on the carry makes at speed_mps: what
        the drive's power should imply."""
        span_m = (_BINS - 1) * self.bin_m + self.bin_at_m
        return sum(self.ring) * speed_mps * 3600 / span_m

    # --- every production interval
    def on_interval(self, run_s, dist_m, mass_kg, kwh, readings, flags):
        """One production interval of the belt drive: run_s of belt running, dist_m of
        belt travel, the scale's mass_kg, the drive's kwh over the interval from
        `readings` power readings, FAULT_*/CALIBRATING flags. Returns the mass (kg) the
        energy implies, or None (no model yet, or the energy is not known)."""
        if kwh is None or readings < _MIN_READINGS or flags & FAULT_METER:
            self.paused = _P_METER
            return None
        t = run_s / 3600
        d = dist_m / 1000
        m = mass_kg / 1000
        implied = self.implied_t(t, d, kwh) * 1000 if self.ready else None
        if flags & CALIBRATING:
            self.paused = _P_CAL
            return implied
        if run_s <= 0 or self._fresh:
            self._fresh = False
            return implied
        w = self.wsum
        w[0] += t
        w[1] += d
        w[2] += m
        w[3] += kwh
        if flags & FAULT_SCALE:
            self.paused = _P_SCALE
        else:
            self.paused = _P_MISMATCH if self.win_bad or self.now_bad else _P_NONE
            w[4] += t
            w[5] += d
            w[6] += m
            w[7] += kwh
        if w[0] >= self.window_h:
            ondemand.call(_JUDGE, "close_window", self)
        return implied

    def implied_t(self, t_h, d_km, kwh):
        """The mass (t) that kwh implies over t_h running hours and d_km of travel."""
        c = self.coef
        return (kwh - c[0] * t_h - c[1] * d_km) / c[2]

    def _due(self):
        # One alarm, two rules: reported when it changes, and once after a restart (the
        # detail is formatted only then).
        return (self.win_bad or self.now_bad) != self._reported or self._report

    def _set(self, detail):
        self._reported = self.win_bad or self.now_bad
        self._report = False
        self.alarm(_ALARM, self._reported, detail)

    # --- loaded for the call
    def reanchor(self, who=None):
        """A technician-confirmed material test: the scale is right from now on (while
        learning, learning starts again; once ready, the next judged window re-anchors the
        model's mass axis to the scale's)."""
        ondemand.call(_JUDGE, "reanchor", self, who)

    def status(self):
        return ondemand.call(_JUDGE, "status", self)

    def restore(self, d):
        """The state from the checkpoint (gateway/power/records.py: a start loads it to
        restore the power side anyway). ValueError, KeyError or TypeError for one it
        cannot read."""
        ondemand.call(_RECORDS, "restore_cross", self, d)
        self._reported = self.win_bad or self.now_bad
        self._report = True

    def snapshot(self):
        return {
            "learn": self.learn,
            "w": self.wsum,
            "h": self.hours,
            "ready": self.ready,
            "coef": self.coef,
            "n": self.windows,
            "dev": self.dev_pct,
            "bad": [self.win_bad, self.now_bad],
            "anchor": self.anchor,
            "carry": [self.ring, self.bin, self.bin_at_m, self.carry0],
        }
