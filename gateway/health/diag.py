# Self-diagnosis and self-evaluation (自诊断、自评估): the checks of
# gateway/health/checks.py (the collector's samples, its load cells, its link, the store,
# the uplink, the loop, memory, production, the clock), fed every Sample and walked once
# a second, and the identity of the hardware units (gateway/health/identity.py).
# report() is every check with pass/warn/fail and its figures; a compact form of it is
# written as a `diag` record every 10 minutes. Every code and its exact condition:
# docs/alarms.md.
from gateway import ondemand
from gateway.health import checks as _checks
from hal.compat import const, mem_free

_DIAG_MS = const(600000)  # diag record period
_BUCKET_MS = const(10000)  # the checks' sliding minute moves on every 10 s


class Diagnostics:
    name = "diag"

    def __init__(
        self,
        alarms,
        params,
        clock,
        emit=None,
        identity=None,
        link=None,
        store=None,
        uplink=None,
        loop=None,
        production=None,
        running=None,
        mem_free=mem_free,
        reset_cause=None,
    ):
        """alarms: the engine. params: the flat parameter dict. identity: the
        gateway.health.identity.Identity, fed and started here only. The sources are
        getters called once a second (each check's class says what it returns); one
        left None drops its check. loop: the gateway.loop.Loop. reset_cause: "watchdog"
        or another."""
        self.alarms = alarms
        self.clock = clock
        self._emit = emit
        self.identity = identity
        self.crosscheck = None  # () -> the output-against-power status (docs/crosscheck.md)
        self._reset_cause = reset_cause
        self.p = params
        self._samples = _checks.Samples(alarms, running)
        self._cells = _checks.Cells(alarms, running)
        self._uplink = None if uplink is None else _checks.Uplink(alarms, uplink)
        self._clock = _checks.Clock(alarms, clock)
        checks = [self._samples, self._cells]  # in the order they run and raise
        if link is not None:
            checks.append(_checks.Link(alarms, link))
        if store is not None:
            checks.append(_checks.Store(alarms, store))
        if self._uplink is not None:
            checks.append(self._uplink)
        if loop is not None:
            checks.append(_checks.Loop(alarms, loop))
        if mem_free is not None:
            checks.append(_checks.Memory(alarms, mem_free))
        if production is not None:
            checks.append(_checks.Production(alarms, production))
        checks.append(self._clock)
        self.checks = checks
        self._last_run = None
        self._bucket_ms = 0
        self._diag_ms = 0
        self.uptime_ms = 0

    def apply_params(self, params):
        self.p = params

    def start(self):
        if self.identity is not None:
            self.identity.start()
        self._last_run = self.clock.ticks_ms()
        if self._reset_cause == "watchdog":
            self.alarms.raise_event("watchdog_reset", "the loop stopped making progress")

    # --- inputs
    def on_sample(self, s):
        """Every collector Sample (10 Hz): only sums and flags, no allocation."""
        self._samples.on_sample(s)
        self._cells.on_sample(s)
        if self.identity is not None:
            self.identity.on_config_counter(s.config_counter)

    def on_identity(self, ident):
        if self.identity is not None:
            self.identity.on_identity(ident)

    def register(self, by):
        """A technician registers the units present now (after a legitimate
        replacement): identity is registered again and the cell baseline relearnt."""
        self.identity.register(by)
        self.rebaseline_cells()

    def clock_set(self, step_s):
        """The wall clock was set (time_sync, the CLI's time set) by step_s: judged now,
        not at the next run, which a restart can come before."""
        self._clock.set(self.p, step_s)

    def rebaseline_cells(self):
        """Relearn the cells' drift baseline (after a zero calibration or a cell change)."""
        self._cells.rebaseline()

    # --- the job
    def run(self, now_ms):
        dt = 0 if self._last_run is None else self.clock.ticks_diff(now_ms, self._last_run)
        self._last_run = now_ms
        if dt < 0:
            dt = 0
        self.uptime_ms += dt
        self._bucket_ms += dt
        rotate = self._bucket_ms >= _BUCKET_MS
        if rotate:
            self._bucket_ms -= _BUCKET_MS
        p = self.p
        for check in self.checks:
            check.run(p, dt, rotate)
        self._diag_ms += dt
        if self._diag_ms >= _DIAG_MS and self._emit is not None:
            self._diag_ms -= _DIAG_MS
            self._emit("diag", {"detail": self.report(compact=True)})

    # --- report
    def report(self, compact=False):
        """Every check with pass/warn/fail and its figures. compact=True is the diag
        record's form: the names of passing checks, figures only where not passing.
        The code is loaded for the call only (gateway/health/report.py)."""
        return ondemand.call("gateway.health.report", "report", self, compact)

    # --- persistence
    def snapshot(self):
        snap = {
            "uptime": self._samples.uptime,
            "hwm": self._clock.hwm,
            "base": self._cells.base,
            "down_ms": 0 if self._uplink is None else self._uplink.down_ms,
        }
        if self.identity is not None:
            snap["identity"] = self.identity.snapshot()
        return snap

    def restore(self, snap):
        if not isinstance(snap, dict):
            return
        if isinstance(snap.get("uptime"), int):
            self._samples.uptime = snap["uptime"]
        if isinstance(snap.get("hwm"), int):
            self._clock.hwm = snap["hwm"]
        base = snap.get("base")
        if isinstance(base, list) and len(base) == 4 and all(isinstance(b, int) for b in base):
            self._cells.base = base
        if isinstance(snap.get("down_ms"), int) and self._uplink is not None:
            self._uplink.down_ms = snap["down_ms"]
        if self.identity is not None:
            self.identity.restore(snap.get("identity"))
