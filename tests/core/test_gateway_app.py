# The gateway app on fakes: what its own jobs do, whatever the ticks counter reads.
from gateway import config
from gateway.app import Gateway
from gateway.store.slots import Slots
from hal.board import Hardware
from hal.clock import VirtualClock
from hal.fs import Flash
from tests.core.fakeline import FakeLine
from tests.core.util import rmtree, tmpdir

_KEY = b"k" * 32


def _no_center():
    raise OSError("no route to the center")


def _gateway(ticks_start=0):
    d = tmpdir("app")
    clock = VirtualClock(ticks_start=ticks_start)
    cfg = config.validate({
        "device_id": 7,
        "key_file": "-",
        "data_dir": d,
        "collector": {"port": "-"},
        "center": {"host": "127.0.0.1", "port": 1},
        "production": {"interval_s": 10},
    })
    hw = Hardware(clock, Flash(d), FakeLine(clock, lambda req: []), _no_center)
    return Gateway(cfg, _KEY, hw), d


def test_first_checkpoint_at_start_whatever_the_ticks():
    # A ticks counter in the upper half of its period (a unix host up for more than
    # 6.2 days, or a board's ticks after that long) must not postpone the first
    # checkpoint by half a period.
    for ticks_start in (0, (1 << 29) + 5000, (1 << 30) - 300):
        gw, d = _gateway(ticks_start)
        try:
            gw.start()
            for _ in range(20):
                gw.clock.sleep_ms(gw.loop.step())
            assert Slots(gw.hw.flash, "checkpoint").load() is not None, ticks_start
        finally:
            gw.uplink.stop()
            gw.log.close()
            rmtree(d)


def test_no_moment_between_a_prod_record_and_its_checkpoint():
    # A cut after a prod record but before the checkpoint that follows it makes the next
    # start adopt the record's total and count afresh: the travel until its first poll
    # is lost. So the record and the checkpoint are written in the same job run, and
    # between any two loop steps the checkpoint is as new as the newest record.
    gw, d = _gateway()
    try:
        gw.start()
        slots = Slots(gw.hw.flash, "checkpoint")
        seen = 0
        while seen < 2:
            gw.clock.sleep_ms(gw.loop.step())
            prods = [r for r in gw.log.read(1, 64) if r["type"] == "prod"]
            if prods:
                iv = slots.load()["measurement"]["production"]["iv"]
                assert iv is not None and prods[-1]["t0"] < iv["t0"], (prods[-1], iv)
            seen = len(prods)
    finally:
        gw.uplink.stop()
        gw.log.close()
        rmtree(d)


def test_a_collector_restart_is_recorded_under_its_alarm_s_code():
    gw, d = _gateway()
    try:
        gw.start()
        gw.collector.on_restart(5)
        codes = [r.get("code") for r in gw.log.read(1, 64) if r["type"] == "event"]
        assert "collector_restarted" in codes and "collector_restart" not in codes, codes
    finally:
        gw.uplink.stop()
        gw.log.close()
        rmtree(d)

