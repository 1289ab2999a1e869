# The alarm engine: debounce, one-shot alarms, DO1, persistence across restarts.
from gateway.health import alarms as al
from gateway.health.alarms import AlarmError, Alarms
from hal.virtualclock import VirtualClock
from tests.core.util import raises


class _Rig:
    def __init__(self, params=None, start=True):
        self.clock = VirtualClock()
        self.records = []
        self.do1 = []
        self.alarms = Alarms(self.clock, self.emit, self.do1.append, params)
        if start:
            self.alarms.start()

    def emit(self, rtype, fields):
        self.records.append((rtype, fields))
        return len(self.records)

    def after(self, ms):
        self.clock.advance_ms(ms)
        self.alarms.run(self.clock.ticks_ms())

    def states(self, code):
        return [f["state"] for t, f in self.records if t == "alarm" and f["code"] == code]


def test_table_is_well_formed():
    for code in al.TABLE:
        cls, level, kind, raise_ms, clear_ms, check = al.spec(code)
        assert cls in al.CLASSES, code
        assert level in ("F", "W"), code
        assert kind in (al.COND, al.EVENT, al.COND_DETAIL), code
        assert raise_ms >= 0 and clear_ms >= 0, code
        assert kind != al.EVENT or clear_ms > 0, code  # a one-shot alarm needs a hold
        assert check, code
    assert len(al.TABLE) >= 50


def test_a_condition_never_true_keeps_no_state():
    # The checks report every code every second, most of them false for good: a state
    # for each would hold heap a 256K board does not have (an e2e start failed so).
    r = _Rig()
    for code in al.TABLE:
        if al.spec(code)[2] != al.EVENT:
            r.alarms.set(code, False)
    assert r.alarms._states == {} and r.records == []
    r.alarms.set("supply_low", True, "10.2 V")
    r.after(5000)
    r.alarms.set("supply_low", False)
    r.after(10000)
    assert r.states("supply_low") == ["raise", "clear"]


def test_raise_only_after_the_raise_delay_and_clear_after_the_clear_delay():
    r = _Rig()
    a = r.alarms
    a.set("supply_low", True, "11 V")  # raise 5 s, clear 10 s
    r.after(4000)
    a.set("supply_low", True, "11 V")
    assert not a.is_active("supply_low") and r.states("supply_low") == []
    r.after(1000)
    assert a.is_active("supply_low")
    assert r.records[-1] == ("alarm", {"code": "supply_low", "state": "raise", "detail": "11 V"})
    a.set("supply_low", False)
    r.after(9000)
    assert a.is_active("supply_low")
    r.after(1000)
    assert not a.is_active("supply_low")
    assert r.states("supply_low") == ["raise", "clear"]


def test_a_condition_shorter_than_the_delay_raises_nothing():
    r = _Rig()
    for _ in range(20):
        r.alarms.set("supply_low", True)
        r.after(3000)
        r.alarms.set("supply_low", False)
        r.after(1000)
    assert r.states("supply_low") == []


def test_a_short_dip_during_an_alarm_does_not_clear_it():
    r = _Rig()
    a = r.alarms
    a.set("mains_lost", True)
    r.after(1000)
    assert a.is_active("mains_lost")
    for _ in range(5):
        a.set("mains_lost", False)
        r.after(4000)
        a.set("mains_lost", True)
        r.after(1000)
    assert r.states("mains_lost") == ["raise"]


def test_zero_delay_raises_and_clears_at_the_report():
    r = _Rig()
    r.alarms.set("clock_not_set", True, "t=0")
    assert r.alarms.is_active("clock_not_set")
    r.alarms.set("clock_not_set", False)
    assert r.states("clock_not_set") == ["raise", "clear"]


