# One scenario per alarm code of the checks: the emulator's belt model feeds Samples at
# 10 Hz through the real loop, link/store/uplink figures are synthetic; each cause
# raises its code and, once gone, the code clears. Figures hovering at a threshold
# with noise raise at most once and never flap.
import json
import random

import pytest

from drivers import collector
from emulator.belt import PROFILES, Belt
from gateway import config
from gateway.health.alarms import Alarms
from gateway.health.diag import Diagnostics
from gateway.health.identity import Identity
from gateway.loop import Loop
from hal.virtualclock import VirtualClock

_CFG = {
    "device_id": 77,
    "key_file": "/k",
    "data_dir": "/d",
    "collector": {"port": "socket://127.0.0.1:5020", "identity_s": 300},
    "center": {"host": "127.0.0.1", "port": 7000},
}
_SENSORS = [40001, 40002, 40003, 40004, 40005, 40006, 40007]


class _Sample(collector.Sample):
    def __init__(self):
        super().__init__()
        self.supply_mv = 12000  # a healthy collector: 12 V, 25.0 degC
        self.temp_01c = 250


class _Slots:
    def __init__(self):
        self.obj = None

    def load(self):
        return self.obj

    def save(self, obj):
        self.obj = json.loads(json.dumps(obj))


class _Poll:
    """The collector as the driver would see it: one published block per 100 ms."""

    name = "poll"

    def __init__(self, sc):
        self.sc = sc

    def run(self, now_ms):
        sc = self.sc
        b = sc.belt
        b.advance(0.1)
        link = sc.link
        link["requests"] += 1
        sc.err_acc += sc.error_pct
        if sc.err_acc >= 100:
            sc.err_acc -= 100
            link["timeouts"] += 1
        if sc.link_lost:
            link["state"] = "lost"
            link["consecutive_failures"] += 1
            link["timeouts"] += 1
            return
        link["state"] = "ok"
        link["consecutive_failures"] = 0
        link["responses"] += 1
        link["latency_ms_sum"] += sc.latency_ms
        s = sc.sample
        s.ticks_ms = now_ms
        s.block_seq = b.block_seq
        for i in range(4):
            s.cells[i] = sc.stuck.get(i, b.cells[i])
        s.pulses = b.pulses
        s.freq_centihz = 0 if sc.speed_dead else int(round(b.speed_freq_hz() * 100))
        s.vib_rms_01mv = 0 if sc.vib_dead else int(round(b.vib_rms_mv * 10))
        if sc.vib_01mv is not None:
            s.vib_rms_01mv = sc.vib_01mv
        s.di = (1 if b.motor_on else 0) | (2 if b.mains_lost else 0)
        status = sc.status_extra
        for i in b.faulty_cells:
            status |= 1 << i
        s.status = status
        s.supply_mv = sc.supply_mv
        s.temp_01c = sc.temp_01c
        s.uptime_s = sc.uptime0 + int(b.t)
        s.config_counter = sc.config_counter
        sc.diag.on_sample(s)


class _IdentityRead:
    name = "identity"

    def __init__(self, sc):
        self.sc = sc

    def run(self, now_ms):
        sc = self.sc
        if not sc.link_lost:
            sc.diag.on_identity(
                {"vendor_id": 7, "model": 3, "serial": sc.serial, "fw_version": sc.fw,
                 "sensors": list(sc.sensors)}
            )


class _Hog:
    """A job that sometimes takes far too long."""

    name = "hog"

    def __init__(self, clock):
        self.clock = clock
        self.hang_ms = 0
        self.fail = False

    def run(self, now_ms):
        if self.hang_ms:
            self.clock.advance_ms(self.hang_ms)
        if self.fail:
            self.fail = False
            raise RuntimeError("hog broke once")


