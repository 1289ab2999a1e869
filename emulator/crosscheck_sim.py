# The output-against-power cross-check in simulated time: a belt conveyor and its drive
# (energy from the physics, not from the model the gateway learns), a month of mine
# operation, the gateway's CrossCheck fed as the gateway feeds it, and the tampering it
# must catch. `python -m emulator.crosscheck_sim` prints the table of docs/crosscheck.md;
# tests/test_crosscheck_campaign.py checks the same runs.
import copy
import json
import math
import random
from collections import deque

from gateway.power.crosscheck import CALIBRATING, CrossCheck

STEP_S = 5  # one drive power reading
INTERVAL_S = 60  # production.interval_s
DAY_S = 86400
G = 9.81

FLAT = {
    "crosscheck.learn_h": 24.0,
    "crosscheck.window_min": 60.0,
    "crosscheck.tolerance_pct": 8.0,
    "crosscheck.min_load_pct": 20.0,
    "scale.design_tph": 1000.0,
    "scale.design_speed_mps": 2.5,
    "scale.belt_length_m": 500.0,
}


class DriveBelt:
    """A 500 m belt (250 m carry, 18 m lift) and its drive, stepped STEP_S at a time.

    Electrical power = running losses + (empty-belt friction + load friction and lift +
    acceleration) / efficiency + copper losses growing with the square of the load. Belt
    friction rises a little with speed and drifts with the season (friction_factor);
    material on the belt is tracked in parcels, so the drive feels what is on the carry
    while the scale weighs what crosses its frame."""

    carry_m = 250.0
    load_to_frame_m = 20.0  # the loading point is upstream of the weigh frame
    lift_m = 18.0
    mu_load = 0.025
    empty_kw = 25.0  # empty-belt friction at design speed
    run_kw = 12.0  # motor and drive losses while running
    efficiency = 0.92
    copper = 0.03  # extra share at 100 kW of mechanical power
    belt_kg = 30000.0  # belt, idlers and pulleys, for acceleration
    accel_mps2 = 0.25

    def __init__(self):
        self.v = 0.0  # belt speed, m/s
        self.target_v = 0.0
        self.feed_tph = 0.0
        self.x = 0.0  # belt travel, m
        self.parcels = deque()  # [x when loaded, kg, weighed yet]
        self.carried_kg = 0.0
        self.friction_factor = 1.0
        self.scale_gain = 1.0  # the scale's error (a tampered span: 0.8)
        self.bypass = 0.0  # share of the flow that passes the frame unweighed
        self.speed_sensor = True
        self.true_kg = 0.0

    def step(self):
        """One STEP_S: returns (drive kW, measured speed m/s, weighed kg)."""
        dt = STEP_S
        v0 = self.v
        dv = self.accel_mps2 * dt
        self.v = min(self.target_v, v0 + dv) if self.target_v > v0 else max(self.target_v, v0 - dv)
        v = (v0 + self.v) / 2
        if self.v > 0 and self.feed_tph > 0:
            kg = self.feed_tph / 3.6 * dt
            self.parcels.append([self.x, kg, False])
            self.carried_kg += kg
        self.x += v * dt
        weighed = 0.0
        for p in self.parcels:
            if p[2]:
                continue
            if self.x - p[0] < self.load_to_frame_m:
                break
            p[2] = True
            self.true_kg += p[1]
            weighed += p[1] * (1 - self.bypass)
        while self.parcels and self.x - self.parcels[0][0] >= self.carry_m:
            self.carried_kg -= self.parcels.popleft()[1]
        kw = self.power_kw(v, (self.v - v0) / dt)
        if not self.speed_sensor:
            return kw, 0.0, 0.0  # the scale totalizes load x measured travel
        return kw, v, weighed * self.scale_gain

    def power_kw(self, v, a):
        if v <= 0 and self.target_v <= 0:
            return 0.0
        fr = self.friction_factor * (1 + 0.1 * (v / 2.5 - 1))
        empty = self.empty_kw * fr * v / 2.5
        load = self.carried_kg * G * (self.mu_load * fr + self.lift_m / self.carry_m) * v / 1000
        accel = max(0.0, (self.belt_kg + self.carried_kg) * a * v / 1000)
        mech = empty + load + accel
        return self.run_kw + mech / self.efficiency * (1 + self.copper * mech / 100)


class _Gateway(CrossCheck):
    """The gateway's CrossCheck, with the longest power-without-output condition noted
    for the table."""

    def __init__(self, emit, alarm):
        CrossCheck.__init__(self, emit, alarm)
        self.longest_without_s = 0.0

    def on_power(self, kw, speed_mps, rate_tph, dt_s):
        CrossCheck.on_power(self, kw, speed_mps, rate_tph, dt_s)
        self.longest_without_s = max(self.longest_without_s, self._without_s)