def test_one_shot_alarm_holds_then_clears_and_counts_repeats():
    r = _Rig()
    a = r.alarms
    a.raise_event("param_changed", "cli:ann scale.span_kg_per_count")
    assert a.is_active("param_changed")
    r.after(300000)
    a.raise_event("param_changed", "center scale.design_tph")  # repeat: no new record
    assert r.states("param_changed") == ["raise"]
    assert a.active()[0]["detail"] == "center scale.design_tph"
    r.after(599000)
    assert a.is_active("param_changed")  # the hold restarted at the repeat
    r.after(1000)
    assert not a.is_active("param_changed")
    assert r.records[-1][1] == {"code": "param_changed", "state": "clear", "detail": "x2"}
    a.raise_event("param_changed", "again")
    assert r.states("param_changed") == ["raise", "clear", "raise"]


def test_set_on_a_one_shot_code_is_an_occurrence_and_false_is_ignored():
    r = _Rig()
    r.alarms.set("upload_gap", False)
    assert r.states("upload_gap") == []
    r.alarms.set("upload_gap", True, "next 5 < oldest 900")
    r.alarms.set("upload_gap", False)
    assert r.alarms.is_active("upload_gap") and r.states("upload_gap") == ["raise"]


def test_ack_clears_a_one_shot_alarm_only():
    r = _Rig()
    a = r.alarms
    a.raise_event("collector_restarted", "uptime 3 s")
    assert a.ack("collector_restarted") is True
    assert not a.is_active("collector_restarted")
    assert r.records[-1][1]["detail"] == "acknowledged"
    assert a.ack("collector_restarted") is False
    raises(AlarmError, a.ack, "mains_lost")


def test_unknown_codes_and_wrong_kinds_are_refused():
    r = _Rig()
    e = raises(AlarmError, r.alarms.set, "no_such_code", True)
    assert "no_such_code" in str(e)
    raises(AlarmError, r.alarms.raise_event, "no_such_code")
    raises(AlarmError, r.alarms.raise_event, "mains_lost")
    assert r.records == []


def test_a_changed_detail_of_device_swap_is_recorded_again():
    r = _Rig()
    a = r.alarms
    a.set("device_swap", True, "cell2 11 -> 12")
    a.set("device_swap", True, "cell2 11 -> 12")
    a.set("device_swap", True, "cell2 11 -> 12; speed 15 -> 16")
    assert r.states("device_swap") == ["raise", "raise"]
    assert r.records[-1][1]["detail"] == "cell2 11 -> 12; speed 15 -> 16"
    # An ordinary condition keeps its latest detail without a record.
    a.set("supply_low", True, "10.1 V")
    r.after(5000)
    a.set("supply_low", True, "10.0 V")
    assert r.states("supply_low") == ["raise"]
    assert [x["detail"] for x in a.active() if x["code"] == "supply_low"] == ["10.0 V"]


def test_do1_follows_alarms_of_the_configured_classes():
    r = _Rig()
    a = r.alarms
    assert r.do1 == [False]  # start() drives it
    a.raise_event("param_changed")  # tamper: not a DO1 class by default
    assert r.do1 == [False] and not a.do1()
    a.set("clock_not_set", True)  # system
    assert r.do1 == [False]
    a.set("cell2_fault", True)
    r.after(1000)
    assert r.do1 == [False, True] and a.do1()
    a.set("mains_lost", True)
    r.after(1000)
    assert r.do1 == [False, True]  # already on: not driven again
    a.set("cell2_fault", False)
    r.after(30000)
    assert r.do1 == [False, True]  # mains_lost still holds it
    a.set("mains_lost", False)
    r.after(5000)
    assert r.do1 == [False, True, False]
    a.apply_params({"alarms.do1_classes": ["tamper"]})
    assert r.do1 == [False, True, False, True]  # param_changed is still active
    a.refresh_do1()
    assert r.do1[-1] is True and len(r.do1) == 5


def test_do1_is_not_driven_before_start():
    r = _Rig(start=False)
    r.alarms.set("cell1_fault", True)
    r.after(1000)
    assert r.alarms.is_active("cell1_fault") and r.do1 == []
    r.alarms.refresh_do1()
    assert r.do1 == []
    r.alarms.start()
    assert r.do1 == [True]