class Scenario:
    def __init__(self, profile="steady", alarms=None, reset_cause=None, seed=3):
        cfg = json.loads(json.dumps(_CFG))
        cfg["alarms"] = alarms or {}
        self.p = config.validate(cfg)
        self.belt = Belt(seed=seed, profile=PROFILES[profile]())
        self.clock = VirtualClock()
        self.records = []
        self.do1 = []
        self.sample = _Sample()
        # causes, all healthy to begin with
        self.link = {"state": "ok", "requests": 0, "responses": 0, "timeouts": 0,
                     "crc_errors": 0, "exceptions": 0, "latency_ms_sum": 0,
                     "latency_ms_max": 60, "consecutive_failures": 0}
        self.link_lost = False
        self.error_pct = 0
        self.err_acc = 0
        self.latency_ms = 25
        self.stuck = {}
        self.speed_dead = False
        self.vib_dead = False
        self.vib_01mv = None
        self.status_extra = 0
        self.supply_mv = 12000
        self.temp_01c = 250
        self.uptime0 = 1000
        self.config_counter = 12
        self.serial = 9001
        self.fw = 105
        self.sensors = list(_SENSORS)
        self.store = {"free_bytes": 200 << 20, "write_errors": 0, "corrupt_found": 0, "pending": 0}
        self.uplink = {"state": "connected", "connected": True, "acked": 0, "backlog": 0}
        self.mem = 120 * 1024
        self.day_offset_t = 0.0
        # the gateway's side
        self.alarms = Alarms(self.clock, self.emit, self.do1.append, self.p)
        self.identity = Identity(self.alarms, _Slots(), self.clock, 77, self.emit)
        self.loop = Loop(self.clock)
        self.diag = Diagnostics(
            self.alarms, self.p, self.clock, self.emit, self.identity,
            link=lambda: self.link,
            store=lambda: self.store,
            uplink=self._uplink,
            loop=self.loop,
            production=self._production,
            running=self._running,
            mem_free=lambda: self.mem,
            reset_cause=reset_cause,
        )
        self.hog = _Hog(self.clock)
        self.loop.add(_Poll(self), 100)
        self.loop.add(self.diag, 1000, 50)
        self.loop.add(self.alarms, 1000, 60)
        self.loop.add(_IdentityRead(self), self.p["collector.identity_s"] * 1000, 500)
        self.loop.add(self.hog, 1000, 70)
        self.alarms.start()
        self.diag.start()

    def emit(self, rtype, fields):
        self.records.append((rtype, fields))
        return len(self.records)

    def _uplink(self):
        if self.uplink["connected"] and self.uplink["backlog"] == 0:
            self.uplink["acked"] = int(self.clock.time())
        return self.uplink

    def _production(self):
        t = self.belt.true_mass_kg / 1000 - self.day_offset_t
        return {"day_t": t, "month_t": t}

    def _running(self):
        design_kgpm = self.p["scale.design_tph"] / (3.6 * self.p["scale.design_speed_mps"])
        kgpm = self.belt.material_on_frame_kg() / self.belt.weigh_length_m
        return {"running": self.belt.motor_on, "load_pct": 100 * kgpm / design_kgpm}

    def run(self, seconds):
        self.loop.run(int(seconds * 1000))

    def states(self, code):
        return [f["state"] for t, f in self.records if t == "alarm" and f["code"] == code]

    def active(self, code):
        return self.alarms.is_active(code)


def _cause_clear(sc, code, cause, cure, raise_s, clear_s, warmup_s=40):
    sc.run(warmup_s)
    assert sc.states(code) == [], code
    cause(sc)
    sc.run(raise_s)
    assert sc.states(code) == ["raise"], (code, sc.states(code))
    cure(sc)
    sc.run(clear_s)
    assert sc.states(code) == ["raise", "clear"], (code, sc.states(code))


def _set(**kw):
    def apply(sc):
        for k, v in kw.items():
            setattr(sc, k, v)

    return apply


def _restart_collector(sc):
    sc.uptime0 = -int(sc.belt.t)  # uptime starts again from 0
    sc.status_extra |= 0x100


def _acked(sc):
    sc.status_extra &= ~0x100


def _step_clock(seconds):
    def apply(sc):
        sc.clock.set_time(sc.clock.time() + seconds)

    return apply


def _nothing(sc):
    pass


