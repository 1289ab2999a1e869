# The gateway app on fakes: what its own jobs do, whatever the ticks counter reads.
from gateway import config, ondemand
from gateway.app import Gateway
from gateway.store.slots import Slots
from hal import Hardware
from hal.fs import Flash
from hal.virtualclock import VirtualClock
from tests.core.fakeline import FakeLine
from tests.core.util import rmtree, tmpdir, write_key

_KEY = b"k" * 32


def _no_center():
    raise OSError("no route to the center")


def _cfg(d):
    return config.validate({
        "device_id": 7,
        "key_file": "-",
        "data_dir": d,
        "collector": {"port": "-"},
        "center": {"host": "127.0.0.1", "port": 1},
        "production": {"interval_s": 10},
    })


def _gateway(ticks_start=0):
    d = tmpdir("app")
    clock = VirtualClock(ticks_start=ticks_start)
    hw = Hardware(clock, Flash(d), FakeLine(clock, lambda req: []), _no_center)
    return Gateway(_cfg(d), _KEY, hw), d


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


def test_calibration_counter_and_verified_zero_survive_restarts_and_never_reset():
    from gateway.control import Control

    gw, d = _gateway()
    try:
        ctl = Control(gw)
        assert gw.params["scale.cal_count"] == 0
        assert gw.params["scale.zero_ref_counts"] is None
        ctl.set_params({"scale.zero_counts": 1000}, "T1")
        ctl.set_params({"scale.damping_s": 5.0}, "T1")  # not a calibration parameter
        # A zero calibration a technician forced: its zero becomes the verified one.
        gw.measurement.scale.verified_zero = 2000
        ctl.set_params({"scale.zero_counts": 2000}, "T1")
        assert gw.params["scale.cal_count"] == 2
        assert gw.measurement.flat["scale.zero_ref_counts"] == 2000
        try:
            ctl.set_params({"scale.cal_count": 0}, "T1")
        except ValueError:
            pass
        else:
            raise AssertionError("the counter must not be settable")
        gw.log.close()
        again = Gateway(_cfg(d), _KEY, gw.hw)
        assert again.params["scale.cal_count"] == 2
        assert again.params["scale.zero_ref_counts"] == 2000
        assert again.measurement.flat["scale.zero_ref_counts"] == 2000
        again.log.close()
    finally:
        rmtree(d)


def test_a_port_that_will_not_open_is_named_with_its_reason_and_counted():
    # It used to show only "link lost" and timeouts=0: the port and the OS's reason
    # appeared nowhere.
    from hal.board import open_uart

    d = tmpdir("ports")
    clock = VirtualClock()
    cfg = config.validate({
        "device_id": 7, "key_file": "-", "data_dir": d,
        "collector": {"port": d + "/ttyUSB9"},
        "center": {"host": "127.0.0.1", "port": 1},
    })
    hw = Hardware(clock, Flash(d), open_uart(d + "/ttyUSB9", 9600), _no_center,
                  cli_uart=open_uart(d + "/ttyCLI", 115200))
    gw = Gateway(cfg, _KEY, hw)
    try:
        gw.start()
        end = clock.ticks_add(clock.ticks_ms(), 20000)
        while clock.ticks_diff(end, clock.ticks_ms()) > 0:
            clock.sleep_ms(gw.loop.step())
        st = ondemand.call("gateway.control", "report", gw)
        link = st["link"]
        assert link["state"] == "lost"
        assert link["port_error"].startswith("cannot open %s/ttyUSB9: " % d), link
        assert len(link["port_error"]) > len("cannot open %s/ttyUSB9: " % d)  # the reason
        assert link["port_failures"] >= 5, link
        assert st["cli_port"]["error"].startswith("cannot open %s/ttyCLI: " % d), st
        assert st["cli_port"]["failures"] >= 5, st
        figs = [c for c in gw.diag.report()["checks"] if c["name"] == "link"][0]["figures"]
        assert figs["port_error"] == link["port_error"] and figs["port_failures"] >= 5, figs
        lost = [a for a in gw.alarms.active() if a["code"] == "collector_link_lost"]
        assert lost and lost[0]["detail"] == link["port_error"], gw.alarms.active()
    finally:
        gw.uplink.stop()
        gw.log.close()
        rmtree(d)


