# The center's commands (../shared/specs/center-station.md, docs/uplink.md) through the
# real gateway, against the center and collector emulators: status, get_params,
# set_params validated as a whole and persisted before the RESULT and recorded as an
# event, time_sync with its event, set_output driving a collector coil, a repeated id
# answered from the stored RESULT across a gateway restart and not run again, and a
# command that arrives while the collector is offline: answered "queued", kept across a
# restart, applied once the collector is back. Seen through the center's stored RESULTs
# and records, the emulator's coils and the gateway's flash. Once with the gateway in this
# process (CPython), once as `micropython -m gateway run`; both rigs play in the scenarios
# campaign (tests/conftest.py) alongside the alarm scenarios.
import json
import os
import sqlite3
import time

import pytest

from gateway import config
from gateway.center.commands import Commands
from gateway.store.slots import Slots
from hal.fs import Flash
from hal.virtualclock import VirtualClock
from tests.core.uplink_fakes import FakeApp, MemSlots
from tests.harness.e2erig import MICROPYTHON, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.lane2]

NAMES = ["commands", "mp_commands"]


def _send(rig, op, args, cmd_id=None, state="done", timeout_s=20):
    """Queue a command at the center; (id, RESULT) once the center holds it in `state`."""
    dev = rig.device_id
    cmd_id = rig.center.command(dev, op, args, cmd_id)
    wait_until(lambda: rig.center.results(dev)[cmd_id]["state"] == state, timeout_s,
               "%s: %s %d %s" % (rig.name, op, cmd_id, state))
    return cmd_id, rig.center.results(dev)[cmd_id]["result"]


def _answered(rig, cmd_id):
    """When the center stored the command's RESULT (its own clock, unix s)."""
    db = sqlite3.connect(rig.site.db)
    try:
        return db.execute("SELECT answered FROM commands WHERE device=? AND id=?",
                          (rig.device_id, cmd_id)).fetchone()[0]
    finally:
        db.close()


def _params_slot(rig):
    """The parameter set on the gateway's flash, and when its newer copy was written."""
    paths = [os.path.join(rig.data_dir, "params" + s) for s in (".a", ".b")]
    mtime = max(os.path.getmtime(p) for p in paths if os.path.exists(p))
    return Slots(Flash(rig.data_dir), "params").load(), mtime


def _events(rig, code):
    return rig.records("event", code)


