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
from gateway.measure.production import Production
from gateway.measure.running import Running
from gateway.measure.scale import Scale
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
        self.flat = None
        self.apply_params(flat)

    def apply_params(self, flat):
        """Take a new parameter set (the flat config). A new scale.zero_counts (a zero
        calibration, or a technician's set) starts auto-zero from no correction."""
        old = self.flat
        self.scale.apply_params(flat)
        self.autozero.apply_params(flat)
        if self.cal is not None:
            self.cal.apply_params(flat)
        self.running.apply_params(flat)
        self.vibration.apply_params(flat)
        self.production.apply_params(flat)
        if old is not None and old["scale.zero_counts"] != flat["scale.zero_counts"]:
            self.autozero.reset()
        self.flat = flat

    def start(self):
        self.vibration.start()

    def on_sample(self, s):
        """One good poll of the collector (the Sample is reused: nothing keeps it)."""
        sc = self.scale
        if not sc.on_sample(s):
            return
        if sc.restarted or sc.jumped:
            self._counter_event(s)
        self.running.update(s.di, s.status, sc.dp, sc.n, sc.loaded)
        unweighed = 0 if sc.ok else sc.dp
        self.production.add(sc.committed_g, sc.dp, self.running.poll_run_blocks, unweighed)
        self.vibration.on_rms(s.vib_rms_01mv, s.status)
        if self.cal is not None:
            self.cal.on_poll(sc)
            self.production.calibrating = True

    def calibrator(self):
        """The calibration procedures (gateway.measure.calibration.Calibrator), loaded for use."""
        if self.cal is None:
            self._cal_before = ondemand.loaded()
            from gateway.measure.calibration import Calibrator

            self.cal = Calibrator(self.scale, self.emit)
            self.cal.apply_params(self.flat)
        return self.cal

    def _counter_event(self, s):
        sc = self.scale
        if sc.jumped:
            detail = {"pulses": s.pulses, "block_seq": s.block_seq, "counted": False}
            code = "pulse_jump"
        else:
            # Travel while the collector was down is not known: say how long that was.
            detail = {
                "pulses": s.pulses,
                "block_seq": s.block_seq,
                "counted": sc.dp,
                "uncounted_s": None if sc.restart_gap_ms is None else sc.restart_gap_ms / 1000,
            }
            code = "pulse_counter_reset"
        self.emit("event", {"code": code, "detail": detail})

    def on_capture(self, wave, rate_hz):
        return self.vibration.on_capture(wave, rate_hz)

    def run(self, now_ms):
        c = self.clock
        sc = self.scale
        self.production.tick(c.time(), now_ms, c.ticks_diff, sc.total_g, sc.pulses_per_m)
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
        out["scale"]["autozero_at_limit"] = self.autozero.at_limit
        return out

    def snapshot(self):
        return {
            "scale": self.scale.snapshot(),
            "autozero": self.autozero.snapshot(),
            "running": self.running.snapshot(),
            "production": self.production.snapshot(),
        }

    def restore(self, d):
        self.scale.restore(d["scale"])
        self.autozero.restore(d["autozero"])
        self.running.restore(d["running"])
        self.production.restore(d["production"])

    def reconcile(self, tail):
        """After restore(), with the newest records of the log (oldest first): records
        written after the checkpoint are adopted, never produced twice."""
        last = self.production.adopt(tail, self.scale.total_g)
        if last is not None:
            self.scale.adopt_total(last["total_g"])
        return last is not None
