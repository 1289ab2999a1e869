# The self-diagnosis checks with plain inputs: each raw condition, its hysteresis, the
# report and its compact diag record, persistence.
import json

from gateway import config
from gateway.health.alarms import Alarms
from gateway.health.diag import Diagnostics
from gateway.health.identity import Identity
from hal.virtualclock import VirtualClock
from tests.core.util import heap_lock

_CFG = {
    "device_id": 77,
    "key_file": "/k",
    "data_dir": "/d",
    "collector": {"port": "socket://127.0.0.1:5020"},
    "center": {"host": "127.0.0.1", "port": 7000},
}


def params(**alarms):
    cfg = json.loads(json.dumps(_CFG))
    cfg["alarms"] = alarms
    return config.validate(cfg)


class Sample:
    def __init__(self):
        self.ticks_ms = 0
        self.block_seq = 0
        self.cells = [10000, 11000, 12000, 13000]
        self.pulses = 0
        self.freq_centihz = 25000
        self.vib_rms_01mv = 180
        self.di = 1
        self.status = 0
        self.supply_mv = 12000
        self.temp_01c = 250
        self.uptime_s = 100
        self.config_counter = 5
        self.wave_seq = 0


class Rig:
    def __init__(self, p=None, **sources):
        self.clock = VirtualClock()
        self.records = []
        self.p = p or params()
        self.alarms = Alarms(self.clock, self.emit, None, self.p)
        self.diag = Diagnostics(self.alarms, self.p, self.clock, self.emit, **sources)
        self.alarms.start()
        self.diag.start()
        self.s = Sample()
        self.base = list(self.s.cells)
        self.k = 0
        self.noise = 6  # counts of cell variation per sample
        self.frozen = []  # cells that stop varying

    def emit(self, rtype, fields):
        self.records.append((rtype, fields))
        return len(self.records)

    def tick(self, seconds, samples=True):
        for _ in range(int(seconds * 10)):
            self.clock.advance_ms(100)
            self.k += 1
            if samples:
                s = self.s
                if self.k % 10 == 0:
                    s.uptime_s += 1
                for i in range(4):
                    wobble = 0 if i in self.frozen else (self.k * (i + 3)) % (self.noise + 1)
                    s.cells[i] = self.base[i] + wobble
                self.diag.on_sample(s)
            if self.k % 10 == 0:
                now = self.clock.ticks_ms()
                self.diag.run(now)
                self.alarms.run(now)

    def states(self, code):
        return [f["state"] for t, f in self.records if t == "alarm" and f["code"] == code]

    def active(self, code):
        return self.alarms.is_active(code)


def test_healthy_collector_raises_nothing():
    r = Rig()
    r.tick(120)
    assert [f for t, f in r.records if t == "alarm"] == []
    rep = r.diag.report()
    assert rep["summary"]["result"] == "pass"
    names = [c["name"] for c in rep["checks"]]
    assert names == ["collector", "cells", "speed", "vibration", "power", "clock", "gateway"]


def test_status_bits_raise_their_faults_and_clear():
    r = Rig()
    r.tick(2)
    r.s.status = 0x02 | 0x10 | 0x40
    r.tick(3)
    for code in ("cell2_fault", "speed_sensor_fault", "collector_adc_fault"):
        assert r.active(code), code
    assert not r.active("cell1_fault")
    r.s.status = 0
    r.tick(29)
    assert r.active("cell2_fault")
    r.tick(2)
    for code in ("cell2_fault", "speed_sensor_fault", "collector_adc_fault"):
        assert r.states(code) == ["raise", "clear"], code


def test_mains_lost_and_restored():
    r = Rig()
    r.s.di = 1 | 2
    r.tick(3)
    assert r.states("mains_lost") == ["raise"]
    r.s.di = 1
    r.tick(7)
    assert r.states("mains_lost") == ["raise", "clear"]


def test_supply_low_has_hysteresis():
    r = Rig()
    r.s.supply_mv = 10700  # below 10800
    r.tick(7)
    assert r.active("supply_low")
    r.s.supply_mv = 11000  # above the threshold, within the 300 mV band: stays
    r.tick(30)
    assert r.active("supply_low")
    r.s.supply_mv = 11200
    r.tick(12)
    assert r.states("supply_low") == ["raise", "clear"]