def _set_param(key, value):
    def apply(sc):
        sc.p[key] = value
        sc.diag.apply_params(sc.p)

    return apply


def _new_period(sc):
    sc.day_offset_t = sc.belt.true_mass_kg / 1000


# (code, cause, cure, seconds to raise, seconds to clear, scenario options)
CASES = [
    ("collector_link_lost", _set(link_lost=True), _set(link_lost=False), 5, 12, {}),
    ("collector_link_degraded", _set(error_pct=10), _set(error_pct=0), 60, 130, {}),
    ("collector_link_degraded", _set(latency_ms=400), _set(latency_ms=25), 60, 130, {}),
    ("collector_restarted", _restart_collector, _acked, 2, 600, {}),
    ("collector_adc_fault", _set(status_extra=0x40), _set(status_extra=0), 3, 32, {}),
    ("collector_temp", _set(temp_01c=655), _set(temp_01c=300), 12, 32, {}),
    ("collector_temp", _set(temp_01c=-260), _set(temp_01c=100), 12, 32, {}),
    ("speed_sensor_fault", _set(status_extra=0x10, speed_dead=True),
     _set(status_extra=0, speed_dead=False), 4, 32, {}),
    ("vibration_sensor_fault", _set(status_extra=0x20, vib_dead=True),
     _set(status_extra=0, vib_dead=False), 7, 32, {}),
    ("vibration_sensor_fault", _set(vib_dead=True), _set(vib_dead=False), 7, 32, {}),
    ("mains_lost", lambda sc: setattr(sc.belt, "mains_lost", True),
     lambda sc: setattr(sc.belt, "mains_lost", False), 3, 7, {}),
    ("supply_low", _set(supply_mv=10500), _set(supply_mv=12000), 7, 12, {}),
    ("flash_low", lambda sc: sc.store.update(free_bytes=512 * 1024),
     lambda sc: sc.store.update(free_bytes=64 << 20), 12, 62, {}),
    ("clock_not_set", lambda sc: sc.clock.set_time(86400.0),
     lambda sc: sc.clock.set_time(1767229200.0), 2, 2, {}),
    ("clock_stepped", _step_clock(3600), _nothing, 2, 600, {}),
    ("clock_backwards", _step_clock(-300), _nothing, 2, 300, {}),
    ("upload_down", lambda sc: sc.uplink.update(connected=False),
     lambda sc: sc.uplink.update(connected=True), 62, 32, {"upload_down_s": 60}),
    ("upload_backlog", lambda sc: sc.uplink.update(connected=False, backlog=2500),
     lambda sc: sc.uplink.update(connected=True, backlog=0), 62, 62,
     {"backlog_records": 2000, "upload_down_s": 3600}),
    ("loop_overrun", lambda sc: setattr(sc.hog, "hang_ms", 400),
     lambda sc: setattr(sc.hog, "hang_ms", 0), 10, 70, {}),
    ("job_failed", lambda sc: setattr(sc.hog, "fail", True), _nothing, 2, 600, {}),
    ("memory_low", _set(mem=10 * 1024), _set(mem=64 * 1024), 22, 70, {}),
    # The belt has carried about 6 t after the warm-up; the limit is lowered to 2 t, and
    # the day (month) rolls over.
    ("overproduction_day", _set_param("alarms.day_limit_t", 2.0), _new_period, 2, 2, {}),
    ("overproduction_month", _set_param("alarms.month_limit_t", 2.0), _new_period, 2, 2, {}),
    ("collector_config_changed", _set(config_counter=13), _nothing, 1, 602, {}),
]


@pytest.mark.parametrize(
    "code,cause,cure,raise_s,clear_s,opts",
    CASES,
    ids=[c[0] + "-" + str(i) for i, c in enumerate(CASES)],
)
def test_cause_raises_and_its_end_clears(code, cause, cure, raise_s, clear_s, opts):
    _cause_clear(Scenario(alarms=opts), code, cause, cure, raise_s, clear_s)