def _power_cfg(d, **more):
    # The belt drive and the mine's total on the meter port.
    terms = [{"address": "000000000012", "role": "belt_drive", "ct_ratio": 60},
             {"address": "000000000034", "role": "mine_total"}]
    cfg = {"device_id": 7, "key_file": "-", "data_dir": d,
           "collector": {"port": "-"},
           "center": {"host": "127.0.0.1", "port": 1},
           "production": {"interval_s": 10},
           "meters": {"port": "-", "terminals": terms}}
    cfg.update(more)
    return config.validate(cfg)


def _meter_line(clock):
    from tests.core.fakemeter import Bus, Terminal

    fakes = [Terminal("000000000012", {0x02030000: 15000, 0x00010000: 1000}),
             Terminal("000000000034", {0x00010000: 5000})]
    return FakeLine(clock, Bus(fakes))


def _power_gateway(cfg, clock, d, meter_line):
    hw = Hardware(clock, Flash(d), FakeLine(clock, lambda req: []), _no_center,
                  meter_uart=meter_line)
    return Gateway(cfg, _KEY, hw)


def _run_for(gw, clock, ms):
    end = clock.ticks_add(clock.ticks_ms(), ms)
    while clock.ticks_diff(end, clock.ticks_ms()) > 0:
        clock.sleep_ms(max(1, gw.loop.step()))


def _power_off(gw):
    gw.uplink.stop()
    gw.log.close()


def test_power_terminals_wired_in():
    # With meters configured: the bus job, power records beside the prod records, the
    # belt drive's kWh in them, the power side in the status and the checkpoint, and its
    # registers back after a restart. (Without: tests above, nothing of it loaded.)
    d = tmpdir("app")
    clock = VirtualClock()
    cfg = _power_cfg(d)
    meter_line = _meter_line(clock)
    try:
        gw = _power_gateway(cfg, clock, d, meter_line)
        gw.start()
        _run_for(gw, clock, 35000)
        recs = gw.log.read(1, 256)
        power = [r for r in recs if r["type"] == "power"]
        prods = [r for r in recs if r["type"] == "prod"]
        assert {r["address"] for r in power} == {"000000000012", "000000000034"}
        assert prods and "kwh_per_t" in prods[-1] and prods[-1]["kwh"] is not None
        st = ondemand.call("gateway.control", "report", gw)["power"]
        assert [t["state"] for t in st["terminals"]] == ["ok", "ok"]
        assert st["terminals"][0]["kw"] == 90.0  # 1.5 kW x CT 60
        gw.checkpoint()
        cum = gw.meters.terminals[0].cum[0]
        _power_off(gw)
        gw2 = _power_gateway(cfg, clock, d, meter_line)
        gw2.start()
        assert gw2.meters.terminals[0].cum[0] == cum
        assert gw2.power.closed_t1 == gw.power.closed_t1
        _power_off(gw2)
    finally:
        rmtree(d)


