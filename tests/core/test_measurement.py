# The measurement job as the app wires it: samples in, records and alarms out, status,
# checkpoints through JSON, and a poll that allocates nothing.
import json

from gateway.measure.measurement import Measurement
from hal.virtualclock import VirtualClock
from tests.core.synth import Belt, params
from tests.core.util import heap_lock

T0 = 1767225600


class _App:
    def __init__(self, flat=None):
        self.records = []
        self.alarms = []
        self.clock = VirtualClock(start_s=T0 - 0.5)
        self.flat = flat or params()
        self.m = Measurement(self.flat, self.clock, self.emit, self.alarm)
        self.m.start()
        self.belt = Belt(load=lambda x: 80000 if x > 2000 else 0)

    def emit(self, rtype, fields):
        self.records.append((rtype, fields))
        return len(self.records)

    def alarm(self, code, active, detail):
        self.alarms.append((code, active))

    def seconds(self, n):
        for _ in range(n * 10):
            self.m.on_sample(self.belt.block())
            self.clock.advance_ms(100)
            if self.belt.seq % 10 == 0:
                self.m.run(self.clock.ticks_ms())

    def of(self, rtype):
        return [f for t, f in self.records if t == rtype]


def test_prod_records_add_up_to_the_totalizer():
    a = _App()
    a.seconds(130)
    prods = a.of("prod")
    assert len(prods) == 2
    assert sum(p["mass_g"] for p in prods) == prods[-1]["total_g"]
    # 80 kg/m at 2.5 m/s from x = 20 m (8 s in): 200 kg/s.
    assert abs(prods[1]["rate_tph"] - 720.0) < 0.01
    assert prods[1]["speed_mps"] == 2.5 and prods[1]["run_s"] == 60.0
    codes = [f["code"] for f in a.of("event")]
    assert codes.count("belt_start") == 1


def test_status_is_json():
    a = _App()
    a.seconds(5)
    st = json.loads(json.dumps(a.m.status()))
    assert st["running"]["state"] == "running"
    assert st["calibration"] == {"state": "idle"}
    assert st["scale"]["speed_mps"] == 2.5


def test_checkpoint_restore_through_json():
    a = _App()
    a.seconds(35)
    snap = json.loads(json.dumps(a.m.snapshot()))
    total = a.m.scale.total_g
    b = Measurement(a.flat, a.clock, a.emit, a.alarm)
    b.start()
    b.restore(snap)
    assert b.scale.total_g == total
    a.m = b
    a.seconds(30)
    prods = a.of("prod")
    assert len(prods) == 1 and prods[0]["t0"] == T0 and prods[0]["t1"] == T0 + 60
    assert prods[0]["mass_g"] == prods[0]["total_g"]


def test_new_zero_resets_autozero():
    a = _App()
    a.m.scale.set_autozero(120)
    flat = dict(a.flat)
    flat["scale.zero_counts"] = 50100
    a.m.apply_params(flat)
    assert a.m.scale.az_counts == 0 and a.m.scale.zero_eff == 50100


def test_collector_restart_is_an_event():
    a = _App()
    a.seconds(3)
    a.belt.restart()
    a.seconds(1)
    ev = [f for f in a.of("event") if f["code"] == "pulse_counter_reset"]
    assert len(ev) == 1 and ev[0]["detail"]["counted"] == 25


def _steps_allocate_nothing(a):
    # Five polls, each under heap_lock: an allocation raises MemoryError.
    lock, unlock = heap_lock()
    for _ in range(5):
        s = a.belt.block()
        lock()
        try:
            a.m.on_sample(s)
        finally:
            unlock()


def test_measurement_step_allocates_nothing():
    heap_lock()  # skips before the set-up where there is none
    a = _App(params(damping_s=3.0))
    a.seconds(20)
    _steps_allocate_nothing(a)


