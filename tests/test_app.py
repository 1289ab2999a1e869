# The whole app (gateway.app.Gateway) on stand-in hardware (tests/harness/appstandin.py).
# What the center's status and time_sync get from the wiring. The emulator-backed
# end-to-end tests are tests/test_e2e_*.py (they run the app under MicroPython too).
# CPython only: importing the whole app early in tests/mprun.py's single MicroPython heap
# left too little contiguous room for test_center_link's 256 KiB frame.
from gateway import ondemand
from tests.harness.appstandin import standin_gateway


def _gateway():
    gw = standin_gateway()
    gw.start()
    gw.loop.run(5000)
    return gw


def _time_sync(gw, t):
    # Command ids increase (the center spec): the tests' commands after it use 101 and up.
    res = gw.commands.submit({"id": 100, "op": "time_sync", "args": {"time": int(t)}})
    assert res["ok"], res


def test_status_carries_the_diagnostics_summary():
    gw = _gateway()
    s = ondemand.call("gateway.control", "report", gw)
    assert s["link"]["state"] == "lost" and s["uplink"]["state"] in ("backoff", "connecting")
    assert "collector_link_lost" in s["alarms"]
    assert s["diag"]["result"] == "fail"
    assert s["diag"]["alarms"] == len(s["alarms"]) and s["diag"]["uptime_s"] >= 4
    gw.stop()


def test_a_time_set_is_clock_stepped_at_once():
    gw = _gateway()
    _time_sync(gw, gw.clock.time() + 3600)
    # Before any check run: a restart now would not lose it.
    assert gw.alarms.is_active("clock_stepped")
    gw.loop.run(2000)
    assert [a["detail"] for a in gw.alarms.active() if a["code"] == "clock_stepped"] == ["+3600 s"]
    gw.stop()


def test_a_one_shot_alarm_is_acknowledged_by_the_center_and_recorded():
    gw = _gateway()
    _time_sync(gw, gw.clock.time() + 60)
    assert gw.alarms.is_active("clock_stepped")
    res = gw.commands.submit({"id": 101, "op": "ack_alarm", "args": {"code": "clock_stepped"}})
    assert res["ok"] and res["result"] == {"code": "clock_stepped", "acknowledged": True}
    assert not gw.alarms.is_active("clock_stepped")
    acks = [r for r in gw.log.read(1, 256) if r["type"] == "event" and r["code"] == "alarm_ack"]
    assert [a["detail"] for a in acks] == [{"by": "center", "alarm": "clock_stepped"}]
    # A condition alarm clears only with its condition; an unknown code is refused.
    res = gw.commands.submit({"id": 102, "op": "ack_alarm",
                              "args": {"code": "collector_link_lost"}})
    assert not res["ok"] and "condition" in res["error"]
    res = gw.commands.submit({"id": 103, "op": "ack_alarm", "args": {"code": "no_such"}})
    assert not res["ok"] and "unknown" in res["error"]
    res = gw.commands.submit({"id": 104, "op": "ack_alarm", "args": {"code": "clock_stepped"}})
    assert res["ok"] and res["result"]["acknowledged"] is False
    gw.stop()
