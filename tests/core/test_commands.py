# Center commands: idempotent by id across restarts, queued while they cannot be applied,
# set_params validated as a whole.
from gateway.center.commands import Commands
from hal.virtualclock import VirtualClock
from tests.core.uplink_fakes import FakeApp, MemSlots


def _make(slots=None, app=None):
    clock = VirtualClock()
    app = app or FakeApp(clock)
    slots = slots or MemSlots()
    c = Commands(slots, app.handlers(), clock)
    c.start()
    return c, app, slots, clock


def test_status_and_get_params():
    c, app, _, _ = _make()
    r = c.submit({"id": 1, "op": "status", "args": {}})
    assert r["id"] == 1 and r["ok"] is True and r["result"]["rate_tph"] == 812.5
    r = c.submit({"id": 2, "op": "get_params"})  # args may be left out
    assert r["ok"] and r["result"]["params"]["production.interval_s"] == 60


def test_repeated_id_is_not_executed_twice():
    c, app, _, _ = _make()
    r1 = c.submit({"id": 5, "op": "set_output", "args": {"do": 1, "on": True}})
    app.outputs[1] = False  # someone switched it back by hand
    r2 = c.submit({"id": 5, "op": "set_output", "args": {"do": 1, "on": True}})
    assert r1 == r2 and r1["ok"]
    assert app.calls.count("set_output") == 1 and app.outputs[1] is False


def test_idempotent_across_restart():
    c, app, slots, _ = _make()
    r1 = c.submit({"id": 7, "op": "time_sync", "args": {"time": 1800000000}})
    assert r1["ok"]
    c2, app2, _, _ = _make(slots=slots)
    r2 = c2.submit({"id": 7, "op": "time_sync", "args": {"time": 1800000000}})
    assert r2 == r1 and app2.calls == []


def test_set_params_rejects_all_on_one_bad_value():
    c, app, slots, _ = _make()
    r = c.submit({"id": 1, "op": "set_params", "args": {"params": {
        "scale.material_factor": 1.1, "production.interval_s": 61}}})
    assert r["ok"] is False and "production.interval_s" in r["error"]
    assert app.params["scale.material_factor"] == 1.0 and app.events == []
    r = c.submit({"id": 2, "op": "set_params", "args": {"params": {"center.host": "x"}}})
    assert r["ok"] is False and "not settable" in r["error"]
    r = c.submit({"id": 3, "op": "set_params", "args": {"params": {
        "scale": {"material_factor": 1.1}, "production.interval_s": 30}}})
    assert r["ok"] is True and sorted(r["result"]["changed"]) == [
        "production.interval_s", "scale.material_factor"]
    assert app.persisted["production.interval_s"] == 30
    assert app.events[0][0] == "params_changed"
    assert app.events[0][1]["old"]["scale.material_factor"] == 1.0


def test_invalid_commands_answer_errors():
    c, app, _, _ = _make()
    assert c.submit({"id": 1, "op": "reboot"})["error"].startswith("unknown op")
    assert c.submit({"id": 2, "op": "status", "args": [1]})["error"] == "args must be an object"
    assert c.submit({"id": "x", "op": "status"}) == {
        "id": None, "ok": False, "error": "id must be an integer"}
    assert c.submit({"id": True, "op": "status"})["id"] is None
    assert c.submit({"id": 3, "op": "set_output", "args": {"do": 3, "on": True}})["ok"] is False
    assert app.calls == []


def test_busy_command_is_queued_persisted_and_applied_later():
    c, app, slots, clock = _make()
    app.collector_online = False
    r = c.submit({"id": 9, "op": "set_output", "args": {"do": 2, "on": True}})
    assert r["ok"] is True and r["queued"] is True and r["result"]["queued"] is True
    assert c.pending() == [9]
    # The same id again while waiting: the same queued answer, still one command.
    assert c.submit({"id": 9, "op": "set_output", "args": {"do": 2, "on": True}})["queued"]
    # A restart keeps it.
    c2, app2, _, clock2 = _make(slots=slots)
    app2.collector_online = False
    assert c2.pending() == [9]
    c2.run(clock2.ticks_ms())
    assert c2.pending() == [9] and c2.outbox() == []
    app2.collector_online = True
    c2.run(clock2.ticks_ms())  # backing off: not yet
    assert c2.pending() == [9]
    clock2.advance_ms(2000)
    c2.run(clock2.ticks_ms())
    assert c2.pending() == [] and app2.outputs[2] is True
    out = c2.outbox()
    assert len(out) == 1 and out[0]["id"] == 9 and out[0]["ok"] and "queued" not in out[0]
    assert c2.unsent == 1
    c2.mark_sent(9)
    assert c2.outbox() == [] and c2.unsent == 0
    assert c2.submit({"id": 9, "op": "set_output", "args": {"do": 2, "on": True}}) == out[0]
    assert app2.calls.count("set_output") == 1