@pytest.mark.parametrize("cell", [1, 2, 3, 4])
def test_cell_fault(cell):
    _cause_clear(
        Scenario(),
        "cell%d_fault" % cell,
        lambda sc: sc.belt.faulty_cells.add(cell - 1),
        lambda sc: sc.belt.faulty_cells.discard(cell - 1),
        3,
        32,
    )


@pytest.mark.parametrize("cell", [1, 2, 3, 4])
def test_cell_stuck(cell):
    def cause(sc):
        sc.stuck[cell - 1] = sc.belt.cells[cell - 1]

    _cause_clear(Scenario(), "cell%d_stuck" % cell, cause, lambda sc: sc.stuck.clear(), 60, 31)


@pytest.mark.parametrize("cell", [1, 2, 3, 4])
def test_cell_out_of_range(cell):
    sc = Scenario()
    saved = sc.belt.offsets[cell - 1]

    def cause(sc):
        sc.belt.offsets[cell - 1] = 400000.0

    def cure(sc):
        sc.belt.offsets[cell - 1] = saved

    _cause_clear(sc, "cell%d_range" % cell, cause, cure, 4, 12)


@pytest.mark.parametrize("cell", [1, 2, 3, 4])
def test_cell_drifting_from_the_others(cell):
    sc = Scenario(profile="empty")
    saved = sc.belt.offsets[cell - 1]

    def cause(sc):
        sc.belt.offsets[cell - 1] = saved + 8000

    def cure(sc):
        sc.belt.offsets[cell - 1] = saved

    # Warm-up: the belt comes up to speed and the first empty window is the baseline.
    _cause_clear(sc, "cell%d_drift" % cell, cause, cure, 62, 62, warmup_s=45)
    others = [c for c in (1, 2, 3, 4) if c != cell]
    for c in others:
        assert sc.states("cell%d_drift" % c) == []


def test_loaded_belt_does_not_look_like_drift():
    sc = Scenario(profile="empty_runs")
    sc.run(700)
    for c in (1, 2, 3, 4):
        assert sc.states("cell%d_drift" % c) == []
        assert sc.states("cell%d_stuck" % c) == []


def test_watchdog_reset_is_raised_at_start_and_clears_after_its_hold():
    sc = Scenario(reset_cause="watchdog")
    assert sc.active("watchdog_reset")
    sc.run(601)
    assert sc.states("watchdog_reset") == ["raise", "clear"]


def test_healthy_hour_raises_nothing_and_writes_diag_records():
    sc = Scenario(profile="start_stop")
    sc.run(3601)
    alarms = [f for t, f in sc.records if t == "alarm"]
    assert alarms == []
    diags = [f for t, f in sc.records if t == "diag"]
    assert len(diags) == 6
    assert all(d["detail"]["result"] == "pass" for d in diags)
    assert max(len(json.dumps(d)) for d in diags) < 300
    assert sc.do1 == [False]


# --- identity within one identity cycle


def test_swapped_sensor_is_caught_within_one_identity_cycle_and_cleared_by_registering():
    sc = Scenario()
    sc.run(10)  # commissioning at the first identity read (0.5 s)
    assert sc.identity.registered()["serials"][3] == 40003
    sc.run(100)
    sc.sensors[2] = 49999  # cell 3 replaced
    sc.run(300)
    recs = [f for t, f in sc.records if t == "alarm" and f["code"] == "device_swap"]
    assert recs == [{"code": "device_swap", "state": "raise", "detail": "cell3 40003 -> 49999"}]
    sc.run(600)
    assert sc.states("device_swap") == ["raise"]  # still swapped at every read
    sc.diag.register("cli:zhang")
    assert sc.states("device_swap") == ["raise", "clear"]
    sc.run(600)
    assert sc.states("device_swap") == ["raise", "clear"]


def test_swapped_collector_is_caught_and_the_original_back_clears_it():
    sc = Scenario()
    sc.run(10)
    sc.serial = 9100
    sc.run(300)
    assert sc.states("device_swap") == ["raise"]
    sc.serial = 9001
    sc.run(300)
    assert sc.states("device_swap") == ["raise", "clear"]


