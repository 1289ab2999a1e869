# The center's commands through the whole app on stand-in hardware (tests/harness/appstandin.py):
# each is carried out by gateway.control, loaded for the command and forgotten after.
# CPython only, like tests/test_app_checkpoint.py.
import sys

from gateway import ondemand
from tests.harness.appstandin import standin_gateway


def _gateway():
    gw = standin_gateway()
    gw.start()
    gw.loop.run(5000)
    return gw


def _command(gw, cmd_id, op, args):
    # Another test file may have imported it (the CLI holds it while loaded): away for
    # the command, put back after.
    held = sys.modules.pop("gateway.control", None)
    try:
        res = gw.commands.submit({"id": cmd_id, "op": op, "args": args})
        assert "gateway.control" not in sys.modules  # loaded for the command only
    finally:
        if held is not None:
            sys.modules["gateway.control"] = held
    return res


def test_status_is_the_report_and_its_module_is_forgotten_after():
    gw = _gateway()
    res = _command(gw, 1, "status", {})
    assert res["ok"], res
    s = res["result"]
    assert s["link"]["state"] == "lost" and "collector_link_lost" in s["alarms"]
    assert s["run_state"] and "totals" in s and s["diag"]["result"] == "fail"
    assert sorted(ondemand.call("gateway.control", "report", gw)) == sorted(s)
    gw.stop()


def test_get_and_set_params():
    gw = _gateway()
    res = _command(gw, 2, "get_params", {})
    assert res["ok"] and res["result"]["params"]["store"]["checkpoint_s"] == 10, res
    res = _command(gw, 3, "set_params", {"params": {"store": {"checkpoint_s": 20}}})
    assert res["ok"] and res["result"]["changed"] == {"store.checkpoint_s": [10, 20]}, res
    assert gw.params["store.checkpoint_s"] == 20
    res = _command(gw, 4, "set_params", {"params": {"store": {"checkpoint_s": 0}}})
    assert not res["ok"] and "checkpoint_s" in res["error"], res
    res = _command(gw, 5, "set_params", {"checkpoint_s": 1})
    assert res == {"id": 5, "ok": False, "error": "set_params needs {\"params\": {...}}"}
    gw.stop()


def test_time_sync_and_set_output():
    gw = _gateway()
    t = int(gw.clock.time()) + 3600
    res = _command(gw, 6, "time_sync", {"time": t})
    assert res["ok"] and abs(res["result"]["step_s"] - 3600) < 2, res
    res = _command(gw, 7, "time_sync", {"time": "now"})
    assert res["error"] == "time_sync needs {\"time\": unix seconds}", res
    res = _command(gw, 8, "set_output", {"do": 3, "on": True})
    assert res["error"] == "set_output needs {\"do\": 1|2, \"on\": bool}", res
    # The collector is offline: the command waits (queued), it is not refused.
    res = _command(gw, 9, "set_output", {"do": 1, "on": True})
    assert res["ok"] and res["queued"], res
    assert gw.commands.pending() == [9]
    gw.stop()
