# Output against power: the learned model, the windowed judgement with hysteresis, power
# without output, what pauses learning, re-anchoring, restarts. The belt here is exactly
# linear (the physics campaign is tests/test_crosscheck_campaign.py).
import json

from gateway.power import judge
from gateway.power.crosscheck import CALIBRATING, FAULT_METER, FAULT_SCALE, CrossCheck
from gateway.power.judge import fit_pct, solve

C = (12.0, 3.0, 0.07)  # kW running, kWh per km, kWh per t
FLAT = {
    "crosscheck.learn_h": 2.0,
    "crosscheck.window_min": 10.0,
    "crosscheck.tolerance_pct": 8.0,
    "crosscheck.min_load_pct": 20.0,
    "scale.design_tph": 1000.0,
    "scale.design_speed_mps": 2.5,
    "scale.belt_length_m": 200.0,
}
LOADS = (0.3, 0.9, 0.55, 1.1, 0.2, 0.75, 0.45, 1.0)  # share of design, one per window
SPEEDS = (2.5, 2.0, 2.5, 3.0)


class Lcg:
    """The same pseudo-random numbers on every interpreter."""

    def __init__(self, seed):
        self.x = seed

    def uniform(self):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return self.x / 0x7FFFFFFF - 0.5  # -0.5 .. 0.5


def energy(t_s, dist_m, mass_kg, c=C):
    return c[0] * t_s / 3600 + c[1] * dist_m / 1000 + c[2] * mass_kg / 1000


class Rig:
    def __init__(self, noise=0.0, seed=1, **flat):
        self.records = []
        self.alarms = []
        self.flat = dict(FLAT)
        for k, v in flat.items():
            self.flat["crosscheck." + k] = v
        self.cc = CrossCheck(self.emit, self.alarm)
        self.cc.apply_params(self.flat)
        self.rng = Lcg(seed)
        self.noise = noise
        self.n = 0  # intervals fed
        self.gain = 1.0  # the scale against the truth
        self.flags = 0

    def emit(self, rtype, fields):
        self.records.append(fields)

    def alarm(self, code, active, detail):
        assert code == "output_power_mismatch"
        self.alarms.append((active, detail))

    def interval(self, load, mps=2.5, run_s=60, gain=None):
        mass = load * 1000 / 3.6 * run_s  # kg at `load` of 1000 t/h
        kwh = energy(run_s, mps * run_s, mass) * (1 + self.noise * self.rng.uniform())
        g = self.gain if gain is None else gain
        self.n += 1
        return self.cc.on_interval(run_s, mps * run_s, mass * g, kwh, 12, self.flags)

    def window(self, load, mps=2.5, **kw):
        for _ in range(10):
            self.interval(load, mps, **kw)

    def learned(self, windows=13):
        for i in range(windows):
            self.window(LOADS[i % len(LOADS)], SPEEDS[i % len(SPEEDS)])
        return self

    def raised(self):
        return [d for a, d in self.alarms if a]


def _sums(rows):
    r = Rig()
    for t, d, m in rows:
        r.cc.wsum = [t, d, m, energy(t * 3600, d * 1000, m * 1000), t, d, m,
                     energy(t * 3600, d * 1000, m * 1000)]
        judge._merge(r.cc, 1.0)
    return r.cc.learn


def test_solve_recovers_the_coefficients_of_exact_data():
    # Exact but for the penalty on the running/distance split: c2 to 0.5 %, the energy
    # of every row to 0.5 %, the split itself to 5 %.
    rows = [(1.0, 3.6 * v, 1000.0 * load) for load, v in zip(LOADS, SPEEDS + SPEEDS)]
    c = solve(_sums(rows))
    assert abs(c[2] - C[2]) < 5e-3 * C[2], c
    for t, d, m in rows:
        want = energy(t * 3600, d * 1000, m * 1000)
        assert abs(energy(t * 3600, d * 1000, m * 1000, c) - want) < 5e-3 * want
    assert abs(c[0] - C[0]) < 0.05 * C[0] and abs(c[1] - C[1]) < 0.05 * C[1], c


def test_a_belt_whose_speed_barely_varies_does_not_split_by_its_noise():
    # Running time and distance cannot be told apart at one speed: with ±0.1 % of jitter
    # in the speed and ±2 % in the energy the split stays sane (both positive), and a
    # window 2 % faster than the learned speed is still predicted to 1 %.
    for seed in range(1, 11):
        rng = Lcg(seed)
        s = [0.0] * 12
        for i in range(40):
            v = 2.5 * (1 + 0.002 * rng.uniform())
            t, d, m = 1 / 6, 0.6 * v, 100.0 * LOADS[i % 8]
            e = energy(t * 3600, d * 1000, m * 1000) * (1 + 0.04 * rng.uniform())
            judge._add(s, 1.0, t, d, m, e)
        c = solve(s)
        assert c[0] > 0 and c[1] > 0, (seed, c)
        t, d, m = 1 / 6, 0.6 * 2.5 * 1.02, 60.0
        want = energy(t * 3600, d * 1000, m * 1000)
        assert abs(energy(t * 3600, d * 1000, m * 1000, c) - want) < 0.01 * want, (seed, c)


