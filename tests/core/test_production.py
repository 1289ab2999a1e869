# Production: prod intervals, shift/day/month/quarter/year totals in local time, the
# conversion coefficient and its history, clock steps, restarts.
import json

from gateway.calendar import civil_from_days
from gateway.measure.production import Production, period_keys
from hal.virtualclock import VirtualClock
from tests.core.synth import params

T0 = 1767225600  # 2026-01-01 00:00:00 UTC = 08:00 in China


class _Rig:
    def __init__(self, flat=None, start=T0 - 5):
        self.records = []
        self.clock = VirtualClock(start_s=start)
        self.total_g = 0
        self.p = Production(self.emit)
        self.p.apply_params(flat or params())

    def emit(self, rtype, fields):
        self.records.append((rtype, fields))
        return len(self.records)

    def seconds(self, n, g_per_s=0, pulses_per_s=250, run=True):
        """n seconds: 10 polls a second, then the once-a-second tick."""
        for _ in range(n):
            for i in range(10):
                g = g_per_s // 10 + (1 if i < g_per_s % 10 else 0)
                self.total_g += g
                self.p.add(g, 0, pulses_per_s // 10, 1 if run else 0, 0, 0, 0)
                self.clock.advance_ms(100)
            self.tick()

    def tick(self):
        c = self.clock
        self.p.tick(c.time(), c.ticks_ms(), c.ticks_diff, self.total_g, 100.0)

    def of(self, rtype):
        return [f for t, f in self.records if t == rtype]


def test_civil_from_days():
    assert civil_from_days(0) == (1970, 1, 1)
    assert civil_from_days(20454) == (2026, 1, 1)
    assert civil_from_days(11016) == (2000, 2, 29)
    assert civil_from_days(-1) == (1969, 12, 31)
    assert civil_from_days(20513) == (2026, 3, 1)


def test_period_keys_local_time_and_shift_boundaries():
    shifts = [0, 480, 960]  # 00:00, 08:00, 16:00
    keys, nxt = period_keys(T0, 480, shifts)  # 08:00 local on 2026-01-01
    assert keys["shift"][1] == "2026-01-01/2"
    assert keys["day"][1] == "2026-01-01"
    assert keys["month"][1] == "2026-01" and keys["quarter"][1] == "2026-Q1"
    assert keys["year"][1] == "2026"
    assert nxt == T0 + 8 * 3600
    keys, nxt = period_keys(T0 - 1, 480, shifts)
    assert keys["shift"][1] == "2026-01-01/1" and nxt == T0


def test_production_day_starts_with_the_first_shift():
    shifts = [360, 840, 1320]  # 06:00, 14:00, 22:00
    # 2026-01-02 03:00 local belongs to the night shift of the production day 2026-01-01.
    t = T0 - 8 * 3600 + 24 * 3600 + 3 * 3600
    keys, nxt = period_keys(t, 480, shifts)
    assert keys["shift"][1] == "2026-01-01/3"
    assert keys["day"][1] == "2026-01-01"
    assert nxt == T0 - 8 * 3600 + 24 * 3600 + 6 * 3600


def test_prod_records_per_interval():
    r = _Rig()
    r.seconds(5 + 125, g_per_s=200001, pulses_per_s=250)
    prods = r.of("prod")
    bounds = [(T0 - 4, T0), (T0, T0 + 60), (T0 + 60, T0 + 120)]
    assert [(p["t0"], p["t1"]) for p in prods] == bounds
    p = prods[1]
    assert p["mass_g"] == 60 * 200001 and p["mass_kg"] == 60 * 200001 / 1000
    assert p["total_g"] == 65 * 200001 and p["total_kg"] == 65 * 200001 / 1000
    assert p["rate_tph"] == 720.004  # 200.001 kg/s, to 3 decimals
    assert p["speed_mps"] == 2.5 and p["run_s"] == 60.0
    assert p["coef"] == 1.0 and p["conv_kg"] == p["mass_kg"]
    # Interval masses add up to the totalizer, to the gram.
    assert sum(x["mass_g"] for x in prods) == prods[-1]["total_g"]


def test_shift_day_month_totals_close_with_total_records():
    r = _Rig(start=T0 + 8 * 3600 - 30)  # 15:59:30 local
    r.seconds(60, g_per_s=1000)
    totals = r.of("total")
    assert [t["period"] for t in totals] == ["shift"]
    assert totals[0]["key"] == "2026-01-01/2" and totals[0]["mass_g"] == 30000
    st = r.p.status()
    assert st["shift"]["key"] == "2026-01-01/3" and st["shift"]["mass_kg"] == 30.0
    assert st["day"]["mass_kg"] == 60.0 and st["last_shift"]["mass_kg"] == 30.0


def test_year_end_closes_every_period():
    dec31 = 1798761600 - 8 * 3600 - 10  # 2026-12-31 23:59:50 local
    r = _Rig(start=dec31)
    r.seconds(20, g_per_s=500)
    kinds = [t["period"] for t in r.of("total")]
    assert kinds == ["shift", "day", "month", "quarter", "year"]
    assert r.of("total")[-1]["key"] == "2026" and r.of("total")[-1]["mass_g"] == 5000


def test_conversion_coefficient_history_and_future_effect():
    flat = params(production_coef=0.9)
    r = _Rig(flat)
    r.seconds(10, g_per_s=1000)
    assert r.p.coef_ppm == 900000
    flat2 = dict(flat)
    flat2["production.coef"] = 0.8
    flat2["production.coef_from"] = T0 + 20
    r.p.apply_params(flat2)
    r.seconds(30, g_per_s=1000)  # to T0 + 35: 25 s at 0.9, 15 s at 0.8 (from T0 + 20)
    hist = r.p.status()["coef_history"]
    assert [c for t, c in hist] == [0.9, 0.8] and hist[1][0] == T0 + 20
    assert r.p.coef_at(T0 + 19) == 0.9 and r.p.coef_at(T0 + 20) == 0.8
    day = r.p.status()["day"]
    assert day["mass_kg"] == 40.0
    assert day["conv_kg"] == 25 * 0.9 + 15 * 0.8
    ev = [f["detail"] for t, f in r.records if t == "event" and f["code"] == "coef_changed"]
    assert ev[-1]["old"]["production.coef"] == 0.9 and ev[-1]["effective_t"] == T0 + 20
    # Applying the same parameters again (a restart) adds no history.
    r.p.apply_params(flat2)
    r.seconds(2)
    assert len(r.p.status()["coef_history"]) == 2


def test_clock_step_closes_the_interval_at_its_real_length():
    r = _Rig(start=T0 + 10)
    r.seconds(20, g_per_s=100)
    r.clock.set_time(T0 + 3600)
    r.seconds(3, g_per_s=100)
    prods = r.of("prod")
    assert len(prods) == 1 and prods[0]["t0"] == T0 + 11 and prods[0]["t1"] == T0 + 31
    r.clock.set_time(T0 + 100)  # back again
    r.seconds(2, g_per_s=100)
    prods = r.of("prod")
    assert len(prods) == 2 and prods[1]["t0"] == T0 + 3601
    assert sum(p["mass_g"] for p in prods) + r.p.iv["g"] == r.total_g
    # A step back does not reopen the shift it came from.
    assert [t["period"] for t in r.of("total")] == []


def test_restart_mid_interval_neither_loses_nor_doubles():
    r = _Rig(start=T0 - 1)
    r.seconds(25, g_per_s=1000)
    snap = json.loads(json.dumps(r.p.snapshot()))
    r.seconds(5, g_per_s=1000)  # lost with the power
    # Restart: the scale restored too, recounts the 5 s from its checkpoint with the
    # outage's travel in the first poll. Here: 5 s + 10 s down, 15 kg, added at once.
    q = Production(r.emit)
    q.apply_params(params())
    q.restore(snap)
    r.p = q
    r.total_g -= 5000
    r.clock.advance_ms(10000)
    r.total_g += 15000
    q.add(15000, 0, 0, 0, 0, 0, 0)
    r.seconds(40, g_per_s=1000)
    prods = r.of("prod")
    assert [(p["t0"], p["t1"]) for p in prods] == [(T0, T0 + 60)]
    # 25 s checkpointed + 15 s recounted + 21 s to the end: nothing lost, nothing twice.
    assert prods[0]["mass_g"] == 25000 + 15000 + 21000
    assert prods[0]["total_g"] == 61000


def test_restart_after_the_interval_ended_closes_it_first():
    r = _Rig(start=T0 - 1)
    r.seconds(50, g_per_s=1000)
    snap = r.p.snapshot()
    q = Production(r.emit)
    q.apply_params(params())
    q.restore(snap)
    r.p = q
    r.clock.advance_ms(30000)  # came back at T0 + 80
    r.total_g += 30000
    q.add(30000, 0, 0, 0, 0, 0, 0)
    r.seconds(1, g_per_s=1000)
    prods = r.of("prod")
    assert [(p["t0"], p["t1"], p["mass_g"]) for p in prods] == [(T0, T0 + 60, 50000)]
    assert q.iv["t0"] == T0 + 60 and q.iv["g"] == 31000


def test_checkpoint_due_after_a_record():
    r = _Rig(start=T0)
    r.seconds(30)
    r.p.snapshot()
    assert not r.p.checkpoint_due
    r.seconds(31)
    assert r.p.checkpoint_due
    r.p.snapshot()
    assert not r.p.checkpoint_due