def test_collector_temperature_out_of_range():
    r = Rig(params(temp_high_c=50.0))
    r.s.temp_01c = 512
    r.tick(12)
    assert r.active("collector_temp")
    assert r.alarms.active()[0]["detail"] == "temperature 51.2 C"
    r.s.temp_01c = 490  # inside, within the 2 degree band
    r.tick(60)
    assert r.active("collector_temp")
    r.s.temp_01c = 470
    r.tick(32)
    assert not r.active("collector_temp")
    r.s.temp_01c = -215
    r.tick(12)
    assert r.active("collector_temp") and "-21.5 C" in r.alarms.active()[0]["detail"]


def test_vibration_sensor_dead_while_running_or_disconnected():
    r = Rig()
    r.s.vib_rms_01mv = 5  # 0.5 mV with the motor running
    r.tick(7)
    assert r.active("vibration_sensor_fault")
    r.s.vib_rms_01mv = 180
    r.tick(32)
    assert not r.active("vibration_sensor_fault")
    r.s.di = 0
    r.s.vib_rms_01mv = 0  # motor stopped: silence is right
    r.tick(10)
    assert not r.active("vibration_sensor_fault")
    r.s.status = 0x20
    r.tick(7)
    assert r.active("vibration_sensor_fault")


def test_collector_restart_by_uptime_or_restart_bit():
    r = Rig()
    r.tick(2)
    assert r.states("collector_restarted") == []
    r.s.uptime_s = 3
    r.s.status = 0x100
    r.tick(2)
    assert r.states("collector_restarted") == ["raise"]
    assert r.alarms.active()[0]["detail"].startswith("uptime 3")
    r.s.status = 0  # the driver acknowledged the restart
    r.tick(2)
    r.s.status = 0x100
    r.tick(1)
    assert r.diag.report()["checks"][0]["figures"]["restarts"] == 2


def test_no_false_restart_after_our_own_restart():
    r = Rig()
    r.s.status = 0x100  # never acknowledged
    r.tick(2)
    # The first sample ever with bit 8: a restart.
    assert r.diag.report()["checks"][0]["figures"]["restarts"] == 1
    snap = json.loads(json.dumps(r.diag.snapshot()))
    r2 = Rig()
    r2.diag.restore(snap)
    r2.s.status = 0x100
    r2.s.uptime_s = r.s.uptime_s + 30
    r2.tick(3)
    assert r2.states("collector_restarted") == []
    r3 = Rig()
    r3.diag.restore(snap)
    r3.s.uptime_s = 2  # it did restart while we were down
    r3.tick(2)
    assert r3.states("collector_restarted") == ["raise"]


def test_stuck_cell_while_the_belt_runs():
    r = Rig()
    r.tick(40)
    r.base[2] = 12345
    r.frozen.append(2)
    r.tick(45)
    assert not r.active("cell3_stuck")  # the window from 30 s to 60 s still varied
    r.tick(5)
    assert r.active("cell3_stuck") and not r.active("cell1_stuck")
    r.frozen.remove(2)
    r.tick(25)
    assert r.active("cell3_stuck")
    r.tick(5)
    assert r.states("cell3_stuck") == ["raise", "clear"]


def test_a_still_cell_on_a_stopped_belt_is_not_stuck():
    r = Rig()
    r.s.di = 0
    r.s.freq_centihz = 0
    r.noise = 0
    r.tick(120)
    assert r.states("cell1_stuck") == []


def test_cell_out_of_range_with_hysteresis():
    r = Rig()
    r.base[0] = 345000
    r.tick(3)
    assert r.active("cell1_range")
    r.base[0] = 338000  # inside, but within 1 % of the span from the limit
    r.tick(20)
    assert r.active("cell1_range")
    r.base[0] = 330000
    r.tick(11)
    assert r.states("cell1_range") == ["raise", "clear"]
    r.base[3] = -45000
    r.tick(3)
    assert r.active("cell4_range")


def test_drift_of_one_cell_against_the_others():
    load = {"running": True, "load_pct": 0.5}
    r = Rig(running=lambda: load)
    r.tick(31)  # first empty window: the baseline
    r.tick(31)
    assert r.states("cell2_drift") == []
    for i in range(4):
        r.base[i] += 3000  # a common shift cancels
    r.tick(31)
    assert r.states("cell2_drift") == []
    r.base[1] += 6000
    r.tick(31)
    assert r.active("cell2_drift") and not r.active("cell1_drift")
    r.tick(30)
    figs = [c for c in r.diag.report()["checks"] if c["name"] == "cells"][0]["figures"]
    assert 5900 <= figs["drift"][1] <= 6100
    load["load_pct"] = 60.0  # loaded: no verdicts
    r.base[1] -= 6000
    r.tick(62)
    assert r.active("cell2_drift")
    load["load_pct"] = 0.0
    r.tick(31)
    assert r.states("cell2_drift") == ["raise", "clear"]


