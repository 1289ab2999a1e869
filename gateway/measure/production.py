# Production totals: one `prod` record per interval, and shift, day, month, quarter and
# year totals in local time, each measured (gross coal, 毛煤) and converted with the
# raw/gross coal coefficient (原/毛煤折算系数) in force, whose history is kept.
#
# Per poll the measurement adds whole grams (add()); about once a second tick() moves them
# into the interval and the periods using the wall clock, and closes what has ended.
# Everything is an integer: grams, and converted grams x 1e6 (coefficient in ppm).
# The production day starts at the first shift; months, quarters and years follow it.
from gateway import ondemand
from gateway.calendar import civil_from_days
from hal.compat import const

_BLOCK_HZ = const(10)
_STEP_S = const(2)  # a wall-clock jump larger than this against the ticks is a clock step
_HISTORY_MAX = const(32)
_KINDS = const(("shift", "day", "month", "quarter", "year"))


def period_keys(t, utc_offset_min, shift_min):
    """For unix time t: ({kind: (key, label)}, unix time of the next shift start).
    shift_min: shift start times, minutes after local midnight, ascending."""
    lm = int(t) // 60 + utc_offset_min  # local minutes since the epoch
    s0 = shift_min[0]
    pd = (lm - s0) // 1440  # production day
    mod = (lm - s0) % 1440 + s0
    i = 0
    while i + 1 < len(shift_min) and shift_min[i + 1] <= mod:
        i += 1
    y, m, d = civil_from_days(pd)
    q = (m - 1) // 3
    day = "%04d-%02d-%02d" % (y, m, d)
    keys = {
        "shift": (pd * 4 + i, "%s/%d" % (day, i + 1)),
        "day": (pd, day),
        "month": (y * 12 + m - 1, "%04d-%02d" % (y, m)),
        "quarter": (y * 4 + q, "%04d-Q%d" % (y, q + 1)),
        "year": (y, "%04d" % y),
    }
    nxt = pd * 1440 + shift_min[i + 1] if i + 1 < len(shift_min) else (pd + 1) * 1440 + s0
    return keys, (nxt - utc_offset_min) * 60


def _kg(g):
    return g / 1000


def _conv_g(conv):
    return (conv + 500000) // 1000000