class Site:
    """A month of a mine's belt: feed at 20-110 % of design in runs of 5-90 min with speed
    changes, empty running, stops (some with the belt loaded), the daily maintenance stop;
    the gateway's CrossCheck fed every power reading and every production interval."""

    def __init__(self, seed, flat=None):
        self.rng = random.Random(seed)
        self.flat = dict(FLAT, **(flat or {}))
        self.belt = DriveBelt()
        self.t = 0
        self.alarms = []  # (t, active, detail)
        self.events = []
        self.meter_noise = 0.01
        self.scale_noise = 0.003
        self.friction_phase = self.rng.uniform(0, 2 * math.pi)
        self._plan_end = 0
        self._stop_until = 0
        self._calibrating_until = -1
        self._cal_gain = 1.0
        self.restarts = 0
        self.run_total = 0  # seconds the belt ran
        self.devs = []  # every judged window's scale against power, %, across restarts
        self.longest_without_s = 0.0
        self._iv = [0.0, 0.0, 0.0, 0.0, 0, 0]  # run_s, dist_m, mass_kg, kwh, readings, flags
        self.cc = self._gateway()

    def _gateway(self):
        cc = _Gateway(self._emit, self._alarm)
        cc.apply_params(self.flat)
        return cc

    def _emit(self, rtype, fields):
        self.events.append((self.t, fields["code"], fields["detail"]))

    def _alarm(self, code, active, detail):
        self.alarms.append((self.t, active, detail))

    def restart(self):
        """The gateway restarts: its state goes through the checkpoint's JSON."""
        snap = json.loads(json.dumps(self.cc.snapshot()))
        self.longest_without_s = max(self.longest_without_s, self.cc.longest_without_s)
        self.cc = self._gateway()
        self.cc.restore(snap)
        self.restarts += 1

    def calibrate(self, minutes, gain_after):
        """A technician's span calibration: the belt runs empty for `minutes` with the
        totalizer inhibited, then the scale's error is what the calibration left."""
        self._calibrating_until = self.t + minutes * 60
        self._cal_gain = gain_after

    # --- the mine's operation
    def _plan(self):
        b = self.belt
        rng = self.rng
        day_s = self.t % DAY_S
        if 6 * 3600 <= day_s < 7.5 * 3600 or self.t < self._stop_until:
            b.feed_tph = 0.0
            b.target_v = 0.0
            self._plan_end = self.t + STEP_S
            return
        if self.t < self._plan_end:
            return
        r = rng.random()
        if r < 0.04:
            # A stop: most after running empty, some with the belt loaded.
            if rng.random() < 0.7:
                b.feed_tph = 0.0
                self._stop_until = self.t + 180 + rng.randrange(5, 40) * 60
                self._plan_end = self.t + 180
            else:
                b.target_v = 0.0
                self._stop_until = self.t + rng.randrange(5, 30) * 60
            return
        if r < 0.14:
            b.feed_tph = 0.0  # running empty
            self._plan_end = self.t + rng.randrange(5, 20) * 60
        else:
            b.feed_tph = rng.uniform(200.0, 1100.0)
            self._plan_end = self.t + rng.randrange(5, 90) * 60
        b.target_v = rng.choice((2.5, 2.5, 2.5, 2.0, 3.0))

    def run_s(self, seconds):
        end = self.t + seconds
        b = self.belt
        while self.t < end:
            self._plan()
            season = 2 * math.pi * self.t / (30 * DAY_S) + self.friction_phase
            b.friction_factor = 1 + 0.05 * math.sin(season)
            calibrating = self.t < self._calibrating_until
            if calibrating:
                b.feed_tph = 0.0
                b.target_v = 2.5
            elif self._calibrating_until >= 0:
                b.scale_gain = self._cal_gain
                self._calibrating_until = -1
            kw, v, kg = b.step()
            if calibrating:
                kg = 0.0
                self._iv[5] = CALIBRATING
            kw *= 1 + self.rng.gauss(0, self.meter_noise)
            rate = kg / STEP_S * 3.6
            self.t += STEP_S
            if b.v > 0:
                self.run_total += STEP_S
            iv = self._iv
            if v >= 0.1:
                iv[0] += STEP_S
            iv[1] += v * STEP_S
            iv[2] += kg
            iv[3] += kw * STEP_S / 3600
            iv[4] += 1
            self.cc.on_power(kw, v, rate, STEP_S)
            if self.t % INTERVAL_S == 0:
                self._interval()

    def _interval(self):
        run_s, dist, kg, kwh, n, flags = self._iv
        kg *= 1 + self.rng.gauss(0, self.scale_noise)
        judged = self.cc.windows
        self.cc.on_interval(run_s, dist, kg, kwh, n, flags)
        if self.cc.windows != judged:
            self.devs.append(self.cc.dev_pct)
        self._iv = [0.0, 0.0, 0.0, 0.0, 0, 0]

    def raised(self, since=0):
        """When the alarm was first raised at or after `since`, or None."""
        for t, active, _ in self.alarms:
            if active and t >= since:
                return t
        return None


