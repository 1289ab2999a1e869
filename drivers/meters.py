# The power-efficiency terminals on the second RS485 port (../shared/specs/power-meter.md):
# the one supervisor of that bus. A loop job; each run() takes what has arrived for the
# transaction in flight, or starts the next one, and returns at once: at 2400 baud a read
# takes a quarter of a second, and the collector's poll must not wait for it.
# The schedule keeps the belt drive's power and energy fresh (every FAST_MS) and reads
# everything else round-robin. Each terminal keeps its latest values and, until its user
# takes them (gateway/power/), the readings' sums, counts and maxima per item and the energy
# its power readings integrate to, all in fixed arrays: a reading allocates nothing.
# Energy registers are kept continuous here (roll-over, a cleared or replaced terminal are
# events through on_event, never consumption).
from array import array

from drivers.link import LinkHealth
from hal.compat import const
from protocols import dlt645 as dlt

# Items, in the datasheet's units: P 0.1 W, E 0.01 kWh, Q 0.1 var, PF 0.001, F 0.01 Hz,
# U 0.1 V, I 0.001 A, THD 0.01 %, EQ 0.01 kvarh, T1..T4 0.01 kWh. All secondary-side.
P = const(0)
E = const(1)
Q = const(2)
PF = const(3)
F = const(4)
UA = const(5)  # UB, UC follow
IA = const(8)  # IB, IC follow
THDU = const(11)  # phase A, B, C
THDI = const(14)
EQ = const(17)
T1 = const(18)  # T2..T4 follow
N_ITEMS = const(22)
# Per item: DI | value bytes << 26 | signed << 29, a small int each even on a 32-bit port
# (every DI here is below 1 << 26; a tuple per item would hold ~1 KB more where code
# lives in RAM).
_BYTES_AT = const(26)
_SIGNED = const(1 << 29)
_DI = const((1 << 26) - 1)
ITEMS = (
    0x02030000 | 3 << _BYTES_AT | _SIGNED,  # P
    0x00010000 | 4 << _BYTES_AT,  # E
    0x02040000 | 3 << _BYTES_AT | _SIGNED,  # Q
    0x02060000 | 2 << _BYTES_AT | _SIGNED,  # PF
    0x02800002 | 2 << _BYTES_AT,  # F
    0x02010100 | 2 << _BYTES_AT,  # UA
    0x02010200 | 2 << _BYTES_AT,  # UB
    0x02010300 | 2 << _BYTES_AT,  # UC
    0x02020100 | 3 << _BYTES_AT | _SIGNED,  # IA
    0x02020200 | 3 << _BYTES_AT | _SIGNED,  # IB
    0x02020300 | 3 << _BYTES_AT | _SIGNED,  # IC
    0x02080100 | 2 << _BYTES_AT,  # THDU A
    0x02080200 | 2 << _BYTES_AT,  # THDU B
    0x02080300 | 2 << _BYTES_AT,  # THDU C
    0x02090100 | 2 << _BYTES_AT,  # THDI A
    0x02090200 | 2 << _BYTES_AT,  # THDI B
    0x02090300 | 2 << _BYTES_AT,  # THDI C
    0x00030000 | 4 << _BYTES_AT,  # EQ
    0x00010100 | 4 << _BYTES_AT,  # T1
    0x00010200 | 4 << _BYTES_AT,  # T2
    0x00010300 | 4 << _BYTES_AT,  # T3
    0x00010400 | 4 << _BYTES_AT,  # T4
)
REG_BITS = const((1 << E) | (1 << EQ) | (0xF << T1))
# The registers kept continuous: E, EQ, T1..T4 (index into Terminal.cum).
REG_ITEMS = (E, EQ, T1, T1 + 1, T1 + 2, T1 + 3)
REG_E = const(0)
REG_EQ = const(1)
REG_T1 = const(2)
_ROLL = const(100000000)  # XXXXXX.XX counts to 999999.99
_ROLL_NEAR = const(1000000)  # a drop from within 10 000 kWh of the top to below that: roll-over
_MAX_SEC_W = const(20000)  # no secondary circuit draws more (3 x 480 V x 6 A with margin)
FAST_MS = const(2000)  # the belt drive's power and energy, at most this old plus one read
_IDENT_MS = const(60000)  # a lone terminal that does not answer: who is on the bus, this often
_ACC_PER_FINE = const(7200000)  # integration: 0.1 Wh = 360 J = 7.2e6 of (0.05 W x ms)
_GAP_MS = const(120000)  # power readings further apart than this are not integrated


