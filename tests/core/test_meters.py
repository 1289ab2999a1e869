# The power terminals' driver (drivers/meters.py) on a fake bus at 2400 baud: the belt
# drive's power and energy kept fresh, every item read round-robin, the bus time per round,
# link state per terminal, registers kept continuous (roll-over, clears, replacement as
# events), no run() that waits. Runs under pytest and on MicroPython.
from drivers import meters as mt
from hal.virtualclock import VirtualClock
from tests.core.fakeline import FakeLine
from tests.core.fakemeter import Bus, Terminal

BELT = "000000000012"


def _cfg(addr, role, ct=1.0, pt=1.0):
    return {"address": addr, "role": role, "ct_ratio": ct, "pt_ratio": pt, "nominal_v": 220.0}


class _Recorded(mt.Meters):
    """The driver, telling the test each reading it takes."""

    on_reading = None

    def _take(self, t, item, value, now_ms):
        super()._take(t, item, value, now_ms)
        self.on_reading(t, item, value, now_ms)


class Rig:
    def __init__(self, n=2, baud=2400):
        self.clock = VirtualClock(ticks_start=(1 << 30) - 5000)  # ticks wrap during the test
        self.fakes = [Terminal(BELT, {0x02030000: 15000, 0x00010000: 1000})]
        cfg = [_cfg(BELT, "belt_drive", 100.0)]
        for i in range(1, n):
            a = "%012d" % (100 + i)
            self.fakes.append(Terminal(a, {0x00010000: 5000}))
            cfg.append(_cfg(a, "mine_total" if i == 1 else "other"))
        self.bus = Bus(self.fakes, baud)
        self.line = FakeLine(self.clock, self.bus)
        self.m = _Recorded(self.line, self.clock, cfg, baud=baud)
        self.readings = []
        self.events = []
        self.m.on_reading = self._reading
        self.m.on_event = lambda code, t, d: self.events.append((code, t.address, d))

    def _reading(self, t, item, v, now):
        self.readings.append((t.address, item, v, now))
        if len(self.readings) > 600:
            self.readings.pop(0)

    def spin(self, ms, step=10):
        c = self.clock
        end = c.ticks_add(c.ticks_ms(), ms)
        while c.ticks_diff(end, c.ticks_ms()) > 0:
            before = c.ticks_ms()
            self.m.run(before)
            assert c.ticks_ms() == before  # a run never waits
            c.advance_ms(step)


def test_belt_drive_fresh_and_round_robin_with_two_terminals():
    r = Rig(2)
    r.spin(60000)
    belt = [(x[1], x[3]) for x in r.readings if x[0] == BELT and x[1] in (mt.P, mt.E)]
    for item in (mt.P, mt.E):
        times = [t for k, t in belt if k == item]
        gaps = [r.clock.ticks_diff(b, a) for a, b in zip(times, times[1:])]
        assert gaps and max(gaps) <= 5000, (item, gaps)
    m = r.m
    assert m.rounds >= 2 and m.round_ms > 0 and 0 < m.round_bus_ms <= m.round_ms
    # Every item of the other terminal was read in the last round.
    other = {x[1] for x in r.readings if x[0] == "000000000101"}
    assert other == set(range(mt.N_ITEMS))
    assert _states(r) == ["ok", "ok"]
    assert m.failures == 0 and m.fast_late == 0


def test_belt_drive_fresh_with_sixteen_terminals():
    r = Rig(16)
    r.spin(150000)
    times = [x[3] for x in r.readings if x[0] == BELT and x[1] == mt.P]
    gaps = [r.clock.ticks_diff(b, a) for a, b in zip(times, times[1:])]
    assert max(gaps) <= 5000
    # 16 x 22 reads of about 0.25 s, and the belt drive's two every 2 s
    assert r.m.rounds >= 1 and 90000 < r.m.round_ms < 140000, r.m.round_ms


def test_silent_terminal_is_lost_the_others_go_on():
    r = Rig(3)
    r.spin(20000)
    r.fakes[2].silent = True
    r.spin(60000)
    states = dict((t.address, t.link.state) for t in r.m.terminals)
    assert states["000000000102"] == "lost"
    assert states[BELT] == "ok" and states["000000000101"] == "ok"
    times = [x[3] for x in r.readings if x[0] == BELT and x[1] == mt.P]
    assert r.clock.ticks_diff(times[-1], times[-10]) <= 9 * 5000
    r.fakes[2].silent = False
    r.spin(60000)
    assert dict((t.address, t.link.state) for t in r.m.terminals)["000000000102"] != "lost"


def test_missing_item_is_not_asked_again():
    r = Rig(2)
    r.fakes[1].missing.add(0x02800002)
    r.spin(40000)
    t = r.m.terminals[1]
    assert t.absent == 1 << mt.F
    asked = [di for a, di in r.bus.log if a == "000000000101" and di == 0x02800002]
    assert len(asked) == 1
    assert t.link.state == "ok"


def _states(r):
    return [t.link.state for t in r.m.terminals]


def _energy(r, k, v):
    r.fakes[k].values[0x00010000] = v


