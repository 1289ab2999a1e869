# The app's checkpoint when it cannot be saved (the flash fails, or the heap has no room
# for the JSON): counted, alarmed (checkpoint_failed), tried again at the next period
# rather than at every run of the job, and the alarm clears with the next good save.
# The whole app on stand-in hardware (tests/harness/appstandin.py). CPython only (the whole app
# early in tests/mprun.py's one MicroPython heap leaves the other tests too little room).
from tests.harness.appstandin import standin_gateway


def _gateway():
    gw = standin_gateway({"store": {"checkpoint_s": 10}})
    gw.start()
    return gw


class _FailingSave:
    """Slots.save standing in: raises `error` for the next `n` calls, then saves."""

    def __init__(self, save, error, n):
        self.save = save
        self.error = error
        self.n = n
        self.calls = 0

    def __call__(self, obj):
        self.calls += 1
        if self.n:
            self.n -= 1
            raise self.error
        self.save(obj)


def _alarm_records(gw, code):
    recs = gw.log.read(1, 1000)
    return [r["state"] for r in recs if r["type"] == "alarm" and r["code"] == code]


def _run(gw, error, failures):
    saves = gw._ckpt_slots
    gen = saves.generation
    fail = _FailingSave(saves.save, error, failures)
    saves.save = fail
    gw.loop.run(30000)
    return fail, gen


def test_a_checkpoint_without_room_in_the_heap_is_alarmed_and_retried_at_the_period():
    gw = _gateway()
    gw.loop.run(1000)  # the first checkpoint
    fail, gen = _run(gw, MemoryError("memory allocation failed, allocating 1240 bytes"), 2)
    # 30 s at a 10 s period: three tries (two failed), not one per 200 ms run of the job.
    assert fail.calls == 3, fail.calls
    assert gw.checkpoint_errors == 2
    assert gw.loop.stats()["checkpoint"]["errors"] == 0  # the job itself never failed
    assert gw._ckpt_slots.generation == gen + 1
    # Raised at the first failure, cleared by the good save.
    assert _alarm_records(gw, "checkpoint_failed") == ["raise", "clear"]
    assert not gw.alarms.is_active("checkpoint_failed")
    gw.stop()


def test_a_checkpoint_the_flash_refuses_stays_alarmed_while_it_fails():
    gw = _gateway()
    gw.loop.run(1000)
    fail, gen = _run(gw, OSError(28, "no space"), 100)
    assert fail.calls == 3 and gw.checkpoint_errors == 3
    assert gw.alarms.is_active("checkpoint_failed")
    detail = [a["detail"] for a in gw.alarms.active() if a["code"] == "checkpoint_failed"]
    assert detail and "OSError" in detail[0] and "no space" in detail[0], detail
    assert gw._ckpt_slots.generation == gen  # the previous checkpoint is still the one
    # The record log's own alarm is not borrowed for it.
    assert not gw.alarms.is_active("storage_write_error")
    assert gw.loop.stats()["checkpoint"]["errors"] == 0