def script_commands(r):
    rig = r.rig
    f = r.facts
    _, f["status"] = _send(rig, "status", {})
    _, f["params"] = _send(rig, "get_params", {})
    # One bad value rejects the whole set.
    _, f["set_bad"] = _send(rig, "set_params", {"params": {"alarms.supply_low_mv": 11000,
                                                           "scale.design_tph": -5}})
    _, f["params_after_bad"] = _send(rig, "get_params", {})
    cmd_id, f["set_ok"] = _send(rig, "set_params", {"params": {
        "alarms": {"supply_low_mv": 11000}, "production.coef": 0.95}})
    f["set_ok_answered"] = _answered(rig, cmd_id)
    f["params_slot"] = _params_slot(rig)

    _, f["time_sync"] = _send(rig, "time_sync", {"time": int(time.time()) + 30})
    _, status = _send(rig, "status", {})
    f["time_after"] = (status["result"]["time"], time.time())

    out_id, f["out_on"] = _send(rig, "set_output", {"do": 2, "on": True})
    f["coil_on"] = wait_until(lambda: rig.emu.coils[1], 3, "coil 1 on")
    _, f["out_bad"] = _send(rig, "set_output", {"do": 3, "on": True})

    # The same id after a restart: the stored RESULT, and the coil is not driven again
    # (switched off behind the gateway's back, it stays off).
    f["restarted"] = [time.monotonic()]
    rig.restart()
    rig.emu.snapshot(lambda: rig.emu.coils.__setitem__(1, False))
    rig.wait_uploaded(20)
    before = len(_events(rig, "output_set"))
    _, f["out_again"] = _send(rig, "set_output", {"do": 2, "on": True}, cmd_id=out_id)
    time.sleep(2)
    rig.wait_uploaded(20)
    f["coil_after_repeat"] = rig.emu.coils[1]
    f["output_events"] = (before, len(_events(rig, "output_set")))
    _, f["params_after_restart"] = _send(rig, "get_params", {})

    # The collector offline: queued and persisted, kept across a restart, applied when
    # the collector is back.
    t0 = time.monotonic()
    rig.emu.faults.drop = 1.0
    rig.wait_alarm("collector_link_lost", "raise", t0, 10)
    queued_id, f["queued"] = _send(rig, "set_output", {"do": 2, "on": True}, state="queued")
    f["queued_id"] = queued_id
    f["coil_while_queued"] = rig.emu.coils[1]
    # Between two tries of the waiting command (at once, 1 s, 3 s, 7 s ... after it
    # came): a stop during a try leaves it "running" on flash, and the restart then
    # answers it with an error (test_a_waiting_command_survives_a_cut_during_a_try).
    time.sleep(1.8)
    f["restarted"].append(time.monotonic())
    rig.restart()
    time.sleep(3)  # HELLO, WELCOME, the center sends it again: still waiting
    f["queued_after_restart"] = rig.center.results(rig.device_id)[queued_id]
    rig.emu.faults.drop = 0.0
    wait_until(lambda: rig.center.results(rig.device_id)[queued_id]["state"] == "done", 20,
               "%s: queued command applied" % rig.name)
    f["applied"] = rig.center.results(rig.device_id)[queued_id]["result"]
    f["coil_applied"] = wait_until(lambda: rig.emu.coils[1], 3, "coil 1 on")
    f["offset_end"] = Slots(Flash(rig.data_dir), "checkpoint").load()["clock_offset_s"]


E2E_RIGS = {
    "commands": (script_commands, {}),
    "mp_commands": (script_commands, {"exe": MICROPYTHON}),
}


def _facts(scenarios, name):
    if name not in scenarios:
        pytest.skip("rig %s not selected (E2E_ONLY)" % name)
    run = scenarios[name]
    return run, _Facts(run)


class _Facts:
    """The script's notes; one it did not get to says why."""

    def __init__(self, run):
        self.run = run

    def __getitem__(self, key):
        if key not in self.run.facts:
            raise AssertionError("%s: the script stopped before %s:\n%s"
                                 % (self.run.rig.name, key, self.run.error))
        return self.run.facts[key]


@pytest.mark.parametrize("name", NAMES)
def test_status(scenarios, name):
    _, f = _facts(scenarios, name)
    res = f["status"]
    assert res["ok"] is True
    s = res["result"]
    assert s["running"] is True and s["run_state"] == "running"
    assert abs(s["speed_mps"] - 2.5) < 0.15  # the belt model's speed
    assert isinstance(s["rate_tph"], (int, float)) and isinstance(s["total_kg"], (int, float))
    assert "day" in s["totals"] and s["link"]["state"] == "ok"
    assert s["uplink"]["state"] == "online" and isinstance(s["alarms"], list)
    assert s["diag"]["result"] in ("pass", "warn", "fail")
    assert abs(s["time"] - time.time()) < 600


@pytest.mark.parametrize("name", NAMES)
def test_get_params_all_but_secrets(scenarios, name):
    run, f = _facts(scenarios, name)
    res = f["params"]
    assert res["ok"] is True
    flat = _flatten(res["result"]["params"])
    # Every key of the schema, and the calibration audit the gateway keeps beside them
    # (never settable: the change counter and the verified zero's reference).
    assert set(flat) - {"scale.cal_count", "scale.zero_ref_counts"} == \
        set(row[0] for row in config.SCHEMA)
    assert flat["device_id"] == run.rig.device_id
    assert run.rig.key.hex() not in json.dumps(res)