def test_solve_without_data_is_none():
    assert solve([0.0] * 12) is None


def test_learns_until_learn_h_with_spread_then_ready():
    r = Rig()
    for i in range(11):
        r.window(LOADS[i % 8], SPEEDS[i % 4])
    st = r.cc.status()
    assert st["state"] == "learning" and abs(st["hours"] - 11 / 6) < 1e-9
    assert not r.records
    r.window(LOADS[11 % 8], SPEEDS[11 % 4])
    assert r.cc.ready
    assert [x["code"] for x in r.records] == ["crosscheck_ready"]
    detail = r.records[0]["detail"]
    assert abs(detail["kwh_per_t"] - C[2]) < 1e-3 * C[2]
    assert abs(detail["kw_run"] - C[0]) < 0.05 * C[0]
    st = r.cc.status()
    assert st["state"] == "ready" and st["fit_pct"] < 0.05 and st["spread_pct"] > 20


def test_no_load_spread_is_never_ready():
    r = Rig()
    for i in range(40):
        r.window(0.7, SPEEDS[i % 4])
    assert not r.cc.ready and r.cc.status()["spread_pct"] < 1e-3
    assert r.cc.on_interval(60, 150, 10000, 1.5, 12, 0) is None  # no implied mass yet


def test_implied_mass_per_interval():
    r = Rig().learned()
    implied = r.interval(0.6, 2.0)
    assert abs(implied - 0.6 * 1000 / 3.6 * 60) < 20  # kg: within 0.2 % of 10 t


def test_under_reading_scale_raised_within_two_windows_says_which_way_and_how_much():
    r = Rig(noise=0.01).learned()
    r.gain = 0.8
    for _ in range(5):
        r.interval(0.6)  # the change in the middle of a window
    r.window(0.6)
    r.window(0.7)
    assert len(r.raised()) == 1
    assert "under-reads by 20." in r.raised()[0]
    assert r.cc.status()["mismatch"]


def test_over_reading_scale_is_raised_too():
    r = Rig().learned()
    r.gain = 1.15
    r.window(0.5)
    assert r.raised() and "over-reads by 15.0 %" in r.raised()[0]


def test_within_tolerance_raises_nothing_and_is_learned():
    r = Rig().learned()
    r.gain = 1.06
    hours = r.cc.hours
    for i in range(6):
        r.window(LOADS[i])
    assert r.alarms == [] and r.cc.hours > hours


def test_window_off_by_more_than_half_the_tolerance_teaches_a_quarter():
    # A tamper's first, partly affected window must not pull the model after it; a
    # lasting shift inside the tolerance is still learned, slowly.
    t, d, mass = 1 / 6, 1.5, 100.0  # a window at 60 % and 2.5 m/s
    e = energy(600, 1500, mass * 1000)
    absorbed = []
    for gain in (1.03, 1.06):
        r = Rig().learned()
        before = r.cc.implied_t(t, d, e)
        r.window(0.6, gain=gain)
        assert r.alarms == []
        absorbed.append((r.cc.implied_t(t, d, e) - before) / before / (gain - 1))
    assert 0.05 < absorbed[0] and 0.2 * absorbed[0] < absorbed[1] < 0.3 * absorbed[0]


def test_hysteresis_clears_only_within_half_the_tolerance():
    r = Rig().learned()
    r.gain = 0.85
    r.window(0.6)
    assert r.alarms == [(True, r.alarms[0][1])]
    r.gain = 0.95  # 5 %: inside the tolerance, not inside half of it
    r.window(0.6)
    r.window(0.9)
    assert len(r.alarms) == 1
    r.gain = 0.98
    r.window(0.6)
    assert r.alarms[-1][0] is False and "agree again" in r.alarms[-1][1]


def test_learning_pauses_while_raised():
    r = Rig().learned()
    coef, hours = r.cc.coef, r.cc.hours
    r.gain = 0.8
    for i in range(8):
        r.window(LOADS[i], SPEEDS[i % 4])
    assert r.cc.coef == coef and r.cc.hours == hours
    assert r.cc.status()["paused"] == "mismatch"


