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
from hal.compat import const

_H_COUNTERS = const(2)  # Scale.hold's bit: the collector's counters disagree
_GAP_N = const(5)  # Scale.gap's: blocks of a gap the poll just taken followed
_LIMITS = const(("rate_limit", "load_limit", "speed_limit"))
# Measurement._lim: the limits (alarms.limits_pct: % of design, 0 off, low and high of
# rate, load and speed), their states (0 within, 1 below, 2 above; the speed 3 beyond
# twice the design speed or 8 m/s: a wrong pulses_per_m), this second's polls (blocks,
# pulses, counts x pulses). The rate is the load on the frame times the speed, not the mass
# the totalizer took this second: the gate's lag and a held mass (a restart, an identity
# read) must not read as a flow below its limit.


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
        self.alarm = alarm
        # The limits, their states (None after a restore: reported once, they may be
        # active) and this second's polls: grams, blocks, pulses, counts x pulses.
        self._lim = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        # Set by the app: read the collector's serials now (after a restart or a counter
        # discontinuity, mass waits for identity_checked()).
        self.verify_identity = None
        self.restored = False
        # What the scale's lifetime figures were when production last took its share
        # (grams, estimated grams, unweighed pulses, unweighed blocks, calibrating
        # pulses), and whether its counters disagreed.
        self._seen = [0, 0, 0, 0, 0, False]
        self.flat = None
        self.apply_params(flat)

    def apply_params(self, flat):
        """Take a new parameter set (the flat config). A new scale.zero_counts (a zero
        calibration, or a technician's set) starts auto-zero from no correction."""
        ondemand.call("gateway.measure.apply", "measurement", self, flat)

    def start(self):
        if self.verify_identity is not None and not self.scale.verify_identity:
            self.scale.verify_identity = 1
        self.vibration.start()

    def on_sample(self, s):
        """One good poll of the collector (the Sample is reused: nothing keeps it)."""
        sc = self.scale
        if not sc.on_sample(s):
            return
        gap = sc.gap[_GAP_N]
        if sc.restarted or sc.jumped or gap or self._seen[5] != bool(sc.hold & _H_COUNTERS):
            try:
                ondemand.call("gateway.measure.incidents", "report", self, s)
            except MemoryError:
                # No room for the records' code now: the figure is safe (the scale did
                # its part), the events are lost, the counters' alarm is tried next poll.
                pass
        self.restored = False
        if sc.verify_identity == 2:
            sc.verify_identity = 1
            self.verify_identity()
        run = self.running
        run.update(s.di, s.status, sc.dp, sc.n, sc.loaded, sc.on_frame, sc.speed_lost)
        sec = self._lim
        sec[9] += sc.n
        sec[10] += sc.dp
        sec[11] += sc.cp
        self._produced(sc.dp, run.poll_run_blocks)
        self.autozero.running(run.poll_run_blocks)
        self.vibration.on_rms(s.vib_rms_01mv, s.status)
        if self.cal is not None:
            self.cal.on_poll(sc)
            self.production.calibrating = True

    def _produced(self, dp, run_blocks, take=True):
        # Production takes what the scale's lifetime figures moved by since last time:
        # grams (a part estimated), travel not weighed, time not weighed, travel while
        # a calibration stopped the totalizer. take=False: only note them (a restore).
        sc = self.scale
        seen = self._seen
        g = sc.total_g - seen[0]
        est = sc.est_g - seen[1]
        unw = sc.unweighed_p - seen[2]
        unn = sc.unweighed_n - seen[3]
        cal = sc.calibrating_p - seen[4]
        seen[0] = sc.total_g
        seen[1] = sc.est_g
        seen[2] = sc.unweighed_p
        seen[3] = sc.unweighed_n
        seen[4] = sc.calibrating_p
        if take:
            self.production.add(g, est, dp, run_blocks, unw, unn, cal)

    def identity_checked(self, ok):
        """The collector's serials were read: ok is whether the collector is the
        registered one. Held mass is counted (ok) or dropped as unweighed travel."""
        if ok and not self.scale.hold:
            return  # the usual read: nothing held
        self.scale.identity_checked(ok)
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
        if self.cal is not None and self.cal.proc is None:
            # No calibration open: drop the procedures' code until the next one.
            self.cal = None
            ondemand.forget(self._cal_before)
        # Over the last second's polls: rate, load and speed against their limits (% of
        # design). Low limits only with material on the running belt (the speed: running).
        # A change is recorded by the on-demand incidents module.
        lim = self._lim
        n = lim[9]
        if not n:
            return
        p = lim[10]
        running = self.running.moving
        load = lim[11] * 100.0 / p / (sc.design_kgpm * sc.counts_per_kgpm) if p else 0.0
        mps = p * 10.0 / n / sc.pulses_per_m
        speed = mps * 100.0 / self.flat["scale.design_speed_mps"]
        rate = load * speed / 100.0
        lim[9] = lim[10] = lim[11] = 0
        if sc.inhibit or sc.test_load:
            return  # a calibration's test load on the frame is not a flow
        material = running and load >= sc.dropout_pct
        for i in range(3):
            v = (rate, load, speed)[i]
            state = 0
            if lim[2 * i + 1] and v > lim[2 * i + 1]:
                state = 2
            elif lim[2 * i] and v < lim[2 * i] and (material if i < 2 else running):
                state = 1
            if i == 2 and running and (speed > 200 or mps > 8):
                state = 3
            if state != lim[6 + i]:
                lim[6 + i] = state
                if state == 3:
                    detail = "%.0f %% of the design speed: check scale.pulses_per_m" % v
                else:
                    detail = "%.1f %% of design, limits %s" % (v, lim[2 * i:2 * i + 2])
                self.alarm(_LIMITS[i], state != 0, detail)

    def checkpoint_due(self):
        """True after a prod or total record: checkpoint now, so that a restart cannot
        close the same interval twice."""
        return self.production.checkpoint_due

    def status(self):
        """The measurement's figures for people (gateway/measure/status.py, on demand)."""
        return ondemand.call("gateway.measure.status", "measurement", self)

    def snapshot(self):
        # "t": when the scale's last sample was taken, which its counters are from (a
        # checkpoint during a link outage is written long after it).
        c = self.clock
        t = c.time()
        if self.scale.sample_ticks is not None:
            t -= c.ticks_diff(c.ticks_ms(), self.scale.sample_ticks) / 1000
        return {
            "t": t,
            "scale": self.scale.snapshot(),
            "autozero": self.autozero.snapshot(),
            "running": self.running.snapshot(),
            "production": self.production.snapshot(),
        }

    # Start-up only, loaded for the call (gateway/measure/resume.py).
    def restore(self, d):
        ondemand.call("gateway.measure.resume", "measurement", self, d)

    def reconcile(self, tail):
        """After restore(), with the newest records of the log (oldest first): records
        written after the checkpoint are adopted, never produced twice."""
        return ondemand.call("gateway.measure.resume", "reconcile", self, tail)