class Terminal:
    """One terminal from config: its address, role, ratios, link, latest values."""

    def __init__(self, index, cfg, clock, retries):
        self.index = index
        self.address = cfg["address"]
        self.addr = dlt.address_bytes(self.address)
        self.role = cfg["role"]
        self.ct = cfg.get("ct_ratio", 1)
        self.pt = cfg.get("pt_ratio", 1)
        self.nominal_v = cfg.get("nominal_v", 220.0)
        self.link = LinkHealth(clock, retries, 500, 30000)
        self.values = array("i", bytes(4 * N_ITEMS))
        self.read_at = array("i", bytes(4 * N_ITEMS))  # ticks of the last good read
        self.have = 0  # bit per item: read at least once
        self.absent = 0  # bit per item: the terminal said it has no such item
        self.cum = array("i", bytes(4 * len(REG_ITEMS)))  # continuous registers, 0.01 units
        self.unbounded = 0  # bit per item: restored, its next delta has no time bound
        self.next_item = 0  # round-robin position
        # Since the user last took them: readings per item, their sum and maximum.
        self.n = array("i", bytes(4 * N_ITEMS))
        self.sums = array("i", bytes(4 * N_ITEMS))
        self.maxes = array("i", bytes(4 * N_ITEMS))
        # The power readings integrated (trapezoids, forward power only), in 0.1 Wh:
        # since taken, and since the last energy reading.
        self.fine = 0
        self.fine_since_e = 0
        self._acc = 0
        self._p_last = -1  # -1: no power reading to start a trapezoid from
        self._t_last = 0


