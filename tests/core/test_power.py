# The power side (gateway/power/energy.py) over the terminals' driver and a fake bus whose
# energy registers count what the power draws: power records per interval held to the
# register, energy the readings missed coming back as adj_kwh, kWh per tonne in prod and
# total records, tariffs in the day total, every power alarm, and a restart that neither
# loses nor counts twice. Runs under pytest and on MicroPython.
from drivers import meters as mt
from gateway.power.energy import Power
from hal.virtualclock import VirtualClock
from tests.core.fakeline import FakeLine
from tests.core.fakemeter import Bus, Terminal

BELT = "000000000012"
MINE = "000000000034"
_P = 0x02030000
_E = 0x00010000
_PARAMS = {"alarms.voltage_dev_pct": 7.0, "alarms.pf_min": 0.85, "alarms.thd_v_max_pct": 5.0,
           "alarms.freq_dev_hz": 0.5, "alarms.drive_run_kw": 5.0}
_NORMAL = {0x02010100: 2200, 0x02010200: 2210, 0x02010300: 2190, 0x02020100: 3000,
           0x02020200: 3000, 0x02020300: 3000, 0x02060000: 950, 0x02800002: 5000,
           0x02080100: 150, 0x02080200: 150, 0x02080300: 150}


class Alarms:
    def __init__(self):
        self.state = {}
        self.raised = []

    def __call__(self, code, active, detail=""):
        if active and not self.state.get(code):
            self.raised.append(code)
        self.state[code] = bool(active)