def test_calibration_and_meter_fault_intervals_are_skipped():
    r = Rig().learned()
    r.gain = 0.5
    r.flags = CALIBRATING
    for _ in range(30):
        r.interval(0.6)
    assert r.cc.status()["paused"] == "calibration" and r.cc.status()["window_min"] == 0
    r.flags = FAULT_METER
    for _ in range(30):
        assert r.interval(0.6) is None
    assert r.cc.status()["paused"] == "meter fault" and r.alarms == []
    assert r.cc.on_interval(60, 150, 1000, None, 12, 0) is None
    assert r.cc.on_interval(60, 150, 1000, 1.0, 1, 0) is None  # one reading is not enough


def test_scale_fault_intervals_are_judged_not_learned():
    # Cells disconnected: the scale weighs nothing; the window says so, and the model
    # does not learn from it.
    r = Rig().learned()
    hours = r.cc.hours
    r.flags = FAULT_SCALE
    r.window(0.6, gain=0.0)
    assert r.raised() and "under-reads by 100.0 %" in r.raised()[0]
    assert r.cc.hours == hours


def test_low_load_window_is_not_judged():
    r = Rig().learned()
    r.window(0.1, gain=0.5)  # 10 % of design: below crosscheck.min_load_pct
    assert r.alarms == []


def test_speed_the_model_has_not_learned_is_not_judged():
    r = Rig()
    for i in range(13):
        r.window(LOADS[i % 8], 2.5)
    assert r.cc.ready
    r.window(0.6, 1.2, gain=0.7)
    assert r.alarms == []
    r.window(0.6, 2.5, gain=0.7)
    assert r.raised()


def test_fractions_of_parameters_give_short_windows():
    r = Rig(learn_h=0.05, window_min=0.5)  # 3 min to learn, 30 s windows
    for i in range(8):
        r.interval(LOADS[i], SPEEDS[i % 4], run_s=30)
    assert r.cc.ready
    r.interval(0.5, 2.5, run_s=30, gain=0.8)
    assert r.raised()