def test_rebaseline_after_zero_calibration_clears_drift():
    load = {"running": True, "load_pct": 0.0}
    r = Rig(running=lambda: load)
    r.tick(31)
    r.base[0] += 9000
    r.tick(31)
    assert r.active("cell1_drift")
    r.diag.rebaseline_cells()
    assert not r.active("cell1_drift")
    r.tick(62)
    assert r.states("cell1_drift") == ["raise", "clear"]


def _link(**kw):
    d = {
        "state": "ok",
        "requests": 0,
        "responses": 0,
        "timeouts": 0,
        "crc_errors": 0,
        "exceptions": 0,
        "latency_ms_sum": 0,
        "latency_ms_max": 40,
        "consecutive_failures": 0,
    }
    d.update(kw)
    return d


class Counters:
    """A collector driver's cumulative link counters, advanced per second."""

    def __init__(self):
        self.d = _link()
        self.err_per_100 = 0
        self.latency_ms = 20  # of every answer this second

    def __call__(self):
        d = self.d
        d["requests"] += 10
        self._acc = getattr(self, "_acc", 0) + self.err_per_100 * 10
        errors = self._acc // 100
        d["timeouts"] += errors
        d["responses"] += 10 - errors
        d["latency_ms_sum"] += (10 - errors) * self.latency_ms
        self._acc %= 100
        return d


def test_link_lost_and_degraded():
    link = Counters()
    r = Rig(link=link)
    r.tick(30)
    assert r.states("collector_link_lost") == r.states("collector_link_degraded") == []
    link.err_per_100 = 10  # 10 % errors: the minute's rate passes 5 % within 30 s
    r.tick(38)
    assert not r.active("collector_link_degraded")
    r.tick(4)
    assert r.active("collector_link_degraded")
    assert r.alarms.active()[0]["detail"] == "errors 8.0%"
    link.err_per_100 = 0
    r.tick(130)
    assert r.states("collector_link_degraded") == ["raise", "clear"]
    link.latency_ms = 400  # the minute's mean passes 200 ms within 40 s
    r.tick(52)
    assert r.active("collector_link_degraded")
    link.latency_ms = 20
    r.tick(100)
    assert not r.active("collector_link_degraded")
    # Lost: its timeouts do not count as degradation once it is back.
    link.d["state"] = "lost"
    link.err_per_100 = 100
    r.tick(4, samples=False)
    assert r.active("collector_link_lost")
    link.d["state"] = "ok"
    link.err_per_100 = 0
    r.tick(40)
    assert r.states("collector_link_lost") == ["raise", "clear"]
    assert r.states("collector_link_degraded") == ["raise", "clear", "raise", "clear"]


def test_a_bad_link_lost_now_and_then_is_degraded():
    # Half the answers bad: the driver calls the link lost for an instant whenever three
    # attempts in a row fail. Those instants neither empty the minute nor hold the alarm
    # off, and they are too short for collector_link_lost.
    link = Counters()
    r = Rig(link=link)
    r.tick(30)
    link.err_per_100 = 50
    for k in range(14):
        link.d["state"] = "lost" if k % 3 == 0 else "degraded"
        r.tick(1)
    assert r.active("collector_link_degraded")
    assert r.states("collector_link_lost") == []
    assert r.diag.report()["checks"][0]["figures"]["err_pct"] > 5

def test_link_latency_is_the_last_minutes_not_the_lifetime_mean():
    # An hour of fast answers must not hide a collector that turns slow, nor keep the
    # alarm up long after it is fast again.
    link = Counters()
    r = Rig(link=link, p=params(link_latency_ms=50))
    link.latency_ms = 5
    r.tick(3600, samples=False)
    assert r.states("collector_link_degraded") == []
    link.latency_ms = 80  # every answer: the minute's mean passes 50 ms within 40 s
    r.tick(35)
    assert not r.active("collector_link_degraded")
    r.tick(25)
    assert r.active("collector_link_degraded")
    assert r.alarms.active()[0]["detail"].startswith("latency ")
    assert r.diag.report()["checks"][0]["figures"]["lat_ms"] > 50
    link.latency_ms = 5  # <= 40 ms (80 %) within 45 s, then the 60 s clear delay
    r.tick(60)
    assert r.active("collector_link_degraded")
    r.tick(50)
    assert r.states("collector_link_degraded") == ["raise", "clear"]