def test_wake_retries_at_once():
    c, app, _, clock = _make()
    app.collector_online = False
    c.submit({"id": 1, "op": "set_output", "args": {"do": 1, "on": True}})
    c.run(clock.ticks_ms())
    c.run(clock.ticks_ms())
    app.collector_online = True
    c.run(clock.ticks_ms())
    assert c.pending() == [1]
    c.wake()
    c.run(clock.ticks_ms())
    assert c.pending() == [] and app.outputs[1] is True


def test_restart_while_running_answers_error_not_rerun():
    slots = MemSlots()
    c, app, _, _ = _make(slots=slots)
    saved = []

    def crash(args):
        saved.append(slots.text)  # state as persisted when the handler began
        raise KeyboardInterrupt  # the power went while the handler ran

    c.handlers["time_sync"] = crash
    try:
        c.submit({"id": 4, "op": "time_sync", "args": {"time": 1800000000}})
    except KeyboardInterrupt:
        pass
    assert '"running"' in saved[0]
    c2, app2, _, _ = _make(slots=slots)
    r = c2.submit({"id": 4, "op": "time_sync", "args": {"time": 1800000000}})
    assert r["ok"] is False and "interrupted" in r["error"] and app2.calls == []
    assert c2.outbox() == [r]  # the center hears about it without asking


def test_handler_bug_gets_an_answer():
    c, app, _, _ = _make()

    def broken(args):
        raise ZeroDivisionError("oops")

    c.handlers["status"] = broken
    r = c.submit({"id": 1, "op": "status"})
    assert r["ok"] is False and "oops" in r["error"]


def test_old_results_trimmed_but_ids_still_refused():
    c, app, slots, _ = _make()
    out = {"do": 1, "on": True}
    for i in range(1, 301):
        c.submit({"id": i, "op": "set_output", "args": out})
    assert len(slots.text) < 8000
    r = c.submit({"id": 290, "op": "set_output", "args": out})
    assert r["ok"] and app.calls.count("set_output") == 300  # the kept RESULT
    r = c.submit({"id": 100, "op": "set_output", "args": out})
    assert r == {"id": 100, "ok": False, "error": "duplicate"}
    assert app.calls.count("set_output") == 300


def test_ids_at_or_below_the_highest_are_never_taken_in_again():
    # Idempotency that does not run out: ids 500 and 501 come back after 280 others
    # (the first version executed them again once 272 newer ids had pushed them out).
    c, app, slots, clock = _make()
    for i in (500, 501):
        assert c.submit({"id": i, "op": "set_output", "args": {"do": 1, "on": True}})["ok"]
    for i in range(502, 782):
        assert c.submit({"id": i, "op": "time_sync", "args": {"time": 1800000000}})["ok"]
    app.outputs[1] = False
    for i in (500, 501):
        r = c.submit({"id": i, "op": "set_output", "args": {"do": 1, "on": True}})
        assert r == {"id": i, "ok": False, "error": "duplicate"}, r
    # An id below the highest that never came is not taken in either; nor after a restart.
    assert c.submit({"id": 499, "op": "set_output", "args": {"do": 1, "on": True}}) == {
        "id": 499, "ok": False, "error": "duplicate"}
    c2, app2, _, _ = _make(slots=slots)
    assert c2.submit({"id": 700, "op": "time_sync", "args": {"time": 1800000000}})["error"] \
        == "duplicate"
    assert c2.submit({"id": 500, "op": "set_output", "args": {"do": 1, "on": True}})["error"] \
        == "duplicate"
    assert app.outputs[1] is False and app.calls.count("set_output") == 2
    assert app2.calls == [] and c2.top == 781
    # Ids are 1..2^31-1: others are refused, not taken in, and leave the highest alone.
    for bad in (0, -5, 2**31, 2**32 + 500):
        r = c2.submit({"id": bad, "op": "status"})
        assert r["ok"] is False and r["id"] == bad and "id must be" in r["error"], r
    assert c2.top == 781 and app2.calls == []
    assert c2.submit({"id": 782, "op": "status"})["ok"] and app2.calls == ["status"]