class Rig:
    def __init__(self, clock=None):
        self.clock = clock or VirtualClock()
        belt = Terminal(BELT, {_P: 15000, _E: 1000})  # 1.5 kW secondary
        mine = Terminal(MINE, {_P: 30000, _E: 7000})
        for f in (belt, mine):
            f.values.update(_NORMAL)
        self.fakes = [belt, mine]
        self._acc = [0, 0]
        self.line = FakeLine(self.clock, Bus(self.fakes))
        cfg = [{"address": BELT, "role": "belt_drive", "ct_ratio": 100.0, "pt_ratio": 1.0,
                "nominal_v": 220.0},
               {"address": MINE, "role": "mine_total", "ct_ratio": 200.0, "pt_ratio": 10.0,
                "nominal_v": 220.0}]
        self.meters = mt.Meters(self.line, self.clock, cfg)
        self.records = []
        self.alarms = Alarms()
        self.belt_state = "running"
        self.power = Power(self.meters, self._emit, self.alarms, lambda: self.belt_state,
                           _PARAMS)
        self.t = 0  # interval start, s since the clock's start

    def _emit(self, rtype, fields):
        self.records.append((rtype, fields))

    def restart(self, snap, tail):
        """The next start after a cut: the same clock and terminals, the checkpoint snap,
        then the log's tail."""
        r2 = Rig(self.clock)
        r2.fakes = self.fakes
        r2.line.slave = self.line.slave
        r2.t = self.t
        r2.power.restore(snap)
        r2.power.adopt(tail)
        return r2

    def spin(self, ms, step=10, checks=True):
        c = self.clock
        for _ in range(ms // step):
            for k, f in enumerate(self.fakes):
                # The register counts what the power draws (0.01 kWh = 3.6e8 of 0.1 W.ms).
                self._acc[k] += max(0, f.values[_P]) * step
                d = self._acc[k] // 360000000
                f.values[_E] += d
                f.values[0x00010200] += d  # all of it at the peak tariff
                self._acc[k] %= 360000000
            now = c.ticks_ms()
            self.meters.run(now)
            if checks and now % 1000 < step:
                self.power.run(now)
            c.advance_ms(step)

    def interval(self, s=60, mass_g=100000000):
        self.spin(s * 1000)
        t0 = self.t
        self.t += s
        return self.power.close_interval(t0, self.t, mass_g, float(s), 150.0, False, False)

    def power_records(self):
        return [f for rt, f in self.records if rt == "power"]


def test_power_records_and_kwh_per_t():
    r = Rig()
    r.interval()  # the first: readings start, the register gives the base
    r.records = []
    fields = r.interval(60, 100000000)  # 100 t
    recs = r.power_records()
    assert [x["address"] for x in recs] == [BELT, MINE]
    b = recs[0]
    # 1.5 kW x CT 100 = 150 kW for 60 s = 2.5 kWh; the register's step is 1 kWh primary.
    assert abs(b["kwh"] - 2.5) <= 1.0 + 0.01, b
    assert abs(b["kw_mean"] - 150.0) < 0.01 and abs(b["kw_max"] - 150.0) < 0.01
    assert b["role"] == "belt_drive" and b["n"] >= 25 and b["state"] == "ok"
    assert b["v"] == [220.0, 221.0, 219.0] and b["a"] == [300.0, 300.0, 300.0]
    assert b["pf"] == 0.95 and b["hz"] == 50.0 and b["thd_v"] == 1.5
    m = recs[1]
    assert abs(m["kw_mean"] - 3.0 * 2000) < 0.1 and m["v"][0] == 2200.0
    assert fields == {"kwh": b["kwh"], "kwh_per_t": round(b["kwh"] / 100, 3)}


def test_interval_energy_sums_to_the_register():
    r = Rig()
    r.interval()
    base = r.meters.terminals[0].cum[mt.REG_E]
    r.records = []
    for k in range(10):
        r.fakes[0].values[_P] = 5000 + 2000 * k  # a changing load
        r.interval(37)
    total = sum(x["kwh"] for x in r.power_records() if x["address"] == BELT)
    reg = (r.meters.terminals[0].cum[mt.REG_E] - base) * 100 / 100  # 0.01 kWh x CT 100
    assert abs(total - reg) <= 1.0 + 0.01, (total, reg)  # within one register step


def test_energy_the_readings_missed_comes_back_as_adj_kwh():
    r = Rig()
    r.interval()
    r.interval()
    r.records = []
    r.fakes[0].silent = True
    for _ in range(3):
        r.interval(60)  # the belt drive unread: its energy is not known yet
    lost = r.power_records()[0]
    assert lost["n"] == 0 and lost["kwh"] == 0 and lost["state"] == "lost"
    r.fakes[0].silent = False
    r.records = []
    r.interval(60)
    back = r.power_records()[0]
    # This interval's 2.5 kWh and the 7.5 missed (readings too far apart to integrate
    # across), from the register.
    assert 9.0 <= back["kwh"] <= 11.0 and back["adj_kwh"] >= 6.0, back


def test_period_totals_with_kwh_per_t_and_day_tariffs():
    r = Rig()
    for f in r.fakes:
        f.values[0x00010100] = 100
        f.values[0x00010200] = 2000
    r.interval()
    r.spin(20000)  # every tariff register read once: the day's start
    r.power.close_period("shift", 1)  # drop what came before the readings' base
    r.power.close_period("day", 1)
    for _ in range(3):
        r.interval(60)
    r.spin(20000)
    shift = r.power.close_period("shift", 50000000)  # 50 t
    day = r.power.close_period("day", 50000000)
    b = [x["kwh"] for x in r.power_records() if x["address"] == BELT][1:]
    assert abs(shift["kwh"] - sum(b)) < 0.01 and shift["kwh_per_t"] == round(shift["kwh"] / 50, 3)
    assert "mine_kwh" in shift and shift["mine_kwh_per_t"] == round(shift["mine_kwh"] / 50, 3)
    t = day["tariff_kwh"]
    assert t[0] == t[2] == t[3] == 0.0 and abs(t[1] - day["kwh"]) <= 2.0, (t, day)
    assert day["mine_tariff_kwh"][1] > 0
    assert "tariff_kwh" not in shift


def test_restart_after_a_cut_between_records_and_checkpoint():
    r = Rig()
    r.interval()
    r.interval()
    snap = r.power.snapshot()  # the checkpoint
    r.records = []
    r.interval(60)  # its records reach the log, then the power is cut
    tail = [dict(f, type="power") for f in r.power_records()]
    written = tail[0]["kwh"]
    r2 = r.restart(snap, tail)
    # production closes it again
    again = r2.power.close_interval(r.t - 60, r.t, 100000000, 60.0, 150.0, False, False)
    assert r2.power_records() == [] and again["kwh"] == written  # not written twice
    r2.interval(60)
    nxt = r2.power_records()[0]
    assert 1.5 <= nxt["kwh"] <= 3.5, nxt  # one interval's energy, not two


def _settle(r, s=90):
    r.spin(s * 1000)
    return r.alarms.state


def test_alarms_voltage_phase_thd_frequency_pf():
    r = Rig()
    st = _settle(r)
    for code in ("voltage_deviation", "phase_loss", "voltage_thd_high", "power_factor_low",
                 "frequency_out_of_range", "meter_link_lost"):
        assert st.get(code) is False, code
    mine = r.fakes[1].values
    mine[0x02010200] = 2400  # +9 %
    assert _settle(r)["voltage_deviation"]
    mine[0x02010200] = 500  # a phase lost
    st = _settle(r)
    assert st["phase_loss"] and not st["voltage_deviation"]
    mine[0x02010200] = 2200
    mine[0x02080300] = 620
    assert _settle(r)["voltage_thd_high"] and not r.alarms.state["phase_loss"]
    mine[0x02080300] = 150
    mine[0x02800002] = 4920
    assert _settle(r)["frequency_out_of_range"] and not r.alarms.state["voltage_thd_high"]
    mine[0x02800002] = 4990
    mine[0x02060000] = 700
    assert _settle(r)["power_factor_low"] and not r.alarms.state["frequency_out_of_range"]
    mine[0x02020100] = mine[0x02020200] = mine[0x02020300] = 100  # no load: PF means nothing
    assert not _settle(r)["power_factor_low"]


def test_alarm_terminal_link_lost_and_replaced():
    r = Rig()
    _settle(r, 10)
    r.fakes[1].silent = True
    st = _settle(r, 60)
    assert st["meter_link_lost"]
    r.fakes[1].silent = False
    assert not _settle(r, 60)["meter_link_lost"]
    r.fakes[0].values[_E] = 3  # cleared
    _settle(r, 10)
    assert "meter_replaced" in r.alarms.raised
    assert ("event", "meter_cleared") in [(rt, f["code"]) for rt, f in r.records
                                           if rt == "event"]


def test_alarms_drive_power_against_the_belt_state():
    r = Rig()
    r.belt_state = "stopped"
    assert _settle(r, 20)["drive_power_belt_stopped"]  # 150 kW with the belt stopped
    r.belt_state = "running"
    st = _settle(r, 20)
    assert not st["drive_power_belt_stopped"] and not st["belt_running_no_drive_power"]
    r.fakes[0].values[_P] = 200  # 2 kW primary: the drive is not turning the belt
    assert _settle(r, 20)["belt_running_no_drive_power"]
    r.fakes[0].silent = True  # no fresh power: no judgement
    assert not _settle(r, 30)["belt_running_no_drive_power"]


def test_out_of_memory_while_closing_loses_no_energy_and_writes_nothing_twice():
    r = Rig()
    r.interval()
    r.interval()
    r.records = []
    emit = r.power.emit
    calls = []

    def full(rtype, fields):
        calls.append(fields["address"])
        if len(calls) == 2:
            raise MemoryError("no room")  # the mine total's record finds no room
        emit(rtype, fields)

    r.power.emit = full
    r.spin(60000)
    t0 = r.t
    r.t += 60
    # the prod record goes on
    assert r.power.close_interval(t0, r.t, 100000000, 60.0, 150.0, False, False) is None
    assert r.power.errors == 1
    assert [x["address"] for x in r.power_records()] == [BELT]
    # Production closes the same interval again at its next tick: only the missing record.
    fields = r.power.close_interval(t0, r.t, 100000000, 60.0, 150.0, False, False)
    assert [x["address"] for x in r.power_records()] == [BELT, MINE]
    assert fields["kwh"] == r.power_records()[0]["kwh"]
    r.power.emit = emit
    r.records = []
    r.interval(60)
    assert [x["address"] for x in r.power_records()] == [BELT, MINE]
    mine = r.power_records()[1]
    # 6000 kW for 60 s: 100 kWh, within one register step (20 kWh); not two intervals' worth
    assert abs(mine["kwh"] - 100.0) <= 20.0 + 0.01, mine


def test_a_total_written_after_the_checkpoint_starts_its_period_afresh():
    r = Rig()
    r.interval()
    r.power.close_period("shift", 1)
    r.interval()
    snap = r.power.snapshot()  # the checkpoint
    r.records = []
    fields = r.interval(60)  # the last interval of the shift...
    shift = r.power.close_period("shift", 100000000)  # ...and its total, then the cut
    tail = [dict(f, type=rt, t=r.t) for rt, f in r.records]
    tail.append({"type": "total", "period": "shift", "t": r.t, "kwh": shift["kwh"]})
    r2 = r.restart(snap, tail)
    assert "shift" not in r2.power.periods  # the written total's energy is not carried on
    assert r2.power.periods["day"][0] > 0 and fields["kwh"] > 0
    r2.interval(60)
    nxt = r2.power.close_period("shift", 100000000)
    belt = [x["kwh"] for x in r2.power_records() if x["address"] == BELT]
    assert abs(nxt["kwh"] - sum(belt)) < 0.01  # this shift: only what came after the cut