def test_active_lists_code_since_detail_and_class_oldest_first():
    r = _Rig()
    a = r.alarms
    a.set("clock_not_set", True, "t=5")
    r.after(2000)
    a.raise_event("job_failed", "uplink")
    act = a.active()
    assert [x["code"] for x in act] == ["clock_not_set", "job_failed"]
    assert act[0] == {
        "code": "clock_not_set", "since": 1767225600, "detail": "t=5", "class": "system"
    }
    assert act[1]["since"] == 1767225602
    assert a.active_count() == 2


def test_restart_keeps_the_active_set_without_raising_twice():
    r = _Rig()
    a = r.alarms
    a.set("mains_lost", True, "on battery")
    r.after(1000)
    a.set("supply_low", True)
    r.after(5000)
    a.raise_event("collector_restarted", "uptime 1 s")
    snap = a.snapshot()
    import json

    snap = json.loads(json.dumps(snap))  # it travels through the state file
    r2 = _Rig(start=False)
    r2.clock.advance_ms(120000)
    r2.alarms.restore(snap)
    r2.alarms.start()
    assert r2.records == []
    assert r2.do1 == [True]
    b = r2.alarms
    codes = sorted(x["code"] for x in b.active())
    assert codes == ["collector_restarted", "mains_lost", "supply_low"]
    # Still true: nothing recorded. Gone: cleared once, after the clear delay.
    b.set("mains_lost", True, "on battery")
    b.set("supply_low", False)
    r2.after(10000)
    b.set("supply_low", False)
    r2.after(1000)
    assert r2.records == [("alarm", {"code": "supply_low", "state": "clear", "detail": ""})]
    # The one-shot alarm's hold went on: it was raised (at 6 s) 114 s before the restore.
    r2.after(600000 - 114000 - 11000 - 1000)
    assert b.is_active("collector_restarted")
    r2.after(1000)
    assert not b.is_active("collector_restarted")


def test_restore_clears_codes_this_firmware_does_not_know_and_skips_garbage():
    r = _Rig(start=False)
    snap = {"old_code": [1, "x", 0], "mains_lost": "garbage", "cell1_fault": [5, "f", 0]}
    r.alarms.restore({"active": snap})
    clear = {"code": "old_code", "state": "clear", "detail": "unknown after restart"}
    assert r.records == [("alarm", clear)]
    assert [x["code"] for x in r.alarms.active()] == ["cell1_fault"]
    r.alarms.restore("not a dict")
    r.alarms.restore({"active": 5})
    assert r.alarms.active_count() == 1


def test_do1_classes_parameter_is_checked():
    from gateway import config

    assert config.check_params({"alarms": {"do1_classes": ["tamper", "comm"]}}) == {
        "alarms.do1_classes": ["tamper", "comm"]
    }
    assert config.check_params({"alarms.do1_classes": []}) == {"alarms.do1_classes": []}
    e = raises(config.ConfigError, config.check_params, {"alarms": {"do1_classes": ["siren"]}})
    assert "alarms.do1_classes" in str(e) and "siren" in str(e)
    raises(config.ConfigError, config.check_params, {"alarms": {"do1_classes": "fault"}})


def test_a_code_keeps_a_state_only_while_raised_or_on_its_way():
    # Most codes are reported inactive every second: a state each would hold ~100 B.
    r = _Rig()
    a = r.alarms
    for code in al.TABLE:
        if al.spec(code)[2] != al.EVENT:
            a.set(code, False, "fine")
    r.after(1000)
    assert len(a._states) == 0
    a.set("supply_low", True, "9.9 V")  # raise delay 5 s
    a.set("flash_low", True, "low")  # raise delay 10 s
    r.after(1000)
    a.set("flash_low", False)  # gone before its delay: at rest again
    assert sorted(a._states) == ["supply_low"]
    r.after(5000)
    assert a.is_active("supply_low") and r.states("supply_low") == ["raise"]
    a.set("supply_low", False)
    r.after(10000)  # clear delay 10 s
    assert r.states("supply_low") == ["raise", "clear"] and len(a._states) == 0
    a.raise_event("clock_stepped", "+9 s")
    assert a.ack("clock_stepped") and len(a._states) == 0