def test_rollover_is_an_event_not_a_jump():
    r = Rig(1)
    _energy(r, 0, 99999990)
    r.spin(3000)
    t = r.m.terminals[0]
    cum = t.cum[mt.REG_E]
    _energy(r, 0, 5)
    r.spin(3000)
    assert t.cum[mt.REG_E] == cum + 15
    assert [e[0] for e in r.events] == ["meter_rollover"]


def test_cleared_or_replaced_terminal_is_an_event_not_consumption():
    r = Rig(1)
    _energy(r, 0, 500000)
    r.spin(3000)
    t = r.m.terminals[0]
    cum = t.cum[mt.REG_E]
    _energy(r, 0, 100)  # cleared
    r.spin(3000)
    _energy(r, 0, 103)
    r.spin(3000)
    assert t.cum[mt.REG_E] == cum + 3
    _energy(r, 0, 90000000)  # another register: more than the circuit can draw
    r.spin(3000)
    assert t.cum[mt.REG_E] == cum + 3
    assert [e[0] for e in r.events] == ["meter_cleared", "meter_cleared"]
    assert r.events[0][2]["from"] == 500000 and r.events[0][2]["to"] == 100


def test_restored_register_takes_the_outage_energy():
    r = Rig(1)
    _energy(r, 0, 1000)
    r.spin(3000)
    t = r.m.terminals[0]
    cum = t.cum[mt.REG_E]
    # As gateway/power/records.restore does after a restart: the registers, no times.
    r2 = Rig(1)
    t2 = r2.m.terminals[0]
    t2.cum[mt.REG_E] = cum
    t2.values[mt.E] = t.values[mt.E]
    t2.have |= 1 << mt.E
    t2.unbounded |= 1 << mt.E
    _energy(r2, 0, 801000)  # 8000 kWh during a long outage: counted, not a clear
    r2.spin(3000)
    assert t2.cum[mt.REG_E] == cum + 800000
    assert r2.events == []


def test_lone_terminal_answering_as_another_is_replaced():
    r = Rig(1)
    r.spin(3000)
    fake = r.fakes[0]
    fake.digits = "000000000077"
    from tests.core.fakemeter import addr_bytes

    fake.addr = addr_bytes(fake.digits)
    r.spin(90000)
    assert r.m.terminals[0].link.state == "lost"
    assert ("meter_replaced", BELT, {"answers_as": "000000000077", "address": BELT}) in r.events


def test_port_errors_do_not_stop_the_schedule():
    r = Rig(2)
    r.line.broken = True
    r.spin(10000)
    assert _states(r) == ["lost", "lost"]
    r.line.broken = False
    r.spin(40000)
    assert _states(r) != ["lost", "lost"]


class _QuietLine:
    """A line that answers each read with the reply prepared for its item, allocating
    nothing (requests with 4 wake-up bytes: the item at bytes 14..17)."""

    def __init__(self, replies):
        self.replies = replies
        self.due = None

    def write(self, data):
        self.due = None
        if len(data) != 20:
            return
        di = 0
        for k in range(4):
            di |= ((data[14 + k] - 0x33) & 0xFF) << (8 * k)
        self.due = self.replies.get(di)

    def readinto(self, buf, timeout_ms):
        r = self.due
        if r is None:
            return 0
        self.due = None
        for k in range(len(r)):
            buf[k] = r[k]
        return len(r)

    def discard_input(self):
        return 0


def test_one_bus_step_allocates_nothing():
    from tests.core.util import heap_lock

    lock, unlock = heap_lock()
    from gateway.power.energy import Power
    from tests.core.fakemeter import ITEMS, addr_bytes, reply

    clock = VirtualClock()
    a = addr_bytes(BELT)
    line = _QuietLine({di: reply(a, di, 1000, n, s, wake=2) for di, (n, s) in ITEMS.items()})
    line.replies[0x02030000] = reply(a, 0x02030000, 15000, 3, True, wake=2)
    m = mt.Meters(line, clock, [_cfg(BELT, "belt_drive", 100.0)])
    params = {"alarms.voltage_dev_pct": 7.0, "alarms.pf_min": 0.85, "alarms.thd_v_max_pct": 5.0,
              "alarms.freq_dev_hz": 0.5, "alarms.drive_run_kw": 5.0}
    pw = Power(m, lambda rt, f: 0, lambda *a: None, lambda: "running", params)
    m.start()
    for _ in range(3):  # warm: the first reading sets the bases
        for _ in range(40):
            m.run(clock.ticks_ms())
            clock.advance_ms(10)
    line.replies[0x02030000] = reply(a, 0x02030000, 15100, 3, True, wake=2)
    m._fast_due = clock.ticks_ms()
    m._fast_step = 0
    reads = m.reads
    lock()
    try:
        for _ in range(40):  # start the read, poll it, take the value into the sums
            m.run(clock.ticks_ms())
            clock.advance_ms(10)
    finally:
        unlock()
    assert m.reads > reads and m.terminals[0].values[mt.P] == 15100
    assert m.terminals[0].sums[mt.P] > 0 and pw.rep == [-1]
