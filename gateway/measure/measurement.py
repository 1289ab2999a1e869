# The measurement job: one collector Sample per poll through the scale, auto-zero, a
# calibration in progress, running detection, vibration and production totals; about once
# a second run() closes production intervals and periods on the wall clock.
#
# Wiring (gateway/app.py): m = Measurement(cfg, clock, emit, alarm); m.start();
# the collector driver calls m.on_sample(sample) for every good poll and
# m.on_capture(wave_mv, rate_hz) for each vibration capture; loop.add(m, 1000);
# m.apply_params(flat) after every accepted parameter change; m.snapshot()/m.restore()
# with the checkpoint (and a checkpoint soon after m.checkpoint_due() turns True).
from gateway import ondemand
from gateway.measure.autozero import AutoZero
from gateway.measure.limits import Limits
from gateway.measure.production import Production
from gateway.measure.running import Running
from gateway.measure.scale import H_COUNTERS, Scale
from gateway.measure.vibration import Vibration


class Measurement:
    name = "measurement"

    def __init__(self, flat, clock, emit, alarm):
        self.clock = clock
        self.emit = emit
        self.scale = Scale(flat)
        self.autozero = AutoZero(self.scale, emit, alarm)
        self.cal = None  # a gateway.measure.calibration.Calibrator while one is in use
        self._cal_before = None
        self.running = Running(emit, alarm)
        self.vibration = Vibration(alarm)
        self.production = Production(emit)
        self.scale.entry_sink = self.autozero.on_entry
        self.limits = Limits(alarm)
        self.alarm = alarm
        # Set by the app: read the collector's serials now (after a restart or a counter
        # discontinuity, mass waits for identity_checked()).
        self.verify_identity = None
        self.counters_bad = False
        self.restored = False
        self._snap_t = None
        # What the scale's lifetime figures were when production last took its share.
        self._seen_g = self._seen_est = self._seen_unw = self._seen_unn = self._seen_cal = 0
        # This second's polls, for the limits: grams, blocks, pulses, counts x pulses.
        self._sec_g = self._sec_n = self._sec_p = self._sec_cp = 0
        self.flat = None
        self.apply_params(flat)

    def apply_params(self, flat):
        """Take a new parameter set (the flat config). A new scale.zero_counts (a zero
        calibration, or a technician's set) starts auto-zero from no correction."""
        old = self.flat
        self.scale.apply_params(flat)
        self.scale.zero_ref = flat.get("scale.zero_ref_counts")
        self.autozero.apply_params(flat)
        if self.cal is not None:
            self.cal.apply_params(flat)
        self.running.apply_params(flat)
        self.vibration.apply_params(flat)
        self.production.apply_params(flat)
        self.limits.apply_params(flat, self.scale)
        if old is not None and old["scale.zero_counts"] != flat["scale.zero_counts"]:
            self.autozero.reset()
        self.flat = flat

    def start(self):
        self.scale.verify_identity = self.verify_identity is not None
        self.vibration.start()

    def on_sample(self, s):
        """One good poll of the collector (the Sample is reused: nothing keeps it)."""
        sc = self.scale
        if not sc.on_sample(s):
            return
        if sc.restarted or sc.jumped or sc.gap_n or self.counters_bad != bool(sc.hold & H_COUNTERS):
            ondemand.call("gateway.measure.incidents", "report", self, s)
        self.restored = False
        if sc.ask_identity:
            sc.ask_identity = False
            if self.verify_identity is not None:
                self.verify_identity()
        run = self.running
        run.update(s.di, s.status, sc.dp, sc.n, sc.loaded, sc.on_frame, sc.speed_lost)
        self._sec_n += sc.n
        self._sec_p += sc.dp
        self._sec_cp += sc.cp
        self._produced(sc.dp, run.poll_run_blocks)
        self.autozero.running(run.poll_run_blocks)
        self.vibration.on_rms(s.vib_rms_01mv, s.status)
        if self.cal is not None:
            self.cal.on_poll(sc)

    def _produced(self, dp, run_blocks):
        # Production takes what the scale's lifetime figures moved by since last time:
        # grams (a part estimated), travel not weighed, time not weighed.
        sc = self.scale
        g = sc.total_g - self._seen_g
        est = sc.est_g - self._seen_est
        unw = sc.unweighed_p - self._seen_unw
        unn = sc.unweighed_n - self._seen_unn
        cal = sc.calibrating_p - self._seen_cal
        self._seen()
        self._sec_g += g
        self.production.add(g, est, dp, run_blocks, unw, unn, cal)

    def _seen(self):
        sc = self.scale
        self._seen_g = sc.total_g
        self._seen_est = sc.est_g
        self._seen_unw = sc.unweighed_p
        self._seen_unn = sc.unweighed_n
        self._seen_cal = sc.calibrating_p

    def identity_checked(self, same):
        """The collector's serials were read: same is whether the collector is the
        registered one. Held mass is counted (same) or dropped as unweighed travel."""
        self.scale.identity_checked(same)
        self._produced(0, 0)

    def calibrator(self):
        """The calibration procedures (gateway.measure.calibration.Calibrator), loaded for use."""
        if self.cal is None:
            self._cal_before = ondemand.loaded()
            from gateway.measure.calibration import Calibrator

            self.cal = Calibrator(self.scale, self.emit)
            self.cal.apply_params(self.flat)
        return self.cal

    def on_capture(self, wave, rate_hz):
        return self.vibration.on_capture(wave, rate_hz)

    def run(self, now_ms):
        c = self.clock
        sc = self.scale
        self.production.tick(c.time(), now_ms, c.ticks_diff, sc.total_g, sc.pulses_per_m)
        running = self.running.moving
        self.limits.check(self._sec_g, self._sec_n, self._sec_p, self._sec_cp, running)
        self._sec_g = self._sec_n = self._sec_p = self._sec_cp = 0
        self.autozero.check_unchecked()
        if self.cal is not None and self.cal.proc is None:
            # No calibration open: drop the procedures' code until the next one.
            self.cal = None
            ondemand.forget(self._cal_before)

    def checkpoint_due(self):
        """True after a prod or total record: checkpoint now, so that a restart cannot
        close the same interval twice."""
        return self.production.checkpoint_due

    def status(self):
        out = {
            "scale": self.scale.status(),
            "running": self.running.status(),
            "production": self.production.status(),
            "vibration": self.vibration.status(),
            "calibration": self.cal.progress() if self.cal is not None else {"state": "idle"},
        }
        sc = self.scale
        out["scale"]["autozero_at_limit"] = self.autozero.at_limit
        out["scale"]["estimated_kg"] = sc.est_g / 1000
        if sc.hold:
            out["scale"]["held_kg"] = sc.held_g() / 1000
        if sc.speed_lost:
            out["scale"]["speed_estimated"] = True
        if sc.test_load:
            out["scale"]["test_load"] = True  # the totalizer stops until it is removed
        return out

    def snapshot(self):
        return {
            "t": self.clock.time(),
            "scale": self.scale.snapshot(),
            "autozero": self.autozero.snapshot(),
            "running": self.running.snapshot(),
            "production": self.production.snapshot(),
        }

    def restore(self, d):
        sc = self.scale
        sc.restore(d["scale"])
        self.autozero.restore(d["autozero"])
        self.running.restore(d["running"])
        self.production.restore(d["production"])
        t = d.get("t")
        self._snap_t = t
        # The outage's length by the wall clock bounds what the first poll may count.
        sc.outage_ms = None if t is None else int((self.clock.time() - t) * 1000)
        self.restored = True
        sc.verify_identity = self.verify_identity is not None
        if sc.verify_identity:
            sc.hold_for_identity()  # another unit may have been fitted meanwhile
        self._seen()

    def reconcile(self, tail):
        """After restore(), with the newest records of the log (oldest first): records
        written after the checkpoint are adopted, never produced twice."""
        sc = self.scale
        last = self.production.adopt(tail, sc.total_g)
        if last is not None:
            # The travel up to the record's end is inside its total; the rest of the
            # outage is bridged like any other.
            t = self._snap_t
            counted = 1 << 30 if t is None else int((last["t1"] - t) * 10)
            sc.adopt_total(last["total_g"], counted)
            self._seen()
        return last is not None
