# The power side's resident part (docs/power.md): what the loop and production call. The
# terminals' driver (drivers/meters.py) keeps each reading in fixed per-item sums; the work
# done once per interval (power records, kWh per tonne, period totals), the checks behind
# the power alarms (every 5 s) and the figures people ask for are loaded for the call only
# (gateway/power/records.py, gateway/power/checks.py): at 256K of heap, code costs room.
from drivers.meters import REG_BITS, REG_ITEMS
from gateway import ondemand
from gateway.health.alarms import COND, COND_DETAIL, EVENT, TABLE, packed_row
from hal.compat import const, print_exception

_CHECK_MS = const(5000)
_RECORDS = const("gateway.power.records")
_HOLD_S = const(600)

# The power alarms' codes, rows of gateway/health/alarms.py's TABLE (class, level, kind,
# raise delay s, clear delay s, check; keywords, as there), joining it from here: a
# gateway without terminals keeps neither the rows nor their names (docs/alarms.md).
ALARMS = dict(
    meter_link_lost=packed_row("fault", "F", COND_DETAIL, 10, 30, "power"),
    meter_replaced=packed_row("tamper", "W", EVENT, 0, _HOLD_S, "power"),
    voltage_deviation=packed_row("power", "W", COND_DETAIL, 60, 60, "power"),
    phase_loss=packed_row("power", "F", COND_DETAIL, 5, 10, "power"),
    power_factor_low=packed_row("power", "W", COND, 300, 300, "power"),
    voltage_thd_high=packed_row("power", "W", COND, 60, 60, "power"),
    frequency_out_of_range=packed_row("power", "W", COND, 10, 10, "power"),
    drive_power_belt_stopped=packed_row("tamper", "F", COND, 30, 30, "power"),
    belt_running_no_drive_power=packed_row("tamper", "F", COND, 30, 30, "power"),
    output_power_mismatch=packed_row("tamper", "F", COND, 0, 0, "crosscheck"),
)


def build(gw, hw, p):
    """The terminals' driver and the power side for the gateway gw (gateway/app.py), with
    production's records and the loop's jobs wired in at start()."""
    from drivers.meters import Meters

    gw.meters = Meters(hw.meter_uart, gw.clock, p["meters.terminals"], baud=p["meters.baud"])
    gw.power = Power(gw.meters, gw.emit, gw.alarms.set, gw.measurement.running.state, p)
    gw.measurement.production.power = gw.power
    if gw.meters.belt is not None:
        # Output against power (docs/crosscheck.md): fed each of the drive's power
        # readings (its own job) and each production interval (close_interval).
        from gateway.power.crosscheck import CrossCheck

        x = gw.power.cross = CrossCheck(gw.emit, gw.alarms.set)
        x.apply_params(p)
        x.attach(gw.meters.belt, gw.measurement.scale, gw.collector, gw.clock)


class Power:
    """meters: the drivers.meters.Meters job; emit, alarm: the app's; running(): the belt's
    state from DI1 and the pulses ("running", "stopped", ...)."""

    name = "power"

    def __init__(self, meters, emit, alarm, running, params):
        TABLE.update(ALARMS)
        self.meters = meters
        self.emit = emit
        self.alarm = alarm
        self.running = running
        self.terms = meters.terminals
        self.belt = meters.belt
        self.mine = None
        for t in self.terms:
            if t.role == "mine_total":
                self.mine = t
        n = len(self.terms)
        self.rep = [-1] * n  # every interval's reported energy so far, 0.1 Wh (-1: no base)
        self.eq0 = [-1] * n  # reactive register (continuous) at the interval's start
        self.periods = {}  # kind -> [belt 0.1 Wh, mine 0.1 Wh]
        self.tariff0 = [-1] * 8  # continuous tariff registers at the day's start: belt, mine
        self.closed_t1 = 0  # the last interval closed (or adopted)
        self.done_t1 = [0] * n  # per terminal: the end of its last interval written
        self._rep_new = 0
        self.last = None  # the last interval's belt-drive figures (people, issue 16)
        self._check_at = None
        self.errors = 0  # calls that found no room for their code or records
        self.params = params
        self.cross = None  # gateway.power.crosscheck.CrossCheck, with a belt drive
        meters.on_event = self.on_event

    def apply_params(self, params):
        self.params = params
        if self.cross is not None:
            self.cross.apply_params(params)

    def start(self, loop):
        """Its own jobs: the bus (each run takes what has arrived and returns, so the
        collector's poll never waits for a 2400-baud reply) and the checks."""
        self.meters.start()
        loop.add(self.meters, 20, 11)
        loop.add(self, 1000, 700)
        if self.cross is not None:
            loop.add(self.cross, 1000, 850)

    def on_event(self, code, t, detail):
        self.emit("event", {"code": code, "detail": detail})
        if code != "meter_rollover":
            self.alarm("meter_replaced", True, "%s: %s" % (t.address, code))

    # --- production's hooks (gateway.measure.production.Production)

    def close_interval(self, t0, t1, mass_g, run_s, dist_m, unweighed, calibrating):
        """The interval [t0, t1) closed with mass_g of output, run_s of running and dist_m
        of belt travel (some of it unweighed, a calibration running: the cross-check's
        flags): a `power` record per terminal; returns the fields for the prod record.
        Whatever goes wrong here (no room for the code or a record), the prod record goes
        on without them: counted in `errors`, and the energy stays for the next interval."""
        try:
            return ondemand.call(_RECORDS, "close_interval", self, t0, t1, mass_g, run_s,
                                 dist_m, unweighed, calibrating)
        except Exception as e:  # noqa: BLE001 -- production's record must never wait on this
            return self._failed(e)

    def close_period(self, kind, mass_g):
        """A shift, day, month, quarter or year closed: its total's fields."""
        try:
            return ondemand.call(_RECORDS, "close_period", self, kind, mass_g)
        except Exception as e:  # noqa: BLE001 -- as close_interval
            return self._failed(e)

    def _failed(self, e):
        self.errors += 1
        if not isinstance(e, MemoryError):
            print_exception(e)  # a bug: the log shows it
        return None

    # --- the checks behind the power alarms

    def run(self, now_ms):
        c = self.meters._clock
        if self._check_at is None or c.ticks_diff(now_ms, self._check_at) >= 0:
            self._check_at = c.ticks_add(now_ms, _CHECK_MS)
            try:
                ondemand.call("gateway.power.checks", "run", self, now_ms)
            except MemoryError:
                self.errors += 1  # the alarms keep their state until the next check

    # --- for people (LCD, CLI and center status)

    def status(self):
        return ondemand.call(_RECORDS, "status", self)

    def figures(self):
        return ondemand.call(_RECORDS, "figures", self)

    # --- persistence

    def snapshot(self):
        return {
            "t": [[list(t.cum), [t.values[k] for k in REG_ITEMS], t.have & REG_BITS,
                   self.rep[t.index], self.eq0[t.index]]
                  for t in self.terms],
            "per": self.periods,
            "tar": self.tariff0,
            "t1": self.closed_t1,
            "x": self.cross.snapshot() if self.cross is not None else None,
        }

    def restore(self, d):
        ondemand.call(_RECORDS, "restore", self, d)

    def adopt(self, tail):
        ondemand.call(_RECORDS, "adopt", self, tail)
