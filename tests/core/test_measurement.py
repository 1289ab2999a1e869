# The measurement job as the app wires it: samples in, records and alarms out, status,
# checkpoints through JSON, and a poll that allocates nothing.
import json

from gateway.measure.measurement import Measurement
from hal.virtualclock import VirtualClock
from tests.core.synth import Belt, params
from tests.core.util import SkipTest

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
    assert codes[0] == "belt_start"


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


def test_measurement_step_allocates_nothing():
    try:
        import micropython
    except ImportError:
        raise SkipTest("heap_lock is MicroPython's")
    if not hasattr(micropython, "heap_lock"):
        raise SkipTest("no heap_lock on this port")
    a = _App(params(damping_s=3.0))
    a.seconds(20)
    m = a.m
    for _ in range(5):
        s = a.belt.block()
        micropython.heap_lock()
        try:
            m.on_sample(s)
        finally:
            micropython.heap_unlock()


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
    assert prods[1]["mass_g"] > 0


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
