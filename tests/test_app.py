# The whole app (gateway.app.Gateway) wired on stand-in hardware, in simulated time: a
# collector that never answers, a center that cannot be reached, an in-memory flash.
# What the center's status and time_sync get from the wiring. The emulator-backed
# end-to-end tests are tests/test_e2e_*.py (they run the app under MicroPython too).
# CPython only: importing the whole app early in tests/mprun.py's single MicroPython heap
# left too little contiguous room for test_center_link's 256 KiB frame.
from gateway import config
from gateway.app import Gateway
from hal.board import Hardware
from hal.clock import VirtualClock
from hal.faultfs import FaultFlash
from hal.net import NetError


class _SilentLine:
    """An RS485 line with nobody on it: every wait runs out (in simulated time)."""

    def __init__(self, clock):
        self.clock = clock

    def write(self, data):
        pass

    def readinto(self, buf, timeout_ms):
        self.clock.advance_ms(max(timeout_ms, 0))
        return 0

    def discard_input(self):
        return 0

    def close(self):
        pass


def _unreachable():
    raise NetError("connect: unreachable")


def _gateway():
    cfg = config.validate({
        "device_id": 7, "key_file": "k", "data_dir": "d",
        "collector": {"port": "socket://127.0.0.1:1"},
        "center": {"host": "127.0.0.1", "port": 1},
    })
    clock = VirtualClock()
    hw = Hardware(clock, FaultFlash(), _SilentLine(clock), _unreachable)
    gw = Gateway(cfg, bytes(32), hw)
    gw.start()
    gw.loop.run(5000)
    return gw


def test_status_carries_the_diagnostics_summary():
    gw = _gateway()
    s = gw.status()
    assert s["link"]["state"] == "lost" and s["uplink"]["state"] in ("backoff", "connecting")
    assert "collector_link_lost" in s["alarms"]
    assert s["diag"]["result"] == "fail"
    assert s["diag"]["alarms"] == len(s["alarms"]) and s["diag"]["uptime_s"] >= 4
    gw.stop()


def test_a_time_set_is_clock_stepped_at_once():
    gw = _gateway()
    gw.set_time(gw.time() + 3600, "center")
    # Before any check run: a restart now would not lose it.
    assert gw.alarms.is_active("clock_stepped")
    gw.loop.run(2000)
    assert [a["detail"] for a in gw.alarms.active() if a["code"] == "clock_stepped"] == ["+3600 s"]
    gw.stop()


def test_a_one_shot_alarm_is_acknowledged_by_the_center_and_recorded():
    gw = _gateway()
    gw.set_time(gw.time() + 60, "center")
    assert gw.alarms.is_active("clock_stepped")
    res = gw.commands.submit({"id": 1, "op": "ack_alarm", "args": {"code": "clock_stepped"}})
    assert res["ok"] and res["result"] == {"code": "clock_stepped", "acknowledged": True}
    assert not gw.alarms.is_active("clock_stepped")
    acks = [r for r in gw.log.read(1, 256) if r["type"] == "event" and r["code"] == "alarm_ack"]
    assert [a["detail"] for a in acks] == [{"by": "center", "alarm": "clock_stepped"}]
    # A condition alarm clears only with its condition; an unknown code is refused.
    res = gw.commands.submit({"id": 2, "op": "ack_alarm", "args": {"code": "collector_link_lost"}})
    assert not res["ok"] and "condition" in res["error"]
    res = gw.commands.submit({"id": 3, "op": "ack_alarm", "args": {"code": "no_such"}})
    assert not res["ok"] and "unknown" in res["error"]
    res = gw.commands.submit({"id": 4, "op": "ack_alarm", "args": {"code": "clock_stepped"}})
    assert res["ok"] and res["result"]["acknowledged"] is False
    gw.stop()