def test_a_waiting_command_keeps_its_place_below_the_highest_id():
    c, app, _, clock = _make()
    app.collector_online = False
    assert c.submit({"id": 3, "op": "set_output", "args": {"do": 1, "on": True}})["queued"]
    assert c.submit({"id": 9, "op": "status"})["ok"]
    # Asked again while waiting: still the queued answer, not "duplicate".
    assert c.submit({"id": 3, "op": "set_output", "args": {"do": 1, "on": True}})["queued"]


def test_waiting_commands_are_bounded():
    c, app, _, _ = _make()
    app.collector_online = False
    for i in range(1, 17):
        assert c.submit({"id": i, "op": "set_output", "args": {"do": 1, "on": True}})["queued"]
    r = c.submit({"id": 17, "op": "set_output", "args": {"do": 1, "on": True}})
    assert r["ok"] is False and "too many" in r["error"] and len(c.pending()) == 16
    assert c.submit({"id": 18, "op": "status"})["ok"]  # what need not wait still runs


class _FailingSlots(MemSlots):
    fail = False

    def save(self, obj):
        if self.fail:
            raise OSError(5, "EIO")
        MemSlots.save(self, obj)


def test_command_not_run_when_its_state_cannot_be_saved():
    slots = _FailingSlots()
    c, app, _, clock = _make(slots=slots)
    app.collector_online = False
    c.submit({"id": 1, "op": "set_output", "args": {"do": 1, "on": True}})
    slots.fail = True
    r = c.submit({"id": 2, "op": "time_sync", "args": {"time": 1800000000}})
    assert r["ok"] is False and "could not be saved" in r["error"] and app.calls == []
    app.collector_online = True
    c.run(clock.ticks_ms())
    assert c.pending() == [1] and app.outputs[1] is False  # retried only once it can be saved
    assert c.save_errors >= 2
    slots.fail = False
    clock.advance_ms(2000)
    c.run(clock.ticks_ms())
    assert c.pending() == [] and app.outputs[1] is True
    # id 2 was never recorded: the center may send it again and it runs then.
    assert c.submit({"id": 2, "op": "time_sync", "args": {"time": 1800000000}})["ok"]


def test_kept_results_are_small_and_read_only_ones_are_made_again():
    # A kept RESULT costs the heap its JSON's length: large ones are not kept. A read-only
    # op's RESULT is never kept: a repeat is answered afresh (it changes nothing).
    from gateway.store.slots import Slots
    from tests.core.faultfs import FaultFlash

    flash = FaultFlash()
    clock = VirtualClock()
    app = FakeApp(clock)
    handlers = app.handlers()
    handlers["status"] = lambda args: {"diag": "x" * 6000}
    handlers["big_change"] = lambda args: {"changed": "y" * 6000}
    c = Commands(Slots(flash, "commands"), handlers, clock)
    c.start()
    for i in range(1, 41):
        assert c.submit({"id": i, "op": "status"})["ok"]
    assert c.submit({"id": 41, "op": "big_change"})["ok"]
    assert c.submit({"id": 42, "op": "set_output", "args": {"do": 1, "on": True}})["ok"]
    assert c.save_errors == 0
    assert len(flash.image()["commands.a"]) + len(flash.image()["commands.b"]) < 4000
    kept = sum(len(d[2] or "") for d in c.done)
    assert kept < 16 * 256, kept
    c2 = Commands(Slots(flash, "commands"), handlers, clock)
    c2.start()
    assert c2.submit({"id": 40, "op": "status"})["result"]["diag"] == "x" * 6000
    assert c2.submit({"id": 41, "op": "big_change"}) == {"id": 41, "ok": False,
                                                         "error": "duplicate"}
    assert c2.submit({"id": 42, "op": "set_output", "args": {"do": 1, "on": True}}) == {
        "id": 42, "ok": True, "result": {"do": 1, "on": True}}
    assert c2.submit({"id": 3, "op": "status"})["error"] == "duplicate"
    assert app.calls.count("set_output") == 1


def test_a_version_1_state_is_taken_over():
    slots = MemSlots()
    slots.save({"v": 1, "ids": [1, 2, 3], "cmds": [
        {"id": 4, "op": "set_output", "args": None, "st": "done", "sent": True,
         "res": {"id": 4, "ok": True, "result": {"do": 1, "on": True}}, "t": 0},
        {"id": 5, "op": "set_output", "args": {"do": 2, "on": True}, "st": "pending",
         "res": None, "sent": True, "t": 0}]})
    c, app, _, _ = _make(slots=slots)
    assert c.top == 5 and c.pending() == [5]
    assert c.submit({"id": 2, "op": "status"})["error"] == "duplicate"