def test_link_counters_reset_by_the_driver():
    link = Counters()
    r = Rig(link=link)
    r.tick(10)
    link.d["requests"] = 0
    link.d["timeouts"] = 0
    r.tick(30)
    assert r.states("collector_link_degraded") == []


def test_flash_low():
    store = {"free_bytes": 10 << 20, "write_errors": 0, "corrupt_found": 0, "pending": 3}
    r = Rig(store=lambda: store)
    r.tick(5)
    store["free_bytes"] = 900 * 1024
    r.tick(11)
    assert r.active("flash_low")
    store["free_bytes"] = 1100 * 1024  # within 10 % above the limit: stays
    r.tick(70)
    assert r.active("flash_low")
    store["free_bytes"] = 1200 * 1024
    r.tick(61)
    assert r.states("flash_low") == ["raise", "clear"]


def test_upload_down_and_backlog():
    up = {"state": "connected", "connected": True, "acked": 100, "backlog": 0}
    r = Rig(params(upload_down_s=60, backlog_records=1000), uplink=lambda: up)
    r.tick(5)
    up["connected"] = False
    r.tick(59)
    assert not r.active("upload_down")
    r.tick(3)
    assert r.active("upload_down")
    up["connected"] = True
    up["acked"] = 200
    r.tick(31)
    assert r.states("upload_down") == ["raise", "clear"]
    # Connected, records waiting, no ACK: as good as down.
    up["backlog"] = 50
    r.tick(62)
    assert r.active("upload_down") and "no ACK" in r.alarms.active()[0]["detail"]
    up["acked"] = 300
    up["backlog"] = 1001
    r.tick(61)
    assert r.active("upload_backlog") and not r.active("upload_down")
    up["backlog"] = 950  # within 10 % below the limit: stays
    r.tick(70)
    assert r.active("upload_backlog")
    up["backlog"] = 800
    r.tick(61)
    assert r.states("upload_backlog") == ["raise", "clear"]


class FakeLoop:
    def __init__(self):
        self.jobs = {"poll": {"errors": 0, "overruns": 0, "period_ms": 100}}
        self.max_late_ms = 0

    def stats(self):
        return self.jobs

    def stalled(self, now):
        return []


def test_loop_overruns_and_job_failures():
    loop = FakeLoop()
    r = Rig(loop=loop)
    r.tick(5)
    loop.jobs["poll"]["overruns"] += 2
    r.tick(2)
    assert not r.active("loop_overrun")  # two in a minute: tolerated
    loop.jobs["poll"]["overruns"] += 1
    r.tick(2)
    assert r.active("loop_overrun")
    r.tick(50)
    assert r.active("loop_overrun")
    r.tick(20)
    assert r.states("loop_overrun") == ["raise", "clear"]
    loop.jobs["uplink"] = {"errors": 1, "overruns": 0, "period_ms": 1000}
    r.tick(1)
    assert r.active("job_failed") and r.alarms.active()[0]["detail"] == "uplink"


def test_memory_low():
    mem = [200000]
    r = Rig(params(mem_free_min_kib=64), mem_free=lambda: mem[0])
    r.tick(11)
    mem[0] = 60 * 1024
    r.tick(25)
    assert r.active("memory_low")
    mem[0] = 70 * 1024  # within 25 % above: stays
    r.tick(80)
    assert r.active("memory_low")
    mem[0] = 90 * 1024
    r.tick(80)
    assert r.states("memory_low") == ["raise", "clear"]


def test_overproduction_day_and_month():
    prod = {"day_t": 0.0, "month_t": 0.0}
    r = Rig(params(day_limit_t=5000.0, month_limit_t=100000.0), production=lambda: prod)
    prod["day_t"] = 5000.0
    r.tick(2)
    assert not r.active("overproduction_day")
    prod["day_t"] = 5000.5
    prod["month_t"] = 100001.0
    r.tick(1)
    assert r.active("overproduction_day") and r.active("overproduction_month")
    prod["day_t"] = 3.0  # a new day
    r.tick(1)
    assert r.states("overproduction_day") == ["raise", "clear"]
    assert r.active("overproduction_month")


def test_overproduction_off_when_limit_zero():
    prod = {"day_t": 1e9, "month_t": 1e9}
    r = Rig(production=lambda: prod)
    r.tick(3)
    assert r.states("overproduction_day") == r.states("overproduction_month") == []