def test_cut_between_prod_record_and_checkpoint_closes_nothing_twice():
    # The power fails after a prod record was written but before the checkpoint that
    # follows it: the restart restores the older checkpoint, adopts the record from the
    # log, and neither repeats the interval nor lets the totalizer step back.
    a = _App()
    a.seconds(50)
    snap = json.loads(json.dumps(a.m.snapshot()))
    a.seconds(15)  # the interval [T0, T0+60) closes: its prod record is on flash
    first = a.of("prod")
    assert len(first) == 1
    tail = [dict(f, type=t) for t, f in a.records]
    b = Measurement(a.flat, a.clock, a.emit, a.alarm)
    b.start()
    b.restore(snap)
    assert b.reconcile(tail)
    assert b.scale.total_g == first[0]["total_g"]
    a.m = b
    a.seconds(70)
    prods = a.of("prod")
    assert [p["t0"] for p in prods] == [T0, T0 + 60]
    assert prods[1]["total_g"] == prods[0]["total_g"] + prods[1]["mass_g"]
    # The travel after the record (5 s, the cut took none) is bridged, not lost: the
    # belt carried 200 kg/s throughout.
    # (the gate's last undecided polls at the record are estimated: within half a second)
    assert abs(prods[1]["mass_g"] - 60 * 200000) <= 100000 and prods[1]["est_kg"] > 0


def test_reconcile_with_a_current_checkpoint_changes_nothing():
    a = _App()
    a.seconds(65)
    snap = json.loads(json.dumps(a.m.snapshot()))
    tail = [dict(f, type=t) for t, f in a.records]
    b = Measurement(a.flat, a.clock, a.emit, a.alarm)
    b.restore(snap)
    assert not b.reconcile(tail)
    assert b.scale.total_g == a.m.scale.total_g


def test_the_calibration_procedures_are_loaded_for_use_and_dropped_when_idle():
    import sys

    saved = sys.modules.pop("gateway.measure.calibration", None)
    try:
        a = _App()
        a.seconds(3)
        assert a.m.cal is None and "gateway.measure.calibration" not in sys.modules
        cal = a.m.calibrator()
        assert "gateway.measure.calibration" in sys.modules and a.m.calibrator() is cal
        cal.start("zero")
        a.seconds(3)
        assert a.m.cal is cal and a.m.status()["calibration"]["state"] == "running"
        assert a.m.scale.inhibit
        cal.abort()
        a.seconds(2)
        assert a.m.cal is None and "gateway.measure.calibration" not in sys.modules
        assert not a.m.scale.inhibit and a.m.status()["calibration"] == {"state": "idle"}
    finally:
        sys.modules.pop("gateway.measure.calibration", None)
        if saved is not None:
            sys.modules["gateway.measure.calibration"] = saved


def _outage(a, seconds):
    """The gateway is off: the belt goes on, the clock too, nobody polls."""
    for _ in range(seconds * 10):
        a.belt.block()
        a.clock.advance_ms(100)


def test_outage_bridged_up_to_its_bound_flagged_and_told_once():
    for down, bridged in ((20, True), (300, False)):
        a = _App()
        a.seconds(40)
        snap = json.loads(json.dumps(a.m.snapshot()))
        _outage(a, down)
        b = Measurement(a.flat, a.clock, a.emit, a.alarm)
        b.restore(snap)
        b.start()
        a.m = b
        a.seconds(80)
        prods = a.of("prod")
        gaps = [f["detail"] for f in a.of("event") if f["code"] == "measurement_gap"]
        assert len(gaps) == 1 and gaps[0]["bridged"] == bridged and gaps[0]["after"] == "restart"
        assert sum(p["mass_g"] for p in prods) == prods[-1]["total_g"]
        est = sum(p.get("est_kg", 0) for p in prods)
        unweighed = sum(p["unweighed_m"] for p in prods)
        if bridged:
            assert est == gaps[0]["est_kg"] > 0 and unweighed == 0
        else:
            assert est == 0 and unweighed >= down * 2.5
        for p in prods:
            assert p["rate_tph"] <= 2 * a.flat["scale.design_tph"]


def test_a_restart_inside_a_link_outage_bridges_it_and_finds_no_discontinuity():
    # The link is lost for 10 s, then the gateway restarts (a power dip, a technician),
    # and the link is back only 10 s after the new start. The clock's bound on the
    # blocks the first poll may follow spans all of it: from the checkpoint's last
    # sample (not the checkpoint's writing) to that poll (not the restore).
    a = _App()
    a.seconds(40)
    _outage(a, 10)  # the link is down: the gateway runs, nothing is polled
    snap = json.loads(json.dumps(a.m.snapshot()))
    a.clock.advance_ms(200)
    a.belt.block()
    a.belt.block()
    b = Measurement(a.flat, a.clock, a.emit, a.alarm)
    b.restore(snap)
    b.start()
    _outage(a, 10)
    a.m = b
    a.seconds(40)
    assert not [f for f in a.of("event") if f["code"] == "counter_discontinuity"]
    assert ("collector_counters_inconsistent", True) not in a.alarms
    gaps = [f["detail"] for f in a.of("event") if f["code"] == "measurement_gap"]
    assert len(gaps) == 1 and gaps[0]["bridged"] and 20 <= gaps[0]["s"] <= 20.5, gaps


