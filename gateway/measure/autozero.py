# Auto-zero tracking: runs with every poll, so it lives apart from the calibration
# procedures (gateway/measure/calibration.py, loaded only while a calibration runs).


def rev_pulses(scale, belt_length_m):
    """Pulses per belt revolution."""
    return int(belt_length_m * scale.pulses_per_m + 0.5)


class AutoZero:
    """Tracks the zero over whole revolutions of empty belt. Each revolution whose every
    poll had a window load inside the band moves the zero by the mean net load found;
    the total correction since the last zero calibration is held within the limit, and
    the alarm autozero_limit is raised when it reaches it."""

    def __init__(self, scale, emit, alarm):
        self.scale = scale
        self.emit = emit
        self.alarm = alarm
        self.acc_cp = 0
        self.acc_p = 0
        self.at_limit = False
        self._stale = 0  # polls before this gate mark were weighed with an older zero

    def apply_params(self, flat):
        s = self.scale
        self.enabled = bool(flat["scale.autozero"])
        self.rev_p = rev_pulses(s, flat["scale.belt_length_m"])
        self._band256 = s.counts256_for_pct(float(flat["scale.autozero_band_pct"]))
        design = s.design_kgpm * s.counts_per_kgpm
        self.limit_counts = int(float(flat["scale.autozero_limit_pct"]) / 100.0 * design)
        # Smaller moves than 0.01 % of design load are not worth an event each.
        self.deadband = max(1, int(design / 10000))
        self.acc_cp = self.acc_p = 0

    def reset(self):
        """The zero was calibrated: start again from no correction."""
        self.acc_cp = self.acc_p = 0
        self.scale.set_autozero(0)
        self._stale = self.scale.gate_seq()
        self._limit(False)

    def on_entry(self, cp, d, cpw, dw, bad):
        if not dw:
            return  # belt standing: neither empty nor loaded
        if (
            bad
            or not self.enabled
            or self.scale.inhibit
            or not self.scale.gate_decided(self._stale)
            or abs(cpw) * 256 >= self._band256 * dw
        ):
            self.acc_cp = self.acc_p = 0
            return
        left = self.rev_p - self.acc_p
        if d < left:
            self.acc_cp += cp
            self.acc_p += d
            return
        part = (cp * left + d // 2) // d
        self._revolution(self.acc_cp + part)
        self.acc_cp = cp - part
        self.acc_p = d - left

    def _revolution(self, cp):
        s = self.scale
        old = s.az_counts
        new = old + (2 * cp + self.rev_p) // (2 * self.rev_p)
        lim = self.limit_counts
        clamped = new > lim or new < -lim
        if clamped:
            new = lim if new > 0 else -lim
        self._limit(clamped)
        if abs(new - old) >= self.deadband or (clamped and new != old):
            s.set_autozero(new)
            self._stale = s.gate_seq()
            self.emit(
                "event",
                {
                    "code": "autozero",
                    "detail": {
                        "old": {"autozero_counts": old},
                        "new": {"autozero_counts": new},
                        "zero_counts": s.zero_counts,
                        "limit_counts": lim,
                        "at_limit": clamped,
                    },
                },
            )

    def _limit(self, active):
        if active != self.at_limit:
            self.at_limit = active
            if active:
                detail = "auto-zero correction reached its limit of %d counts: calibrate the zero"
                detail %= self.limit_counts
            else:
                detail = "auto-zero correction back within its limit"
            self.alarm("autozero_limit", active, detail)

    def snapshot(self):
        return {"acc_cp": self.acc_cp, "acc_p": self.acc_p, "at_limit": self.at_limit}

    def restore(self, d):
        self.acc_cp = int(d["acc_cp"])
        self.acc_p = int(d["acc_p"])
        self.at_limit = bool(d["at_limit"])
        self._stale = 0