def test_clock_not_set_stepped_and_backwards():
    r = Rig()
    r.tick(3)
    r.clock.set_time(r.clock.time() + 3600)
    r.tick(1)
    assert r.states("clock_stepped") == ["raise"]
    assert r.alarms.active()[0]["detail"] == "+3600 s"
    r.clock.set_time(r.clock.time() - 120)
    r.tick(1)
    assert r.active("clock_backwards")
    r.tick(110)
    assert r.active("clock_backwards")
    r.tick(10)
    assert r.states("clock_backwards") == ["raise", "clear"]
    r.clock.set_time(1000.0)
    r.tick(1)
    assert r.active("clock_not_set")
    r.clock.set_time(1767300000.0)
    r.tick(1)
    assert r.states("clock_not_set") == ["raise", "clear"]


def test_a_clock_set_is_stepped_at_once_and_once():
    # The app tells of a time_sync as it applies it: raised even if the gateway restarts
    # before the next check run, and the run after it sees no second step.
    r = Rig()
    r.tick(3)
    step = (r.clock.time() + 30.4) - r.clock.time()
    r.clock.set_time(r.clock.time() + step)
    r.diag.clock_set(step)
    assert r.states("clock_stepped") == ["raise"]
    assert r.alarms.active()[0]["detail"] == "+30 s"
    r.tick(3)
    r.clock.set_time(r.clock.time() - 3)
    r.diag.clock_set(-3)  # within alarms.clock_step_s: not a step
    r.tick(700)
    assert r.states("clock_stepped") == ["raise", "clear"]
    clear = [f for t, f in r.records if t == "alarm" and f["code"] == "clock_stepped"][-1]
    assert clear["detail"] == ""  # one occurrence, not "x2"

def test_clock_jitter_is_not_a_step():
    r = Rig()
    for _ in range(30):
        r.clock.set_time(r.clock.time() + 1.4)
        r.tick(1)
        r.clock.set_time(r.clock.time() - 1.4)
        r.tick(1)
    assert r.states("clock_stepped") == []


def test_watchdog_reset_at_start():
    r = Rig(reset_cause="watchdog")
    assert r.active("watchdog_reset")
    assert Rig(reset_cause="other").alarms.active() == []


def test_samples_stopping_keeps_sample_alarms():
    r = Rig()
    r.s.di = 3
    r.tick(3)
    r.tick(30, samples=False)
    assert r.active("mains_lost")


def test_report_full_and_compact():
    link = Counters()
    store = {"free_bytes": 50 << 20, "write_errors": 0, "corrupt_found": 0, "pending": 12}
    up = {"state": "connected", "connected": True, "acked": 1, "backlog": 3}
    prod = {"day_t": 1234.5, "month_t": 23456.7}
    loop = FakeLoop()
    slots = _MemSlots()
    clock_rig = Rig()  # only for its clock-independent parts
    ident = Identity(clock_rig.alarms, slots, clock_rig.clock, 77)
    r = Rig(
        link=link,
        store=lambda: store,
        uplink=lambda: up,
        loop=loop,
        production=lambda: prod,
        running=lambda: {"running": True, "load_pct": 50.0},
        mem_free=lambda: 150000,
        identity=ident,
    )
    rep = r.diag.report()
    assert rep["summary"]["result"] == "warn"  # no samples yet
    r.tick(20)
    rep = r.diag.report()
    assert [c["name"] for c in rep["checks"]] == [
        "link", "collector", "cells", "speed", "vibration", "power", "storage", "clock",
        "uplink", "gateway", "production", "identity",
    ]
    assert all(c["result"] == "pass" for c in rep["checks"])
    assert rep["summary"] == {"result": "pass", "alarms": 0, "uptime_s": 20}
    figs = {c["name"]: c["figures"] for c in rep["checks"]}
    assert figs["collector"]["supply_mv"] == 12000 and figs["speed"]["freq_hz"] == 250.0
    assert figs["storage"]["pending"] == 12 and figs["production"]["day_t"] == 1234.5
    assert figs["link"]["lat_ms"] == 20 and figs["gateway"]["mem_kib"] == 146
    assert figs["identity"]["device_id"] == 77
    small = r.diag.report(compact=True)
    assert small["pass"].startswith("link,collector,cells")
    assert len(json.dumps(small)) < 300
    r.s.status = 0x01
    r.s.di = 3
    r.tick(3)
    small = r.diag.report(compact=True)
    assert small["result"] == "fail"
    assert list(small["fail"]) == ["cells"] and list(small["warn"]) == ["power"]
    assert small["warn"]["power"]["battery"] == 1
    assert len(json.dumps(small)) < 400