@pytest.mark.parametrize("name", NAMES)
def test_set_params_is_validated_as_a_whole(scenarios, name):
    run, f = _facts(scenarios, name)
    bad = f["set_bad"]
    assert bad["ok"] is False and "scale.design_tph" in bad["error"]
    after = _flatten(f["params_after_bad"]["result"]["params"])
    assert after["alarms.supply_low_mv"] == 10800  # the good half was not applied either
    changes = [e["detail"]["changes"] for e in run.stored
               if e["type"] == "event" and e["code"] == "param_changed"]
    assert changes == [{"alarms.supply_low_mv": [10800, 11000], "production.coef": [1.0, 0.95]}]


@pytest.mark.parametrize("name", NAMES)
def test_set_params_is_persisted_before_the_result_and_recorded(scenarios, name):
    run, f = _facts(scenarios, name)
    res = f["set_ok"]
    assert res["ok"] is True
    assert res["result"]["changed"] == {"alarms.supply_low_mv": [10800, 11000],
                                        "production.coef": [1.0, 0.95]}
    slot, written = f["params_slot"]
    assert slot["by"] == "center"
    assert slot["params"]["alarms.supply_low_mv"] == 11000
    assert slot["params"]["production.coef"] == 0.95
    assert written <= f["set_ok_answered"]  # on flash before the RESULT reached the center
    after = _flatten(f["params_after_restart"]["result"]["params"])
    assert after["alarms.supply_low_mv"] == 11000 and after["production.coef"] == 0.95
    ev = [e for e in run.stored if e["type"] == "event" and e["code"] == "param_changed"]
    assert ev[0]["detail"]["by"] == "center"
    al = [a for a in run.stored if a["type"] == "alarm" and a["code"] == "param_changed"]
    assert al[0]["state"] == "raise"
    assert al[0]["detail"] == "center: alarms.supply_low_mv, production.coef"
    assert ev[0]["seq"] < al[0]["seq"]


@pytest.mark.parametrize("name", NAMES)
def test_time_sync_sets_the_clock_and_is_recorded(scenarios, name):
    run, f = _facts(scenarios, name)
    res = f["time_sync"]
    assert res["ok"] is True and 28 < res["result"]["step_s"] < 32
    gw_time, wall = f["time_after"]
    assert 27 < gw_time - wall < 33
    ev = [e for e in run.stored if e["type"] == "event" and e["code"] == "time_set"]
    assert len(ev) == 1 and ev[0]["detail"]["by"] == "center"
    assert 28 < ev[0]["detail"]["step_s"] < 32
    stepped = [a for a in run.stored if a["type"] == "alarm" and a["code"] == "clock_stepped"]
    assert stepped and stepped[0]["state"] == "raise"
    assert stepped[0]["detail"] in ("+29 s", "+30 s", "+31 s")
    # The step is kept across both restarts: the checkpoint the last gateway wrote holds
    # it to the millisecond (a clock offset lost in part would show here).
    step = res["result"]["step_s"]
    assert abs(f["offset_end"] - step) < 0.002, (f["offset_end"], step)
    # And the records after each restart are stamped with it. Each gateway_start was
    # stamped (whole seconds, rounded down) after its restart began and before it reached
    # the center, whose arrival is noted; the upload after a restart may take seconds on
    # a loaded machine, so the arrival alone bounds the stamp from above only.
    wall = time.time() - time.monotonic()
    t = {r["seq"]: r["t"] for r in run.stored}
    starts = run.rig.tapped("event", "gateway_start")
    assert len(starts) == 3, starts
    for (arrived, seq, _), began in zip(starts[1:], f["restarted"]):
        print("gateway_start %d: %.1f s after its restart began, %.1f s before it arrived"
              % (seq, t[seq] - step - (began + wall), (arrived + wall) - (t[seq] - step)))
        assert step - 1 < t[seq] - (began + wall), (t[seq], began + wall, step)
        assert t[seq] - (arrived + wall) < step + 0.5, (t[seq], arrived + wall, step)