class Meters:
    name = "meters"

    def __init__(self, uart, clock, terminals, baud=2400, retries=2):
        self._clock = clock
        self.bus = dlt.Master(uart, clock, baud)
        self.terminals = [Terminal(i, t, clock, retries) for i, t in enumerate(terminals)]
        self.retries = retries
        self.belt = None
        for t in self.terminals:
            if t.role == "belt_drive":
                self.belt = t
        self.on_event = None  # (code, terminal, detail dict)
        self._t = None  # the transaction in flight: terminal, item (-1: its address)
        self._item = 0
        self._tries = 0
        self._retry = False
        self._fast_due = None
        self._fast_step = 0  # 0 idle, 1 power next, 2 energy next
        self._rr = 0  # round-robin: index of the terminal whose turn it is
        self._ident_at = None
        # bus time per round: a round is every item of every terminal once
        self._round_t0 = None
        self._round_bus = 0
        self._round_left = 0
        self.round_ms = 0
        self.round_bus_ms = 0
        self.rounds = 0
        self.reads = 0
        self.failures = 0
        self.fast_late = 0  # belt drive reads that came later than FAST_MS + one read

    # --- public

    def start(self):
        now = self._clock.ticks_ms()
        self._fast_due = now
        self._ident_at = now
        self._round_t0 = now
        self._round_left = self._round_items()

    def fresh(self, t, item, now_ms, max_ms):
        """Whether item of terminal t was read within max_ms."""
        return bool(t.have >> item & 1) and \
            self._clock.ticks_diff(now_ms, t.read_at[item]) <= max_ms

    # --- the job

    def run(self, now_ms):
        if self._fast_due is None:
            self.start()
        bus = self.bus
        if bus.busy:
            try:
                if not bus.poll(now_ms):
                    return
            except dlt.AbnormalReply as e:
                self._answered(now_ms)
                if isinstance(e, dlt.NoSuchItem) and self._item >= 0:
                    self._t.absent |= 1 << self._item
                self._next(now_ms)
                return
            except dlt.DltError as e:
                self._failed(now_ms, isinstance(e, (dlt.ResponseTimeout, dlt.PortError)))
                return
            if self._item < 0:
                # Whoever answers the wildcard is not the terminal we asked for.
                self._round_bus += bus.elapsed_ms
                self._identified(bus.address)
            else:
                self._answered(now_ms)
                self._take(self._t, self._item, bus.value, now_ms)
            self._next(now_ms)
            return
        if self._retry:
            self._retry = False
            self._start(self._t, self._item)
            return
        self._start_next(now_ms)

    def _answered(self, now_ms):
        self._t.link.answered()
        self._round_bus += self.bus.elapsed_ms

    def _failed(self, now_ms, silent):
        t = self._t
        t.link.failed(silent)
        self.failures += 1
        self._round_bus += self.bus.elapsed_ms
        self._tries += 1
        if self._tries > self.retries or not t.link.ready(now_ms):
            self._next(now_ms)  # given up: the schedule moves on
        else:
            self._retry = True  # the same read again at the next run

    def _next(self, now_ms):
        t = self._t
        if t is self.belt and self._fast_step and self._item in (P, E):
            self._fast_step = 2 if self._item == P else 0
            if not self._fast_step:
                self._fast_advance(now_ms)
        elif self._item >= 0:
            self._round_step(now_ms)
        self._t = None
        self._tries = 0

    def _fast_advance(self, now_ms):
        c = self._clock
        self._fast_due = c.ticks_add(self._fast_due, FAST_MS)
        if c.ticks_diff(now_ms, self._fast_due) >= 0:
            self._fast_due = c.ticks_add(now_ms, FAST_MS)  # fell behind: keep the period

    def _round_items(self):
        n = 0
        for t in self.terminals:
            for k in range(N_ITEMS):
                if not t.absent >> k & 1 and not (t is self.belt and k in (P, E)):
                    n += 1
        return n

    def _round_step(self, now_ms):
        self._round_left -= 1
        if self._round_left <= 0:
            c = self._clock
            self.round_ms = c.ticks_diff(now_ms, self._round_t0)
            self.round_bus_ms = self._round_bus
            self.rounds += 1
            self._round_t0 = now_ms
            self._round_bus = 0
            self._round_left = self._round_items()

    def _start_next(self, now_ms):
        c = self._clock
        n = len(self.terminals)
        t = self.terminals[0]
        if n == 1 and t.link.consecutive_failures > self.retries and t.link.ready(now_ms) and \
                c.ticks_diff(now_ms, self._ident_at) >= 0:
            # A lone terminal that does not answer to its address: who is there?
            self._ident_at = c.ticks_add(now_ms, _IDENT_MS)
            self._start(t, -1)
            return
        b = self.belt
        if b is not None and b.link.ready(now_ms):
            if not self._fast_step and c.ticks_diff(now_ms, self._fast_due) >= 0:
                self._fast_step = 1
            if self._fast_step:
                self._start(b, P if self._fast_step == 1 else E)
                return
        for _ in range(n):
            t = self.terminals[self._rr]
            self._rr = (self._rr + 1) % n
            if not t.link.ready(now_ms):
                continue
            k = self._slow_item(t)
            if k >= 0:
                self._start(t, k)
                return

    def _slow_item(self, t):
        for _ in range(N_ITEMS):
            k = t.next_item
            t.next_item = (k + 1) % N_ITEMS
            if t.absent >> k & 1 or (t is self.belt and k in (P, E)):
                continue
            return k
        return -1

    def _start(self, t, item):
        self._t = t
        self._item = item
        try:
            if item < 0:
                self.bus.start_read_address()
            else:
                it = ITEMS[item]
                self.bus.start_read(t.addr, it & _DI, it >> _BYTES_AT & 7, bool(it & _SIGNED))
        except dlt.PortError:
            self._failed(self._clock.ticks_ms(), True)

    # --- readings

    def _take(self, t, item, value, now_ms):
        self.reads += 1
        if t is self.belt and item in (P, E) and t.have >> item & 1:
            late = self._clock.ticks_diff(now_ms, t.read_at[item])
            if late > FAST_MS + 2 * self.bus.request_ms(4) + 1000:
                self.fast_late += 1
        if (1 << item) & REG_BITS:
            self._register(t, item, t.values[item], value, not t.have >> item & 1, now_ms)
            if item == E:
                t.fine_since_e = 0
        elif item == P:
            self._integrate(t, value, now_ms)
        t.values[item] = value
        t.read_at[item] = now_ms
        t.have |= 1 << item
        v = value if value >= 0 or item == P else -value  # |PF|, |I|: sums of magnitudes
        if not t.n[item] or v > t.maxes[item]:
            t.maxes[item] = v
        t.n[item] += 1
        t.sums[item] += v

    def _integrate(self, t, p, now_ms):
        if p < 0:
            p = 0  # forward energy only, as the register counts it
        if t._p_last >= 0:
            dt = self._clock.ticks_diff(now_ms, t._t_last)
            if 0 < dt <= _GAP_MS:
                acc = t._acc + (t._p_last + p) * dt
                d = acc // _ACC_PER_FINE
                t._acc = acc - d * _ACC_PER_FINE
                t.fine += d
                t.fine_since_e += d
        t._p_last = p
        t._t_last = now_ms

    def _register(self, t, item, old, new, first, now_ms):
        """Keep the register continuous: roll-over and a cleared or replaced terminal
        are events, not consumption."""
        k = REG_ITEMS.index(item)
        if first:
            return  # the base: no delta yet
        d = new - old
        if d < 0 and old >= _ROLL - _ROLL_NEAR and new < _ROLL_NEAR:
            d += _ROLL
            self._event("meter_rollover", t, {"item": "%08X" % (ITEMS[item] & _DI), "from": old,
                                               "to": new})
        elif d < 0 or (d > self._plausible(t, item, now_ms) and not t.unbounded >> item & 1):
            # Energy going back, or more than the circuit can draw: another register.
            self._event("meter_cleared", t, {"item": "%08X" % (ITEMS[item] & _DI), "from": old,
                                              "to": new})
            d = 0
        t.unbounded &= ~(1 << item)
        t.cum[k] += d

    def _plausible(self, t, item, now_ms):
        # The most a secondary circuit can count since the register was last read, in
        # 0.01 units, with a floor of a few counts for a register read twice in a moment.
        dt = self._clock.ticks_diff(now_ms, t.read_at[item])
        return 5 + _MAX_SEC_W * (dt // 1000 + 1) // 36000

    def _event(self, code, t, detail):
        detail["address"] = t.address
        if self.on_event is not None:
            self.on_event(code, t, detail)

    def _identified(self, address):
        t = self._t
        if address != t.address:
            self._event("meter_replaced", t, {"answers_as": address})