def test_diag_record_every_ten_minutes():
    r = Rig()
    r.tick(599)
    assert [t for t, _ in r.records if t == "diag"] == []
    r.tick(2)
    diags = [f for t, f in r.records if t == "diag"]
    assert len(diags) == 1 and diags[0]["detail"]["result"] == "pass"
    assert len(json.dumps(diags[0])) < 300
    r.tick(600)
    assert len([t for t, _ in r.records if t == "diag"]) == 2


def test_snapshot_restore_round_trip():
    load = {"running": True, "load_pct": 0.0}
    r = Rig(running=lambda: load)
    r.tick(31)
    snap = json.loads(json.dumps(r.diag.snapshot()))
    assert snap["base"] is not None and snap["hwm"] >= 1767225600
    r2 = Rig(running=lambda: load)
    r2.diag.restore(snap)
    r2.base = list(r.base)
    r2.base[3] += 8000
    r2.tick(31)
    assert r2.active("cell4_drift")  # judged against the restored baseline
    r2.diag.restore("garbage")
    r2.diag.restore({"base": [1, 2], "uptime": "x"})


# A checkpoint's diag part as the firmware before the checks were split wrote it (the
# slot on flash may come from a deployed unit): 45 s of an empty running belt, the
# center unreachable, collector uptime 145 s, config_counter 5.
_OLD_SNAPSHOT = (
    '{"base": [10003, 11002, 12003, 13002], "down_ms": 45000, "hwm": 1767225645, '
    '"identity": {"cc": 5}, "uptime": 145}'
)


def test_a_snapshot_of_the_old_firmware_restores():
    old = json.loads(_OLD_SNAPSHOT)
    load = {"running": True, "load_pct": 0.0}
    up = {"state": "connecting", "connected": False, "acked": 1, "backlog": 0}
    r = Rig(params(upload_down_s=60), running=lambda: load, uplink=lambda: up)
    r.diag.identity = Identity(r.alarms, _MemSlots(), r.clock, 77)
    r.diag.restore(old)
    assert r.diag.snapshot() == old
    r.clock.set_time(1767225645 - 100)  # behind the restored latest time
    r.s.uptime_s = 140  # below the restored uptime: the collector restarted meanwhile
    r.s.config_counter = 6  # changed meanwhile
    r.base[2] += 9000  # against the restored baseline
    r.tick(16)  # 45 s down before, 16 s now: past upload_down_s
    assert r.active("clock_backwards")
    assert r.states("collector_restarted") == ["raise"]
    assert r.states("collector_config_changed") == ["raise"]
    assert r.active("upload_down")
    assert not r.active("cell3_drift")
    r.tick(15)
    assert r.active("cell3_drift")


def test_on_sample_does_not_allocate():
    lock, unlock = heap_lock()
    r = Rig()
    r.tick(1)
    s = r.s
    r.diag.on_sample(s)
    lock()
    try:
        for _ in range(50):
            r.diag.on_sample(s)
    finally:
        unlock()


class _MemSlots:
    def __init__(self):
        self.obj = None

    def load(self):
        return self.obj

    def save(self, obj):
        self.obj = obj


def test_crosscheck_learning_state_in_the_report_and_its_alarm_fails_it():
    from gateway.health.alarms import TABLE
    from gateway.power.energy import ALARMS

    TABLE.update(ALARMS)  # the power side's rows, as with terminals
    st = {"state": "learning", "hours": 3.14159, "kwh_per_t": 0.123456, "fit_pct": 2.345,
          "dev_pct": None, "paused": None}
    r = Rig()
    r.diag.crosscheck = lambda: st
    r.tick(5)
    small = r.diag.report(compact=True)
    assert small["crosscheck"] == {"state": "learning", "h": 3.14, "kwh_per_t": 0.1235,
                                   "fit_pct": 2.3, "dev_pct": None, "paused": None}
    assert "crosscheck" in small["pass"]
    r.alarms.set("output_power_mismatch", True, "scale under-reads by 20.0 %")
    r.tick(2)
    small = r.diag.report(compact=True)
    assert small["result"] == "fail" and small["fail"]["crosscheck"]["state"] == "learning"
    full = r.diag.report()
    assert [c["result"] for c in full["checks"] if c["name"] == "crosscheck"] == ["fail"]
