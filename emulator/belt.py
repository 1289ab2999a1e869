# The belt conveyor as the collector sees it, with known ground truth.
#
# Simulated at the collector's 100 Hz conversion rate; every 10 conversions make one
# published block (block_seq, the 4 cell means, the pulse counter at the block's end).
# Material is laid on the belt at a loading point `load_to_frame_m` upstream of the weigh
# frame; the frame weighs what lies over its weigh length (material plus belt). The true
# mass is the material that crossed the frame's centre line: the figure every measurement
# is judged against.
import math
import random

WRAP = 1 << 32
_CELL_M = 0.01  # material grid: 1 cm of belt
_CONV_S = 0.01  # 100 Hz conversions
_BLOCK = 10  # conversions per published block (100 ms)
MV_PER_MMPS = 19.7


class Profile:
    """Feed rate (t/h) and belt speed target (m/s) as functions of time.
    Built from segments (duration_s, feed_tph, speed_mps); repeats when it runs out."""

    def __init__(self, segments, surge_seed=None):
        self.segments = segments
        self.period = sum(s[0] for s in segments)
        self._rng = random.Random(surge_seed) if surge_seed is not None else None

    def at(self, t):
        t = t % self.period
        for dur, feed, speed in self.segments:
            if t < dur:
                if callable(feed):
                    feed = feed(t)
                return feed, speed
            t -= dur
        return self.segments[-1][1], self.segments[-1][2]


def steady(tph=800.0, mps=2.5):
    return Profile([(3600, tph, mps)])


def surges(tph=800.0, mps=2.5):
    # Feed swings between 20 % and 150 % of nominal with sharp surges.
    def feed(t):
        base = (0.85 + 0.35 * math.sin(2 * math.pi * t / 97.0)
                + 0.15 * math.sin(2 * math.pi * t / 13.0))
        surge = 0.6 if (t % 61.0) < 6.0 else 0.0
        return tph * max(0.2, base + surge)

    return Profile([(3600, feed, mps)])


def empty_runs(tph=800.0, mps=2.5):
    return Profile([(120, tph, mps), (90, 0.0, mps), (60, tph * 1.2, mps), (80, 0.0, mps)])


def start_stop(tph=800.0, mps=2.5):
    # Loaded running, feed stops, belt runs empty, stops, restarts empty, feed resumes.
    return Profile(
        [(150, tph, mps), (60, 0.0, mps), (40, 0.0, 0.0), (40, 0.0, mps), (150, tph, mps)]
    )


def speed_ramps(tph=800.0):
    return Profile([(100, tph, 2.5), (100, tph, 3.5), (100, tph, 1.5), (100, tph, 3.0)])


PROFILES = {
    "steady": steady,
    "surges": surges,
    "empty": lambda: Profile([(3600, 0.0, 2.5)]),
    "empty_runs": empty_runs,
    "start_stop": start_stop,
    "speed_ramps": speed_ramps,
}

VIBRATION_MODES = ("normal", "imbalance", "misalignment", "looseness", "bearing")