@pytest.mark.parametrize("name", NAMES)
def test_set_output_drives_a_collector_coil(scenarios, name):
    run, f = _facts(scenarios, name)
    assert f["out_on"] == {"id": f["out_on"]["id"], "ok": True, "result": {"do": 2, "on": True}}
    assert f["coil_on"] is True
    assert f["out_bad"]["ok"] is False and "do" in f["out_bad"]["error"]
    ev = [e for e in run.stored if e["type"] == "event" and e["code"] == "output_set"]
    assert ev[0]["detail"] == {"by": "center", "do": 2, "on": True}


@pytest.mark.parametrize("name", NAMES)
def test_a_repeated_id_is_answered_not_run_again_after_a_restart(scenarios, name):
    _, f = _facts(scenarios, name)
    assert f["out_again"] == f["out_on"]
    assert f["coil_after_repeat"] is False
    before, after = f["output_events"]
    assert before == after == 1


@pytest.mark.parametrize("name", NAMES)
def test_a_command_for_an_offline_collector_is_queued_then_applied(scenarios, name):
    run, f = _facts(scenarios, name)
    q = f["queued"]
    seen = {k: run.facts.get(k) for k in ("queued", "queued_after_restart", "applied")}
    seen["events"] = [(r["seq"], r["type"], r.get("code"), r.get("state"), r.get("detail"))
                      for r in run.stored if r["type"] in ("alarm", "event")]
    assert q["ok"] is True and q["queued"] is True and q["result"] == {"queued": True}, seen
    assert f["coil_while_queued"] is False, seen
    # Kept across the restart: asked again after the new WELCOME, still waiting.
    again = f["queued_after_restart"]
    assert again["state"] == "queued" and again["result"]["queued"] is True, seen
    assert f["applied"] == {"id": f["queued_id"], "ok": True,
                            "result": {"do": 2, "on": True}}, seen
    assert f["coil_applied"] is True
    ev = [e for e in run.stored if e["type"] == "event" and e["code"] == "output_set"]
    assert len(ev) == 2, seen  # the first set_output, and this one, once


def _flatten(obj, prefix=""):
    out = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out.update(_flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def test_a_waiting_command_survives_a_cut_during_a_try():
    # set_output while the collector is offline waits. As the app wires it, a waiting
    # command is tried only once ready(op) says the collector is back, so its waiting
    # costs no flash writes and a power cut meanwhile leaves it waiting (never an
    # "interrupted" error at the center).
    clock = VirtualClock()
    slots = MemSlots()
    app = FakeApp(clock)
    app.collector_online = False

    def ready(op):
        return op != "set_output" or app.collector_online

    c = Commands(slots, app.handlers(), clock, ready=ready)
    c.start()
    writes = []
    save = slots.save
    slots.save = lambda obj: (writes.append(json.loads(json.dumps(obj))), save(obj))
    # Its arguments are checked at once, waiting or not.
    bad = c.submit({"id": 8, "op": "set_output", "args": {"do": 3, "on": True}})
    assert bad["ok"] is False and "set_output needs" in bad["error"], bad
    assert c.submit({"id": 9, "op": "set_output", "args": {"do": 2, "on": True}})["queued"]
    # Persisted as waiting, never marked running.
    assert [e["st"] for w in writes for e in w["wait"] if e["id"] == 9] == ["pending"], writes
    del writes[:]
    for _ in range(5):
        clock.advance_ms(61000)
        c.run(clock.ticks_ms())
    assert writes == []  # nothing was marked running: a cut now finds it waiting
    slots.save = save
    after = Commands(slots, FakeApp(clock).handlers(), clock, ready=ready)
    after.start()
    assert after.pending() == [9], after.outbox()
    app.collector_online = True
    after.wake()
    after.run(clock.ticks_ms())
    done = after.outbox()
    assert after.pending() == [] and len(done) == 1 and done[0]["id"] == 9, done
    assert done[0]["ok"] and "queued" not in done[0], done