def test_prod_rate_never_above_twice_the_design_rate():
    a = _App()
    a.seconds(40)
    snap = json.loads(json.dumps(a.m.snapshot()))
    _outage(a, 55)  # back 5 s before an interval ends: 59 s bridged into it
    b = Measurement(a.flat, a.clock, a.emit, a.alarm)
    b.restore(snap)
    a.m = b
    a.seconds(130)
    prods = a.of("prod")
    assert max(p["rate_tph"] for p in prods) <= 2 * a.flat["scale.design_tph"]
    assert abs(prods[1]["rate_tph"] - 720.0) < 1.0  # over the run time, not the 60 s alone


def test_mass_of_a_restarted_collector_waits_for_its_serial():
    asked = []
    for same in (True, False):
        a = _App()
        a.m.verify_identity = lambda: asked.append(1)
        a.m.start()
        a.seconds(30)
        a.belt.restart()
        a.seconds(5)
        assert asked and a.m.scale.hold
        before = a.m.scale.total_g
        a.m.identity_checked(same)
        a.seconds(5)
        if same:
            assert a.m.scale.total_g - before > 5 * 200000
        else:
            assert a.m.scale.total_g == before and a.m.scale.hold


def test_counter_discontinuity_raises_an_alarm_at_once_and_clears():
    a = _App()
    a.seconds(10)
    a.belt.seq += 10000000
    a.belt.uptime_ms += 1000000000
    a.seconds(1)
    assert ("collector_counters_inconsistent", True) in a.alarms
    assert [f for f in a.of("event") if f["code"] == "counter_discontinuity"]
    a.seconds(2)
    assert _active(a)["collector_counters_inconsistent"] is False


def _active(a):
    """The alarms as last reported (the engine would debounce them)."""
    out = {}
    for c, on in a.alarms:
        out[c] = on
    return out


def test_rate_load_and_speed_limit_alarms():
    flat = params(production_interval_s=60)
    flat["alarms.limits_pct"] = [35.0, 98.0, 0.0, 120.0, 50.0, 120.0]  # HB44's minimum set
    a = _App(flat)
    a.seconds(20)  # 80 kg/m at 2.5 m/s: 720 t/h of 900, within every limit
    assert not any(_active(a).values())
    a.belt.load = lambda x: 90000  # 810 t/h
    a.belt.dp = 40  # 4 m/s: 1296 t/h, 160 % of design speed, load 90 %
    a.seconds(3)
    on = set(c for c, active in _active(a).items() if active)
    assert on == {"rate_limit", "speed_limit"}, on
    a.belt.dp = 25
    a.belt.load = lambda x: 20000  # 180 t/h: 20 % of design, material on the belt
    a.seconds(3)
    on = set(c for c, active in _active(a).items() if active)
    assert on == {"rate_limit"}, on
    a.belt.load = lambda x: 80000
    a.seconds(3)
    assert not any(_active(a).values()), _active(a)


def test_the_limits_as_shipped_leave_a_light_or_slow_belt_alone():
    # The minima are off by default (docs/alarms.md): a light feed and a slow belt are
    # running as usual, not a siren's business; an overload is.
    a = _App(params(production_interval_s=60))
    a.belt.load = lambda x: 15000  # 135 t/h: 15 % of design
    a.seconds(20)
    a.belt.dp = 10  # 1 m/s: 40 % of the design speed, 6 % of the design rate
    a.seconds(15)
    assert not any(_active(a).values()), _active(a)
    a.belt.dp = 25
    a.belt.load = lambda x: 110000  # 990 t/h: 110 %
    a.seconds(3)
    assert set(c for c, on in _active(a).items() if on) == {"rate_limit"}


def test_estimating_step_allocates_nothing():
    heap_lock()
    a = _App(params(damping_s=3.0))
    a.belt.tare = lambda x: 3000 if x % 5000 < 500 else 0
    a.seconds(20)
    a.belt.sensor_dead = True
    a.seconds(20)
    assert a.m.scale.speed_lost
    _steps_allocate_nothing(a)
