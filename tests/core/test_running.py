# Running detection: DI1, belt pulses, contradictions after scale.run_mismatch_s.
from gateway.measure.running import OPEN_STOP, RUNNING, SLIP, STOPPED, Running
from tests.core.synth import params


class _Rig:
    def __init__(self):
        self.records = []
        self.alarms = []
        self.r = Running(self.emit, self.alarm)
        self.r.apply_params(params())  # 100 pulses/m: moving from 10 pulses/s

    def emit(self, rtype, fields):
        self.records.append(fields["code"])
        return len(self.records)

    def alarm(self, code, active, detail):
        self.alarms.append((code, active, detail))

    def polls(self, count, di=1, dp=25, n=1, status=0, loaded=False):
        for _ in range(count):
            self.r.update(di, status, dp, n, loaded)


def test_start_run_time_and_stop():
    g = _Rig()
    g.polls(5, di=0, dp=0)
    assert g.r.state() == STOPPED and g.records == []
    g.polls(100, loaded=True)
    assert g.r.state() == RUNNING and g.records == ["belt_start"]
    assert g.r.run_blocks == 100 and g.r.loaded_blocks == 100
    g.polls(10, dp=0, di=0)  # standing for 1 s: not yet stopped
    assert g.r.state() == RUNNING
    g.polls(10, dp=0, di=0)
    assert g.r.state() == STOPPED and g.records == ["belt_start", "belt_stop"]
    assert g.r.run_blocks == 100
    assert g.alarms == []


def test_run_time_counts_blocks_across_missed_polls():
    g = _Rig()
    g.polls(10, dp=75, n=3)
    assert g.r.run_blocks == 30 and g.r.poll_run_blocks == 3


def test_slow_belt_is_not_running():
    g = _Rig()
    g.polls(50, dp=0, di=0)
    g.polls(50, dp=1, n=2, di=0)  # 5 pulses/s = 0.05 m/s
    assert g.r.state() == STOPPED and g.r.run_blocks == 0


def test_di1_without_pulses_is_belt_slip_after_the_mismatch_time():
    g = _Rig()
    g.polls(99, dp=0)
    assert g.alarms == []
    g.polls(1, dp=0)
    assert g.r.state() == SLIP
    assert g.alarms[0][:2] == ("belt_slip", True) and "belt slip" in g.alarms[0][2]
    g.polls(1, status=0x10, dp=0)
    g.polls(10)  # a second of travel: running
    assert g.alarms[-1][:2] == ("belt_slip", False)
    assert g.r.state() == RUNNING


def test_speed_sensor_disconnected_named_in_the_slip_alarm():
    g = _Rig()
    g.polls(100, dp=0, status=0x10)
    assert "speed sensor disconnected" in g.alarms[0][2]


def test_pulses_without_di1_is_an_open_stop_sensor_fault():
    g = _Rig()
    g.polls(50, di=0)  # a short coast-down is no fault
    g.polls(1)
    assert g.alarms == []
    g.polls(100, di=0)
    assert g.r.state() == OPEN_STOP
    assert g.alarms == [("open_stop_sensor", True, g.alarms[0][2])]
    g.polls(1)
    assert g.alarms[-1][:2] == ("open_stop_sensor", False)


def test_snapshot_restore():
    g = _Rig()
    g.polls(30, loaded=True)
    snap = g.r.snapshot()
    h = _Rig()
    h.r.restore(snap)
    h.polls(10)
    assert h.r.run_blocks == 40 and h.r.loaded_blocks == 30
    assert h.records == []  # still the same run: no second start


def test_creeping_belt_on_a_coarse_sensor_does_not_flap():
    # 8 pulses/m at 0.05 m/s (run_min_speed_mps 0.1): one pulse every 2.5 s, for an hour.
    g = _Rig()
    g.r.apply_params(params(pulses_per_m=8.0))
    for _ in range(1440):
        g.polls(1, dp=1)
        g.polls(24, dp=0)
    assert g.records == [] and g.r.run_blocks == 0
    assert g.alarms == []  # DI1 on, nothing on the frame: no belt slip


def _at_9_cm_per_s(g, seconds):
    for _ in range(seconds):
        g.polls(9, dp=1)
        g.polls(1, dp=0)


def test_hysteresis_around_the_least_running_speed():
    g = _Rig()
    _at_9_cm_per_s(g, 60)  # below run_min_speed_mps 0.1: it does not start
    assert g.records == [] and g.r.run_blocks == 0
    g.polls(20)  # 2.5 m/s: running
    _at_9_cm_per_s(g, 60)  # above 3/4 of it: it goes on running
    assert g.records == ["belt_start"] and g.r.state() == RUNNING
    for _ in range(30):
        g.polls(7, dp=1)  # 0.07 m/s: stopped
        g.polls(3, dp=0)
    assert g.records == ["belt_start", "belt_stop"]


def test_belt_slip_needs_load_on_the_frame():
    g = _Rig()
    for _ in range(200):
        g.r.update(1, 0, 0, 1, False, False)  # DI1 on, no pulses, empty frame
    assert g.alarms == []
    for _ in range(100):
        g.r.update(1, 0, 0, 1, False, True)  # the same with load on the frame
    assert g.alarms[0][:2] == ("belt_slip", True)


def test_no_belt_slip_while_the_travel_is_estimated():
    g = _Rig()
    for _ in range(200):
        g.r.update(1, 0x10, 0, 1, False, True, True)  # speed sensor lost: estimated
    assert g.alarms == []
