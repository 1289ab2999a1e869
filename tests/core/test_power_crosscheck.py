# The cross-check wired to the power side (docs/crosscheck.md): fed each new power reading
# of the belt drive with what the scale weighed since, and each production interval with
# the drive's integrated energy and the interval's flags; the belt drive's power records
# carry the implied mass, period totals both figures, status the learning state, and the
# checkpoint its state. Runs under pytest and on MicroPython.
import json

from gateway.power.crosscheck import CrossCheck
from tests.core.test_crosscheck import FLAT
from tests.core.test_power import BELT, Rig


class Scale:
    """What CrossCheck.run reads of gateway.measure.scale.Scale."""

    def __init__(self):
        self.total_g = 0
        self.travel_p = 0
        self.pulses_per_m = 100.0


class Collector:
    online = True


class Counting(CrossCheck):
    def __init__(self, emit, alarm):
        CrossCheck.__init__(self, emit, alarm)
        self.readings = []

    def on_power(self, kw, speed_mps, rate_tph, dt_s):
        self.readings.append((kw, speed_mps, rate_tph, dt_s))
        CrossCheck.on_power(self, kw, speed_mps, rate_tph, dt_s)


def _rig():
    r = Rig()
    x = Counting(r._emit, r.alarms)
    x.apply_params(FLAT)
    r.scale = Scale()
    r.collector = Collector()
    x.attach(r.meters.belt, r.scale, r.collector, r.clock)
    r.power.cross = x
    return r, x


def _run(r, x, seconds, tph=720.0, mps=2.5):
    # The belt moves and the scale weighs; the cross-check's job runs every second.
    for _ in range(seconds):
        r.scale.total_g += int(tph * 1e6 / 3600)
        r.scale.travel_p += int(mps * 100)
        r.spin(1000)
        x.run(r.clock.ticks_ms())


def _ready(x):
    x.coef = (30.0, 4.0, 0.5)
    x.ready = True


def _belt(r):
    return [f for t, f in r.records if t == "power" and f["address"] == BELT]


def test_each_new_reading_feeds_it_once_with_what_the_scale_weighed():
    r, x = _rig()
    _run(r, x, 30)
    n = len(x.readings)
    assert 10 <= n <= 16  # the belt drive's power every 2 s
    kw, mps, tph, dt = x.readings[-1]
    assert abs(kw - 150.0) < 1e-6  # 1.5 kW secondary x CT 100
    assert abs(mps - 2.5) < 0.3 and abs(tph - 720) < 80 and 1.5 <= dt <= 2.5
    assert sum(x.ring) > 0  # fed: the carry holds what was weighed
    x.run(r.clock.ticks_ms())
    assert len(x.readings) == n  # the same reading again: nothing
    r.collector.online = False
    _run(r, x, 10)
    assert len(x.readings) == n  # the collector silent: the scale says nothing


def test_belt_drive_records_carry_the_implied_mass_once_ready():
    r, x = _rig()
    r.interval()
    rec = _belt(r)[-1]
    assert rec["implied_kg"] is None  # learning
    _ready(x)
    for s in (61, 59, 60):
        r.records = []
        r.interval(s)
        rec = _belt(r)[0]
        # 150 kW for the s seconds of the interval (not up to its last reading: aligned to
        # its end) over 150 m
        want = (150.0 * s / 3600 - 30.0 * s / 3600 - 4.0 * 0.15) / 0.5 * 1000
        assert abs(rec["implied_kg"] - want) < 20, (s, rec, want)
    mine = [f for t, f in r.records if t == "power" and f["address"] != BELT][0]
    assert "implied_kg" not in mine


def test_interval_flags_pause_learning():
    r, x = _rig()
    r.interval()
    r.interval()
    assert x.status()["paused"] is None and x.wsum[0] > 0
    r.spin(60000)
    r.t += 60
    r.power.close_interval(r.t - 60, r.t, 1000000, 60.0, 150.0, True, False)
    assert x.status()["paused"] == "scale fault"
    r.spin(60000)
    r.t += 60
    r.power.close_interval(r.t - 60, r.t, 1000000, 60.0, 150.0, False, True)
    assert x.status()["paused"] == "calibration"
    r.fakes[0].silent = True
    for _ in range(3):
        r.interval(60)
    assert x.status()["paused"] == "meter fault"


def test_period_totals_carry_both_figures():
    r, x = _rig()
    r.interval()
    r.power.close_period("day", 1)  # what came before the model
    _ready(x)
    r.records = []
    for _ in range(3):
        r.interval(60, mass_g=7000000)
    day = r.power.close_period("day", 21000000)
    implied = sum(f["implied_kg"] for f in _belt(r))
    assert abs(day["implied_kg"] - implied) < 0.2 and day["implied_scale_kg"] == 21000.0
    shift = r.power.close_period("shift", 21000000)
    assert shift["implied_scale_kg"] == 21000.0
    assert r.power.close_period("month", 0)["implied_kg"] is not None
    none = r.power.close_period("month", 0)
    assert none["implied_kg"] is None and none["implied_scale_kg"] is None


def test_status_shows_the_learning_state():
    r, x = _rig()
    st = r.power.status()["crosscheck"]
    assert st["state"] == "learning" and st["hours"] == 0 and st["mismatch"] is False


def test_checkpoint_carries_its_state_and_a_cut_adopts_the_implied_mass():
    r, x = _rig()
    _run(r, x, 20)
    _ready(x)
    for _ in range(3):
        r.interval(60, mass_g=7000000)
    snap = json.loads(json.dumps(r.power.snapshot()))  # the checkpoint
    assert snap["x"]["ready"] and snap["x"]["coef"] == list(x.coef)
    r.records = []
    r.interval(60, mass_g=7000000)  # written, then the power is cut before a checkpoint
    power = [dict(f, type="power") for t, f in r.records if t == "power"]
    prod = {"type": "prod", "t1": r.t, "mass_g": 7000000}
    r2, x2 = _rig()
    r2.power.restore(snap)
    assert x2.ready and x2.coef == x.coef and x2.ring == snap["x"]["carry"][0]
    r2.power.adopt(power + [prod])
    day = r2.power.close_period("day", 0)
    assert day["implied_scale_kg"] == 28000.0  # three intervals checkpointed, one adopted
    assert day["implied_kg"] > power[0]["implied_kg"]


def test_a_state_it_cannot_read_starts_learning_afresh():
    r, x = _rig()
    snap = r.power.snapshot()
    snap["x"] = {"learn": [1.0]}
    r.power.restore(snap)
    assert not x.ready and x.hours == 0


class _Cross:
    def __init__(self):
        self.anchored = []

    def reanchor(self, who):
        self.anchored.append(who)


class _Gw:
    """What gateway.control.Control uses of the gateway to re-anchor the cross-check."""

    def __init__(self, cross):
        self.power = self
        self.cross = cross


def test_control_reanchors_the_cross_check_only_where_there_is_one():
    from gateway.control import Control

    cross = _Cross()
    Control(_Gw(cross)).reanchor_crosscheck("tech:1001")
    assert cross.anchored == ["tech:1001"]
    Control(_Gw(None)).reanchor_crosscheck("tech:1001")  # no belt drive: nothing to do
    gw = _Gw(cross)
    gw.power = None  # no terminals at all
    Control(gw).reanchor_crosscheck("tech:1001")
    assert cross.anchored == ["tech:1001"]