class Production:
    def __init__(self, emit):
        self.emit = emit
        self.iv = None  # interval in progress: dict
        self.periods = {}  # kind -> [key, label, g, conv]
        self.last = {}  # kind -> the last closed period, for display
        self.history = []  # [effective_t, coef, requested_from]
        self.coef_ppm = 1000000
        self._next_coef_t = None
        self._next_boundary = None
        self._last_wall = None
        self._last_ticks = None
        self._fresh = False
        self._pg = 0  # added since the last tick: grams, pulses, run blocks, unweighed pulses,
        self._pp = 0  # estimated grams, unweighed blocks
        self._pr = 0
        self._pu = 0
        self._px = [0, 0, 0]  # estimated grams, unweighed blocks, calibrating pulses
        self.checkpoint_due = False
        # The power side (gateway/power/energy.py), when there are terminals: its fields
        # (the belt drive's kWh and kWh/t) go into prod and total records.
        self.power = None
        self.calibrating = False  # a calibration ran in this interval (Measurement sets it)

    def apply_params(self, flat):
        ondemand.call("gateway.measure.apply", "production", self, flat)

    # --- per poll
    def add(self, g, est_g, pulses, run_blocks, unweighed_p, unweighed_n, calibrating_p):
        """g grams totalized, est_g of them estimated; belt travel and run time (blocks);
        travel and time (blocks) with the belt running but its load or travel unknown;
        travel not totalized while a calibration put test loads on the frame."""
        self._pg += g
        self._pp += pulses
        self._pr += run_blocks
        self._pu += unweighed_p
        px = self._px
        px[0] += est_g
        px[1] += unweighed_n
        px[2] += calibrating_p

    # --- about once a second
    def tick(self, now, ticks_ms, ticks_diff, total_g, pulses_per_m):
        """now: wall time (unix s); ticks_ms/ticks_diff: the monotonic clock, to tell a
        clock step from time passing; total_g: the lifetime totalizer now."""
        stepped = False
        if self._last_ticks is not None:
            expected = self._last_wall + ticks_diff(ticks_ms, self._last_ticks) / 1000
            stepped = abs(now - expected) > _STEP_S
        else:
            expected = now
        self._last_wall = now
        self._last_ticks = ticks_ms
        if self.iv is None:
            self._open_at(int(now))
            self._roll(now)
        self._coef(now)
        iv = self.iv
        if stepped:
            # Close what was measured under the old time, at its real length.
            self._flush()
            self._close(max(iv["t0"], int(expected)), total_g, pulses_per_m)
            self._open_at(int(now))
            self._roll(now)
        elif self._fresh:
            # Restored after a restart: what the first polls recounted belongs to now.
            self._fresh = False
            if now >= iv["t1"]:
                self._close(iv["t1"], total_g - self._pg, pulses_per_m)
                self._open_next(iv["t1"], now)
            self._roll(now)
            self._flush()
        else:
            self._flush()
            if now >= iv["t1"]:
                self._close(iv["t1"], total_g, pulses_per_m)
                self._open_next(iv["t1"], now)
            if self._next_boundary is None or now >= self._next_boundary:
                self._roll(now)

    def _open_next(self, t1, now):
        i = self.interval_s
        self._open_at(t1 if now < t1 + i else int(now) // i * i)

    def _open_at(self, t0):
        i = self.interval_s
        t1 = (t0 // i + 1) * i
        # x: estimated grams, unweighed blocks, calibrating pulses
        self.iv = {"t0": t0, "t1": t1, "g": 0, "conv": 0, "p": 0, "run": 0, "unw": 0,
                   "x": [0, 0, 0]}

    def _flush(self):
        g = self._pg
        iv = self.iv
        conv = g * self.coef_ppm
        if iv is not None:
            iv["g"] += g
            iv["conv"] += conv
            iv["p"] += self._pp
            iv["run"] += self._pr
            iv["unw"] += self._pu
            x = iv["x"]
            px = self._px
            for i in range(3):
                x[i] += px[i]
        for per in self.periods.values():
            per[2] += g
            per[3] += conv
        self._pg = self._pp = self._pr = self._pu = 0
        self._px[0] = self._px[1] = self._px[2] = 0

    def _close(self, t1, total_g, ppm):
        iv = self.iv
        t0 = iv["t0"]
        if t1 <= t0:
            t1 = t0 + 1
        dur = t1 - t0
        g = iv["g"]
        conv_g = _conv_g(iv["conv"])
        run_s = iv["run"] / _BLOCK_HZ
        # Mass bridged over an outage came in over the outage's run time, which can be
        # longer than a partial interval: the mean rate is over the longer of the two.
        rate = g * 3.6 / 1000 / max(dur, run_s)
        fields = {
            "t0": t0,
            "t1": t1,
            "mass_kg": _kg(g),
            "total_kg": _kg(total_g),
            "rate_tph": round(min(rate, self._rate_cap), 3),
            "speed_mps": round(iv["p"] / ppm / dur, 3),
            "run_s": run_s,
            "mass_g": g,
            "total_g": total_g,
            "conv_kg": _kg(conv_g),
            "coef": self.coef_ppm / 1e6,
            "unweighed_m": round(iv["unw"] / ppm, 1),
        }
        est, unn, cal = iv["x"]
        if est:
            fields["est_kg"] = _kg(est)
        if unn:
            fields["unweighed_s"] = unn / _BLOCK_HZ
        if cal:
            fields["calibrating_m"] = round(cal / ppm, 1)
        if self.power is not None:
            extra = self.power.close_interval(t0, t1, g, iv["run"] / _BLOCK_HZ, iv["p"] / ppm,
                                              iv["unw"] > 0, self.calibrating)
            if extra:
                fields.update(extra)
        self.emit("prod", fields)
        self.calibrating = False
        self.iv = None
        self.checkpoint_due = True

    def _roll(self, now):
        keys, self._next_boundary = period_keys(now, self.utc_offset_min, self.shift_min)
        for kind in _KINDS:
            key, label = keys[kind]
            per = self.periods.get(kind)
            if per is None:
                self.periods[kind] = [key, label, 0, 0]
            elif key > per[0]:
                self._close_period(kind, per)
                self.periods[kind] = [key, label, 0, 0]
            # A key going back (the clock stepped back) keeps the period open.

    def _close_period(self, kind, per):
        conv_g = _conv_g(per[3])
        self.last[kind] = [per[1], per[2], conv_g]
        fields = {
            "period": kind,
            "key": per[1],
            "mass_kg": _kg(per[2]),
            "mass_g": per[2],
            "conv_kg": _kg(conv_g),
            "conv_g": conv_g,
        }
        if self.power is not None:
            extra = self.power.close_period(kind, per[2])
            if extra:
                fields.update(extra)
        self.emit("total", fields)
        self.checkpoint_due = True

    # --- the conversion coefficient
    def _coef(self, now):
        coef, frm = self._coef_req
        h = self.history
        first = not h
        if first or h[-1][1] != coef or h[-1][2] != frm:
            t = max(frm, int(now))
            old = h[-1][1] if h else None
            h.append([t, coef, frm])
            del h[: max(0, len(h) - _HISTORY_MAX)]
            self.emit(
                "event",
                {
                    "code": "coef_changed",
                    "detail": {
                        "old": {"production.coef": old},
                        "new": {"production.coef": coef},
                        "effective_t": t,
                    },
                },
            )
            self.checkpoint_due = True
            self._next_coef_t = None
        if self._next_coef_t is None or now >= self._next_coef_t:
            ppm = 1000000
            nxt = None
            for t, c, _ in h:
                if t <= now:
                    ppm = int(c * 1000000 + 0.5)
                elif nxt is None or t < nxt:
                    nxt = t
            if ppm != self.coef_ppm:
                if not first:
                    self._flush()  # grams so far are converted at the coefficient until now
                self.coef_ppm = ppm
            self._next_coef_t = nxt if nxt is not None else float("inf")

    def coef_at(self, t):
        c = 1.0
        for te, coef, _ in self.history:
            if te <= t:
                c = coef
        return c

    # --- for people
    def status(self):
        return ondemand.call("gateway.measure.status", "production", self)

    def mass_kg(self, kind):
        """The open period's mass so far (status()[kind]["mass_kg"]); 0 with none open."""
        per = self.periods.get(kind)
        return 0 if per is None else _kg(per[2] + self._pg)

    # --- persistence
    def snapshot(self):
        self.checkpoint_due = False
        return {
            "iv": self.iv,
            "pend": [self._pg, self._pp, self._pr, self._pu] + self._px,
            "periods": self.periods,
            "last": self.last,
            "history": self.history,
            "coef_ppm": self.coef_ppm,
        }

    # Start-up only, loaded for the call (gateway/measure/resume.py).
    def adopt(self, tail, total_g):
        """After restore(): take over the prod and total records that the log holds but
        the checkpoint does not know (written after it, before a power cut), so no
        interval or period is closed twice. tail: the newest records, oldest first.
        Returns the prod record adopted, or None."""
        return ondemand.call("gateway.measure.resume", "production_adopt", self, tail, total_g)

    def restore(self, d):
        ondemand.call("gateway.measure.resume", "production", self, d)