class Belt:
    def __init__(
        self,
        seed=1,
        profile=None,
        belt_length_m=187.3,
        weigh_length_m=1.25,
        pulses_per_m=101.7,
        belt_kgpm=22.0,
        load_to_frame_m=35.0,
        accel_mps2=0.25,
        motor_rpm=1485.0,
        pulses_start=WRAP - 50000,
    ):
        rng = random.Random(seed)
        self._rng = rng
        self.profile = profile or steady()
        self.belt_length_m = belt_length_m
        self.weigh_length_m = weigh_length_m
        self.pulses_per_m = pulses_per_m
        self.load_to_frame_m = load_to_frame_m
        self.accel_mps2 = accel_mps2
        self.motor_rpm = motor_rpm
        # Four cells: each carries a fixed share of the frame, with its own gain and offset.
        shares = [0.25 + rng.uniform(-0.02, 0.02) for _ in range(4)]
        s = sum(shares)
        self.shares = [x / s for x in shares]
        self.gains = [1000.0 * (1 + rng.uniform(-0.03, 0.03)) for _ in range(4)]  # counts/kg
        self.offsets = [rng.uniform(-20000, 20000) for _ in range(4)]
        self.noise_counts = 15.0  # per conversion, per cell
        self.drift_counts_per_h = [rng.uniform(-40, 40) for _ in range(4)]
        # Belt weight per metre along one revolution: a base, a slow wave, heavier splices.
        n = int(round(belt_length_m / _CELL_M))
        splices = [rng.uniform(0, belt_length_m) for _ in range(3)]
        belt = []
        for i in range(n):
            x = i * _CELL_M
            w = belt_kgpm * (1 + 0.03 * math.sin(2 * math.pi * x / belt_length_m * 3))
            for sp in splices:
                if 0 <= x - sp < 0.8:
                    w += belt_kgpm * 0.25
            belt.append(w)
        self._belt_prefix = _prefix(belt)
        # State
        self.t = 0.0
        self.speed_mps = 0.0
        self.x_m = 0.0  # belt travel at the frame since start
        self.true_mass_kg = 0.0  # material that crossed the frame centre line
        self.motor_on = False
        self.mains_lost = False
        self.slipping = False  # belt slip: stalled on the drive pulley, motor running
        self.test_weight_kg = 0.0  # test weights hung on the frame
        self.chain_kgpm = 0.0  # a test chain lying on the belt over the frame
        self.vibration_mode = "normal"
        self.vibration_scale = 1.0
        self._pulses_start = pulses_start
        self._pulse_base = 0  # int(x_m * pulses_per_m) when the collector last (re)started
        self.started_t = 0.0  # when the collector last (re)started, for its uptime
        self.restarts = 0
        self.restarted = True  # status bit 8: set at power-up and restart, cleared by ack
        # Material kg/m per 1 cm cell, indexed by travel at the frame; cells behind the
        # frame are dropped (_mat_base counts them) so a long run uses constant memory.
        self._mat = [0.0]
        self._mat_prefix = [0.0, 0.0]
        self._mat_base = 0
        self._q_loading = 0.0
        self._loaded_to_m = load_to_frame_m  # cells before this were laid before start: empty
        self._extend_material(load_to_frame_m + weigh_length_m)
        self._conv = 0
        self._frame_acc = self._hours_acc = 0.0
        self.block_seq = 0
        self.cells = [int(o) for o in self.offsets]
        self.pulses = pulses_start % WRAP
        self.vib_rms_mv = 0.0
        self.wave = [0] * 256
        self.wave_seq = 0
        self._wave_t = 0.0
        self.faulty_cells = set()

    # --- ground truth helpers
    def revolutions(self):
        return self.x_m / self.belt_length_m

    def marks(self):
        """Passes of a mark on the belt past a fixed point (whole revolutions travelled):
        what a technician watching a painted mark, or a belt-mark sensor, counts."""
        return int(self.x_m / self.belt_length_m)

    def uptime_s(self):
        return int(self.t - self.started_t)

    def restart(self):
        """The collector restarts (power dip, watchdog): block_seq and the pulse counter
        begin again at 0 from this instant; the belt itself keeps running."""
        self._conv = 0
        self._frame_acc = self._hours_acc = 0.0
        self.block_seq = 0
        self._pulses_start = 0
        self._pulse_base = int(self.x_m * self.pulses_per_m)
        self.pulses = 0
        self.started_t = self.t
        self.restarts += 1
        self.restarted = True

    def _mat_at(self, x):
        return _interp(self._mat_prefix, x - self._mat_base * _CELL_M)

    def material_on_frame_kg(self):
        h = self.weigh_length_m / 2
        return self._mat_at(self.x_m + h) - self._mat_at(self.x_m - h)

    def belt_on_frame_kg(self):
        h = self.weigh_length_m / 2
        return self._belt_at(self.x_m + h) - self._belt_at(self.x_m - h)

    def frame_kg(self):
        return (
            self.material_on_frame_kg()
            + self.belt_on_frame_kg()
            + self.test_weight_kg
            + self.chain_kgpm * self.weigh_length_m
        )

    def zero_counts(self):
        """The four cells' sum under the empty belt, over a whole revolution: what a zero
        calibration finds (drift aside)."""
        empty_kg = self._belt_prefix[-1] / self.belt_length_m * self.weigh_length_m
        return sum(self.offsets) + empty_kg * sum(g * s for g, s in zip(self.gains, self.shares))

    def _belt_at(self, x):
        total = self._belt_prefix[-1]
        rev = math.floor(x / self.belt_length_m)
        return rev * total + _interp(self._belt_prefix, x - rev * self.belt_length_m)

    def _trim_material(self):
        behind = int((self.x_m - self.weigh_length_m) / _CELL_M) - self._mat_base - 1
        if behind > 20000:
            del self._mat[:behind]
            del self._mat_prefix[:behind]
            self._mat_base += behind

    def _extend_material(self, upto_m):
        # Lay material on cells up to travel coordinate upto_m. The cell at coordinate c
        # passed the loading point when the frame's travel was c - load_to_frame_m.
        while (self._mat_base + len(self._mat)) * _CELL_M < upto_m:
            c = (self._mat_base + len(self._mat)) * _CELL_M
            if c < self._loaded_to_m:
                q = 0.0
            else:
                q = self._q_loading
            self._mat.append(q)
            self._mat_prefix.append(self._mat_prefix[-1] + q * _CELL_M)

    # --- simulation
    def step(self):
        """One 10 ms conversion."""
        dt = _CONV_S
        feed_tph, target = self.profile.at(self.t)
        # Speed follows its target with limited acceleration; the motor is on while it runs.
        if self.slipping:
            # The belt stalls on the drive pulley, which the motor keeps turning.
            self.speed_mps = 0.0
            self.motor_on = True
        else:
            if self.speed_mps < target:
                self.speed_mps = min(target, self.speed_mps + self.accel_mps2 * dt)
            elif self.speed_mps > target:
                self.speed_mps = max(target, self.speed_mps - self.accel_mps2 * dt)
            self.motor_on = target > 0 or self.speed_mps > 0.05
        v = self.speed_mps
        # Material laid at the loading point now arrives at the frame load_to_frame_m later.
        self._q_loading = feed_tph / (3.6 * v) if v > 0.05 else 0.0
        dx = v * dt
        x0 = self.x_m
        self.x_m = x0 + dx
        self._extend_material(self.x_m + self.load_to_frame_m + self.weigh_length_m)
        self.true_mass_kg += self._mat_at(self.x_m) - self._mat_at(x0)
        self._trim_material()
        self.t += dt
        # Conversion: each cell sees its share of the frame, its gain, offset, drift and
        # noise. Only the block means are published, so the sums are kept of what varies
        # (the frame, the hours of drift) and the noise of the mean is drawn once.
        self._frame_acc += self.frame_kg()
        self._hours_acc += self.t / 3600
        self._conv += 1
        if self._conv == _BLOCK:
            self._publish()

    def _publish(self):
        self._conv = 0
        self.block_seq = (self.block_seq + 1) % WRAP
        frame = self._frame_acc / _BLOCK
        hours = self._hours_acc / _BLOCK
        self._frame_acc = self._hours_acc = 0.0
        rng = self._rng
        sigma = self.noise_counts / math.sqrt(_BLOCK)
        for i in range(4):
            c = (
                self.offsets[i]
                + self.drift_counts_per_h[i] * hours
                + self.gains[i] * self.shares[i] * frame
                + rng.gauss(0, sigma)
            )
            self.cells[i] = int(round(c))
            if i in self.faulty_cells:
                self.cells[i] = -(1 << 31)
        counted = int(self.x_m * self.pulses_per_m) - self._pulse_base
        self.pulses = (self._pulses_start + counted) % WRAP
        self._vibration()

    def advance(self, seconds):
        for _ in range(int(round(seconds / _CONV_S))):
            self.step()

    def speed_freq_hz(self):
        return self.speed_mps * self.pulses_per_m

    # --- vibration: velocity in mm/s at the motor bearing
    def _components(self):
        """[(freq_hz, amplitude_mmps, phase)] of the vibration velocity now."""
        if not self.motor_on:
            return []
        f1 = self.motor_rpm / 60 * min(1.0, self.speed_mps / 2.5 + 0.2)
        a1, a2, a3 = 1.2, 0.3, 0.1
        mode = self.vibration_mode
        extra = []
        if mode == "imbalance":
            a1 = 6.0
        elif mode == "misalignment":
            a1, a2 = 2.0, 5.0
        elif mode == "looseness":
            a1, a2, a3 = 1.5, 2.0, 2.0
            extra = [(k * f1, 1.2 / k * 4, k) for k in range(4, 9)]
        elif mode == "bearing":
            extra = [(312.0, 3.0, 0.0), (305.0, 0.75, 1.0), (319.0, 0.75, 2.0)]
        k = self.vibration_scale
        comps = [(f1, a1, 0.0), (2 * f1, a2, 0.7), (3 * f1, a3, 1.3)] + extra
        return [(f, a * k, ph) for f, a, ph in comps]

    _NOISE_MMPS = 0.15

    def _vibration(self):
        comps = self._components()
        ms = sum(a * a / 2 for _, a, _ in comps) + (self._NOISE_MMPS**2 if comps else 0.02**2)
        self.vib_rms_mv = math.sqrt(ms) * MV_PER_MMPS
        if self.t - self._wave_t >= 2.0:
            self._wave_t = self.t
            rng = self._rng
            wave = []
            for i in range(256):
                t = self.t + i / 1000
                v = sum(a * math.sin(2 * math.pi * f * t + ph) for f, a, ph in comps)
                v += rng.gauss(0, self._NOISE_MMPS if comps else 0.02)
                wave.append(max(-32768, min(32767, int(round(v * MV_PER_MMPS)))))
            self.wave = wave
            self.wave_seq = (self.wave_seq + 1) & 0xFFFF


def _prefix(values):
    p = [0.0]
    acc = 0.0
    for v in values:
        acc += v * _CELL_M
        p.append(acc)
    return p


def _interp(prefix, x):
    # Prefix sums at 1 cm grid points, linear in between (material is uniform in a cell).
    if x <= 0:
        return 0.0
    i = int(x / _CELL_M)
    if i >= len(prefix) - 1:
        return prefix[-1]
    frac = x / _CELL_M - i
    return prefix[i] + (prefix[i + 1] - prefix[i]) * frac
