# Auto-zero tracking: runs with every poll, so it lives apart from the calibration
# procedures (gateway/measure/calibration.py, loaded only while a calibration runs).
from gateway import ondemand


class AutoZero:
    """Tracks the zero over whole revolutions of empty belt. A revolution counts when
    every poll's window load was inside the band (narrower than the drop-out: a light
    flow is not drift) and the load varied along it no more than along the quietest
    empty revolution seen (the belt's own profile and noise): a lumpy dribble is not
    drift either. It moves the zero by the mean net load found, at most 0.1 % of design
    load per revolution; the total correction since the last zero calibration is held
    within the limit, and the alarm autozero_limit is raised when it reaches it. Running
    scale.zero_check_h hours without one empty revolution raises zero_drift_suspected:
    nothing checks the zero of a belt that never runs empty."""

    def __init__(self, scale, emit, alarm):
        self.scale = scale
        self.emit = emit
        self.alarm = alarm
        self.acc_cp = 0
        self.acc_p = 0
        self.at_limit = False
        self._stale = 0  # polls before this gate mark were weighed with an older zero
        self._span = [0, 0]  # the least and largest window load along the revolution
        self.flat_counts = -1  # the variation along an empty revolution (-1: not seen yet)
        self.unchecked_n = 0  # run blocks since the last empty revolution
        self.unchecked = False  # None after a restore: reported once

    def apply_params(self, flat):
        ondemand.call("gateway.measure.apply", "autozero", self, flat)

    def reset(self):
        """The zero was calibrated: start again from no correction."""
        self.acc_cp = self.acc_p = 0
        self.scale.set_autozero(0)
        self._stale = self.scale.gate_seq()
        self._limit(False)
        self.unchecked_n = 0

    def on_entry(self, cp, d, cpw, dw, bad):
        if not dw:
            return  # belt standing: neither empty nor loaded
        if (
            bad
            or not self.enabled
            or self.scale.inhibit
            or self.scale.test_load
            or not self.scale.gate_decided(self._stale)
            or abs(cpw) * 256 >= self._band256 * dw
        ):
            self.acc_cp = self.acc_p = 0
            return
        w = cpw // dw
        sp = self._span
        if not self.acc_p:
            sp[0] = sp[1] = w
        elif w < sp[0]:
            sp[0] = w
        elif w > sp[1]:
            sp[1] = w
        left = self.rev_p - self.acc_p
        if d < left:
            self.acc_cp += cp
            self.acc_p += d
            return
        part = (cp * left + d // 2) // d
        self._revolution(self.acc_cp + part, sp[1] - sp[0])
        self.acc_cp = cp - part
        self.acc_p = d - left
        sp[0] = sp[1] = w

    def running(self, n):
        """n blocks of running: is the zero left unchecked for too long?"""
        self.unchecked_n += n
        bad = 0 < self._check_n <= self.unchecked_n
        if bad != self.unchecked:
            self.unchecked = bad
            if bad:
                detail = "no empty revolution for scale.zero_check_h: zero drift goes unseen"
            else:
                detail = "an empty revolution checked the zero"
            self.alarm("zero_drift_suspected", bad, detail)

    def _revolution(self, cp, w):
        # w: how much the window load varied along the revolution.
        ref = self.flat_counts
        flat = ref < 0 or w <= ref + ref // 4 + self.step
        # The reference is the quietest revolution, creeping up slowly should the belt
        # itself change (a new splice).
        self.flat_counts = w if ref < 0 or w < ref else ref + (w - ref) // 8
        if not flat:
            return
        self.unchecked_n = 0
        s = self.scale
        old = s.az_counts
        move = (2 * cp + self.rev_p) // (2 * self.rev_p)
        move = max(-self.step, min(self.step, move))
        new = old + move
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
        return {
            "acc_cp": self.acc_cp,
            "acc_p": self.acc_p,
            "at_limit": self.at_limit,
            "flat": self.flat_counts,
            "unchecked_n": self.unchecked_n,
        }

    def restore(self, d):
        self.at_limit = bool(d["at_limit"])
        self.flat_counts = int(d.get("flat", -1))
        self.unchecked_n = int(d.get("unchecked_n", 0))
        self.acc_p = self.acc_cp = 0  # a revolution begins again (its spread is not kept)
        self._stale = 0