def campaign(seed, days=30):
    """Normal operation: restarts, a technician calibration, no tamper. Returns the site
    and when the model became ready (s)."""
    site = Site(seed)
    restarts = [int(d * DAY_S) for d in (3.3, 9.7, 17.1, 24.6)]
    cal_t = 12 * DAY_S + 10 * 3600
    site.belt.scale_gain = 0.98  # the scale under-reads 2 % until the calibration
    ready_t = None
    marks = sorted(restarts + [cal_t, days * DAY_S])
    for mark in marks:
        while site.t < mark:
            site.run_s(min(3600, mark - site.t))
            if ready_t is None and site.cc.ready:
                ready_t = site.t
        if mark == cal_t:
            site.calibrate(20, 1.0)
        elif mark in restarts:
            site.restart()
    return site, ready_t


TAMPERS = {
    "span_80": "scale under-reads by 20 % (span changed without a material test)",
    "span_90": "scale under-reads by 10 %",
    "bypass_25": "a quarter of the flow bypasses the weigh frame",
    "speed_sensor": "speed sensor disconnected while the drive runs loaded",
}


def warm(seed, days=3):
    """A site that has learned for `days` of normal operation."""
    site = Site(seed)
    site.run_s(days * DAY_S)
    return site


def detect(site, tamper, seed, limit_s=DAY_S):
    """Inject `tamper` into a copy of a warmed-up site at a random moment of the next
    hours (the speed sensor while the belt runs loaded) and return (seconds to the alarm
    or None, running seconds to it)."""
    site = copy.deepcopy(site)
    rng = random.Random(seed)
    site.run_s(rng.randrange(0, 6 * 3600 // STEP_S) * STEP_S)
    b = site.belt
    if tamper == "speed_sensor":
        # Loaded: at speed, fed, the carry at least half full.
        while not (b.v >= 2.0 and b.feed_tph >= 300
                   and b.carried_kg > 0.5 * b.feed_tph / 3.6 * b.carry_m / b.v):
            site.run_s(STEP_S)
    t0 = site.t
    if tamper.startswith("span_"):
        b.scale_gain *= int(tamper[5:]) / 100
    elif tamper.startswith("bypass_"):
        b.bypass = int(tamper[7:]) / 100
    else:
        b.speed_sensor = False
    run0 = site.run_total
    while site.raised(t0) is None and site.t < t0 + limit_s:
        site.run_s(STEP_S if tamper == "speed_sensor" else INTERVAL_S)
    t = site.raised(t0)
    return (None, None) if t is None else (t - t0, site.run_total - run0)


def results(seeds=(1, 2, 3), injections=12):
    """The campaign behind docs/crosscheck.md: 30 days of normal operation per seed, and
    each tamper injected at `injections` random moments into each seed's third day."""
    normal = []
    for seed in seeds:
        site, ready = campaign(seed)
        normal.append(
            {
                "seed": seed,
                "ready_h": ready / 3600,
                "windows": len(site.devs),
                "max_dev": max(abs(d) for d in site.devs),
                "longest_without_s": max(site.longest_without_s, site.cc.longest_without_s),
                "raised": sum(1 for a in site.alarms if a[1]),
                "restarts": site.restarts,
            }
        )
    detected = {k: [] for k in TAMPERS}
    for seed in seeds:
        site = warm(seed)
        for tamper in TAMPERS:
            for k in range(injections):
                detected[tamper].append(detect(site, tamper, seed * 100 + k))
    return normal, detected


def table(normal, detected):
    """Markdown rows of docs/crosscheck.md."""
    window_s = FLAT["crosscheck.window_min"] * 60
    out = [
        "| 30 days, seed | ready after | judged windows | largest \\|scale − power\\| "
        "| longest power-without-output condition | restarts | alarms |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in normal:
        out.append(
            "| %d | %.0f h | %d | %.1f %% | %.0f s | %d | %d |"
            % (n["seed"], n["ready_h"], n["windows"], n["max_dev"], n["longest_without_s"],
               n["restarts"], n["raised"])
        )
    out += ["", "| tamper | raised | slowest, running time | slowest, windows |",
            "|---|---|---|---|"]
    for tamper, runs in detected.items():
        found = [r for r in runs if r[0] is not None]
        slowest = max(r[1] for r in found) if found else 0
        out.append(
            "| %s | %d of %d | %s | %.2f |"
            % (TAMPERS[tamper], len(found), len(runs),
               "%d s" % slowest if slowest < 600 else "%.0f min" % (slowest / 60),
               slowest / window_s)
        )
    return out


if __name__ == "__main__":
    print("\n".join(table(*results())))