class Carry:
    """Feeds on_power every 5 s from a belt with a real carry: the drive feels the
    material on the whole carry (100 m here), the scale weighs it at its frame."""

    def __init__(self, rig, mps=2.5):
        self.rig = rig
        self.mps = mps
        self.cells = [0.0] * 8  # t per 12.5 m of carry, frame first
        self.sensor = True
        self.scale_share = 1.0  # what crosses the frame and is weighed

    def step(self, feed_tph):
        t = feed_tph * 5 / 3600
        self.cells = [t] + self.cells[:-1]  # 2.5 m/s x 5 s = 12.5 m a step
        flow = sum(self.cells) * self.mps * 3600 / 100  # t/h the drive carries
        kw = C[0] + C[1] * 3.6 * self.mps + C[2] * flow
        v = self.mps if self.sensor else 0.0
        rate = feed_tph * self.scale_share if self.sensor else 0.0
        self.rig.cc.on_power(kw, v, rate, 5)

    def run(self, feed_tph, seconds):
        for _ in range(seconds // 5):
            self.step(feed_tph)


def test_power_without_output_raised_within_a_minute_and_cleared():
    r = Rig().learned()
    belt = Carry(r)
    belt.run(800, 300)
    assert r.alarms == []
    belt.sensor = False  # speed sensor disconnected: no travel, nothing weighed
    belt.run(800, 15)
    assert r.alarms == []  # a drive starting up looks the same for a few seconds
    belt.run(800, 45)
    assert r.raised() and "power without output" in r.raised()[0]
    assert r.cc.status()["mismatch"]
    belt.sensor = True
    belt.run(800, 15)
    assert len(r.alarms) == 1
    belt.run(800, 10)
    assert r.alarms[-1][0] is False


def test_whole_flow_bypassing_the_frame_is_power_without_output():
    r = Rig().learned()
    belt = Carry(r)
    belt.run(600, 300)
    belt.scale_share = 0.0
    belt.run(600, 60)
    assert r.raised()


def test_feed_stop_and_loaded_restart_are_not_power_without_output():
    r = Rig().learned()
    belt = Carry(r)
    belt.run(1100, 300)
    belt.run(0, 120)  # the carry empties, the power with it
    belt.run(1100, 120)
    # Stopped loaded, started again faster: the carry still holds what was weighed.
    belt.mps = 3.0
    belt.run(0, 10)
    belt.mps = 2.5
    assert r.alarms == []


def test_restart_through_json_continues_bit_for_bit():
    a = Rig(noise=0.02, seed=7)
    b = Rig(noise=0.02, seed=7)
    for rig in (a, b):
        for i in range(9):
            rig.window(LOADS[i % 8], SPEEDS[i % 4])
        for _ in range(4):
            rig.interval(0.5)
        Carry(rig).run(700, 60)
    snap = json.loads(json.dumps(b.cc.snapshot()))
    b.cc = CrossCheck(b.emit, b.alarm)
    b.cc.apply_params(b.flat)
    b.cc.restore(snap)
    for rig in (a, b):
        for i in range(20):
            rig.window(LOADS[(i + 3) % 8], SPEEDS[i % 4])
        rig.gain = 0.85
        rig.window(0.6)
    assert a.cc.coef == b.cc.coef and a.cc.dev_pct == b.cc.dev_pct
    assert a.cc.ready and a.cc.status() == b.cc.status()
    assert [x[0] for x in a.alarms] == [True]
    assert [x[0] for x in b.alarms] == [False, True]  # reported once after the restart


def test_restored_alarm_is_reported_at_the_next_judgement():
    r = Rig().learned()
    r.gain = 0.8
    r.window(0.6)
    snap = json.loads(json.dumps(r.cc.snapshot()))
    r.cc = CrossCheck(r.emit, r.alarm)
    r.cc.apply_params(r.flat)
    r.cc.restore(snap)
    r.window(0.6)
    assert [a for a, _ in r.alarms] == [True, True]  # the engine hears the owner again


def test_restore_refuses_a_state_of_another_shape():
    r = Rig()
    snap = r.cc.snapshot()
    snap["learn"] = [0.0] * 5
    try:
        r.cc.restore(snap)
    except ValueError as e:
        assert "shape" in str(e)
    else:
        raise AssertionError("restored a bad state")


def test_parameter_change_does_not_hide_a_mismatch():
    # A span changed by 12 % (any parameter change but a material test): raised.
    r = Rig().learned()
    r.cc.apply_params(dict(r.flat, **{"crosscheck.learn_h": 3.0}))
    r.gain = 1.12
    r.window(0.6)
    assert r.raised() and "over-reads by 12.0 %" in r.raised()[0]


def test_material_test_reanchors_the_model():
    r = Rig().learned()
    coef = r.cc.coef
    r.gain = 1.12  # the material test found the scale 12 % low all along
    r.cc.reanchor("tech1")
    r.window(0.6)
    assert r.alarms == []
    ev = [x for x in r.records if x["code"] == "crosscheck_reanchored"]
    assert len(ev) == 1 and ev[0]["detail"]["by"] == "tech1"
    factor = ev[0]["detail"]["factor"]
    assert abs(factor - 1.12) < 1e-3
    assert abs(r.cc.coef[2] - coef[2] / factor) < 1e-4 * coef[2]  # the anchor window learned
    assert abs(r.cc.coef[0] - coef[0]) < 0.01 * coef[0]
    for i in range(8):
        r.window(LOADS[i], SPEEDS[i % 4])
    assert r.alarms == [] and abs(r.cc.dev_pct) < 0.5


def test_material_test_clears_a_raised_mismatch():
    r = Rig().learned()
    r.gain = 0.8
    r.window(0.6)
    assert r.raised()
    r.cc.reanchor("tech1")
    r.window(0.1)  # too light to anchor on: still waiting
    assert r.cc.status()["anchor"] and len(r.alarms) == 1
    r.window(0.6)
    assert r.alarms[-1] == (False, "re-anchored by a material test")
    assert not r.cc.status()["mismatch"]


def test_reanchor_beyond_the_material_factor_range_is_refused():
    r = Rig().learned()
    r.gain = 0.3
    r.cc.reanchor("tech1")
    r.window(0.6)
    ev = [x for x in r.records if x["code"] == "crosscheck_reanchored"]
    assert ev[0]["detail"]["refused"] and r.raised()


def test_reanchor_while_learning_starts_learning_again():
    r = Rig()
    for i in range(6):
        r.window(LOADS[i])
    r.cc.reanchor("tech1")
    assert r.cc.status()["hours"] == 0 and r.cc.coef is None
    assert r.records[-1]["detail"]["restart"]
    r.learned()
    assert r.cc.ready


def test_fit_error_reflects_noise():
    quiet = Rig().learned()
    noisy = Rig(noise=0.04).learned()
    assert fit_pct(quiet.cc.learn, quiet.cc.coef) < 0.05
    assert 0.1 < fit_pct(noisy.cc.learn, noisy.cc.coef) < 4


def test_the_carry_follows_readings_that_span_several_bins():
    # A 20 m belt (10 m carry, bins of 1.25 m) read every 2 s at 2.5 m/s: each reading
    # spans four bins; what lies on the carry still makes the flow the scale weighs.
    r = Rig()
    r.cc.apply_params(dict(r.flat, **{"scale.belt_length_m": 20.0}))
    for _ in range(20):
        r.cc.on_power(100.0, 2.5, 720.0, 2)
    assert abs(r.cc.carry_tph(2.5) - 720.0) < 0.05 * 720
    assert abs(sum(r.cc.ring) - 720.0 / 3600 * 4) < 0.3  # ~4 s of flow on 10 m
