# A tiny deterministic belt for the core measurement tests (runs on MicroPython: no
# random, no emulator). Exact integers: a frame of 1.0 m, 100 pulses per metre, 1000
# counts per kg on the sum of the cells, so every expected mass can be worked out by hand.
from drivers import collector
from gateway import config

U32 = 1 << 32


class Sample(collector.Sample):
    def __init__(self):
        super().__init__()
        self.supply_mv = 12000  # a healthy collector: 12 V, 25.0 degC
        self.temp_01c = 250


def params(**scale):
    """The flat config with scale/production/vibration keys given as name=value
    (scale keys bare, others with their section: production_interval_s=...)."""
    given = {
        "device_id": 1,
        "key_file": "-",
        "data_dir": "-",
        "collector": {"port": "-"},
        "center": {"host": "-", "port": 1},
        "scale": {
            "weigh_length_m": 1.0,
            "pulses_per_m": 100.0,
            "span_kg_per_count": 0.001,
            "zero_counts": 50000,  # the synthetic belt's dead load
            "design_tph": 900.0,
            "design_speed_mps": 2.5,  # design load 100 kg/m = 100 000 counts
            "belt_length_m": 50.0,
            "damping_s": 0.0,
        },
    }
    for k, v in scale.items():
        if "_" in k and k.split("_", 1)[0] in ("production", "vibration"):
            sect, key = k.split("_", 1)
            given.setdefault(sect, {})[key] = v
        else:
            given["scale"][k] = v
    return config.validate(given)


class Belt:
    """Blocks of 100 ms. load(x) is the net counts of material at travel x (pulses); the
    belt itself weighs tare(x) counts above the mean (whole revolutions average to 0)."""

    def __init__(self, dp=25, zero=50000, pulses=0, load=None, tare=None, rev_p=5000):
        self.dp = dp  # pulses per block
        self.zero = zero
        self.pulses = pulses % U32
        self.x = 0  # travel, pulses
        self.seq = 0
        self.uptime_ms = 0
        self.ticks_ms = 0  # the gateway's clock at each poll (a restart does not reset it)
        self.sensor_dead = False  # the belt moves, the speed sensor gives no pulses
        self.di = 1
        self.status = 0
        self.load = load or (lambda x: 0)
        self.tare = tare or (lambda x: 0)
        self.rev_p = rev_p
        self.vib_01mv = 0
        self.sample = Sample()

    def block(self):
        """Advance one block; return the Sample of it."""
        self.x += self.dp
        if not self.sensor_dead:
            self.pulses = (self.pulses + self.dp) % U32
        self.seq = (self.seq + 1) % U32
        self.uptime_ms += 100
        self.ticks_ms += 100
        s = self.sample
        s.ticks_ms = self.ticks_ms
        s.freq_centihz = 0 if self.sensor_dead else self.dp * 1000  # dp pulses per 100 ms
        s.block_seq = self.seq
        total = self.zero + self.load(self.x) + self.tare(self.x % self.rev_p)
        q = total // 4
        s.cells[0] = q
        s.cells[1] = q
        s.cells[2] = q
        s.cells[3] = total - 3 * q
        s.pulses = self.pulses
        s.di = self.di
        s.status = self.status
        s.uptime_s = self.uptime_ms // 1000
        s.vib_rms_01mv = self.vib_01mv
        return s

    def restart(self):
        self.seq = 0
        self.pulses = 0
        self.uptime_ms = 0
        self.status |= 0x100


def run(scale, belt, blocks, skip=None):
    """Feed blocks to scale (or anything with on_sample); skip(i) True drops a poll."""
    for i in range(blocks):
        s = belt.block()
        if skip is None or not skip(i):
            scale.on_sample(s)


def drain(scale, belt, blocks=40):
    """The belt stands still long enough for the gate to decide every poll."""
    dp = belt.dp
    belt.dp = 0
    run(scale, belt, blocks)
    belt.dp = dp