def test_collector_settings_change_is_caught_at_the_next_sample():
    sc = Scenario()
    sc.run(20)
    sc.config_counter = 13
    sc.run(1.1)
    assert sc.states("collector_config_changed") == ["raise"]
    assert sc.alarms.active()[0]["detail"] == "config_counter 12 -> 13"


def test_collector_firmware_change_is_caught_within_one_identity_cycle():
    sc = Scenario()
    sc.run(10)
    sc.fw = 106
    sc.run(300)
    assert sc.states("collector_fw_changed") == ["raise"]
    sc.run(600)
    assert sc.states("collector_fw_changed") == ["raise", "clear"]


# --- DO1 and restarts


def test_do1_sounds_for_a_cell_fault_and_stops_when_it_clears():
    sc = Scenario()
    sc.run(10)
    sc.belt.faulty_cells.add(0)
    sc.run(3)
    assert sc.do1 == [False, True]
    sc.belt.faulty_cells.clear()
    sc.run(32)
    assert sc.do1 == [False, True, False]


def test_restart_with_an_active_alarm_neither_raises_it_again_nor_forgets_to_clear_it():
    sc = Scenario()
    sc.run(10)
    sc.belt.mains_lost = True
    sc.run(3)
    snap = {"alarms": sc.alarms.snapshot(), "diag": sc.diag.snapshot()}
    snap = json.loads(json.dumps(snap))
    sc2 = Scenario()
    sc2.belt.mains_lost = True
    sc2.alarms.restore(snap["alarms"])
    sc2.diag.restore(snap["diag"])
    sc2.alarms.start()
    sc2.run(10)
    assert sc2.states("mains_lost") == [] and sc2.active("mains_lost")
    sc2.belt.mains_lost = False
    sc2.run(7)
    assert sc2.states("mains_lost") == ["clear"]


# --- noise at the threshold


NOISY = [
    ("supply_low", "supply", 10800, 250),
    ("collector_temp", "temp", 600, 15),
    ("collector_link_degraded", "latency", 200, 30),
    ("flash_low", "flash", 1024 * 1024, 60 * 1024),
    ("upload_backlog", "backlog", 10000, 600),
    ("memory_low", "mem", 16 * 1024, 2 * 1024),
    ("cell1_range", "cell", 340000, 2000),
    ("vibration_sensor_fault", "vib", 20, 8),
]


@pytest.mark.parametrize("code,what,threshold,noise", NOISY, ids=[n[0] for n in NOISY])
def test_noise_at_the_threshold_does_not_flap(code, what, threshold, noise):
    sc = Scenario(seed=11)
    rng = random.Random(5)
    sc.run(20)

    class _Noisy:
        # The figure wanders about its threshold: a new value every 0.2 to 120 s, so
        # it stays on one side longer than any raise or clear delay now and then.
        name = "noise"
        left_ms = 0
        v = threshold

        def run(self, now_ms):
            self.left_ms -= 200
            if self.left_ms <= 0:
                self.left_ms = rng.choice((200, 1000, 5000, rng.uniform(0, 120000)))
                self.v = threshold + rng.uniform(-noise, noise)
            v = self.v
            if what == "supply":
                sc.supply_mv = int(v)
            elif what == "temp":
                sc.temp_01c = int(v)
            elif what == "latency":
                sc.latency_ms = int(v)
            elif what == "flash":
                sc.store["free_bytes"] = int(v)
            elif what == "backlog":
                sc.uplink["backlog"] = int(v)
                sc.uplink["acked"] = now_ms  # acknowledged: only the size matters
            elif what == "mem":
                sc.mem = int(v)
            elif what == "vib":
                sc.vib_01mv = int(v)
            else:
                # Whatever the load on the frame, cell 1 reads about v.
                sc.belt.offsets[0] = v - (sc.belt.cells[0] - sc.belt.offsets[0])

    sc.loop.add(_Noisy(), 200)
    sc.run(1800)
    # It was on the bad side long enough to raise, and never cleared.
    assert sc.states(code) == ["raise"], (code, sc.states(code))
    others = [f for t, f in sc.records if t == "alarm" and f["code"] != code]
    assert others == []