def test_crosscheck_wired_in_with_a_belt_drive():
    # Its job in the loop, implied_kg in the belt drive's power records, its learning
    # state in the status and the diag record, its model through the checkpoint.
    d = tmpdir("app")
    clock = VirtualClock()
    cfg = _power_cfg(d, crosscheck={"learn_h": 0.5, "window_min": 2.5})
    meter_line = _meter_line(clock)
    try:
        gw = _power_gateway(cfg, clock, d, meter_line)
        x = gw.power.cross
        assert x is not None and x.learn_h == 0.5 and x.window_h == 2.5 / 60
        gw.start()
        assert gw.loop.stats()["crosscheck"]["period_ms"] == 1000
        _run_for(gw, clock, 25000)
        power = [r for r in gw.log.read(1, 256) if r["type"] == "power"]
        belt = [r for r in power if r["role"] == "belt_drive"]
        assert belt and all(r["implied_kg"] is None for r in belt)  # learning
        assert all("implied_kg" not in r for r in power if r["role"] != "belt_drive")
        st = ondemand.call("gateway.control", "report", gw)
        assert st["power"]["crosscheck"]["state"] == "learning"
        assert gw.diag.report(compact=True)["crosscheck"]["state"] == "learning"
        x.hours = 1.25
        x.coef = (20.0, 3.0, 0.1)
        gw.checkpoint()
        _power_off(gw)
        gw2 = _power_gateway(cfg, clock, d, meter_line)
        gw2.start()
        assert gw2.power.cross.hours == 1.25 and gw2.power.cross.coef == (20.0, 3.0, 0.1)
        _power_off(gw2)
    finally:
        rmtree(d)


def test_a_panel_shows_the_gateway_s_values():
    from gateway.panel.lcd import GatewayValues

    gw, d = _gateway()
    try:
        gw.start()
        v = GatewayValues(gw)()
        assert v["total_t"] == 0 and v["link"] == "lost" and v["battery"] is None
        assert v["center"] is False and v["backlog"] >= 1 and "power" not in v  # no center here
    finally:
        gw.stop()
        rmtree(d)


class _TightLog:
    """A record log whose reads find no room for more than two records at a time: seq
    1..n, a prod record (with its total) at every odd seq, a power record at every even
    one (interval t1 = seq), a total at every tenth."""

    def __init__(self, n):
        self.oldest = 1
        self.head = n
        self.asked = []

    def read(self, seq, max_n):
        self.asked.append(max_n)
        if max_n > 2:
            raise MemoryError("memory allocation failed, allocating 2049 bytes")
        return [self.record(s) for s in range(seq, min(self.head, seq + max_n - 1) + 1)]

    @staticmethod
    def record(s):
        if s % 10 == 0:
            return {"seq": s, "type": "total", "t": s}
        if s % 2:
            return {"seq": s, "type": "prod", "total_g": s}
        return {"seq": s, "type": "power", "t1": s}


def test_the_start_keeps_of_the_log_tail_only_what_reconciling_needs_and_reads_it_small():
    from gateway import start

    log = _TightLog(70)
    tail = start._log_tail(log, 64)
    # The newest 64 records (7..70): every total, the newest prod, power after the checkpoint.
    assert [r["seq"] for r in tail] == [10, 20, 30, 40, 50, 60, 66, 68, 69, 70]
    assert log.asked[:3] == [8, 4, 2] and set(log.asked[3:]) == {2}
    assert [r["seq"] for r in start._log_tail(_TightLog(70), None)] == [
        10, 20, 30, 40, 50, 60, 69, 70]


def test_boot_builds_the_gateway_and_leaves_the_import_machinery_as_it_was():
    import builtins
    import json
    import sys

    d = tmpdir("boot")
    try:
        write_key(d + "/device.key", "ab" * 32)
        with open(d + "/config.json", "w") as f:
            json.dump({"device_id": 7, "key_file": d + "/device.key", "data_dir": d + "/data",
                       "collector": {"port": "socket://127.0.0.1:1"},
                       "center": {"host": "127.0.0.1", "port": 1}}, f)
        imp = builtins.__import__
        argv = ["run", "--config", d + "/config.json"]
        gw, opts = ondemand.once("gateway.boot", "gateway", argv)
        assert builtins.__import__ is imp  # the start's collecting hook is gone
        assert "gateway.boot" not in sys.modules and "hal.board" not in sys.modules
        assert gw.device_id == 7 and gw.params["collector.baud"] == 9600 and not opts["stats"]
        gw.hw.collector_uart.close()
    finally:
        rmtree(d)
