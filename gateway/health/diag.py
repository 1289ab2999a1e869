# Self-diagnosis and self-evaluation (自诊断、自评估). The checks watch the collector and
# its sensors (from every Sample), the collector link, the store, the uplink, the loop,
# the clock, memory and production, and report each raw condition to the alarm engine,
# which debounces it. Thresholds carry hysteresis here, so a figure that hovers at its
# threshold does not flap. report() is every check with pass/warn/fail and its figures;
# a compact form of it is written as a `diag` record every 10 minutes.
# Every code and its exact condition: docs/alarms.md.
import gc

from gateway import ondemand
from hal.compat import const

_DIAG_MS = const(600000)  # diag record period
_BUCKET_MS = const(10000)  # sliding windows: 6 buckets of 10 s
_BUCKETS = const(6)
_CELL_WINDOW = const(300)  # samples (30 s at 10 Hz) per stuck or drift verdict
_MIN_REQUESTS = const(20)  # fewer requests in the window give no error rate
_OVERRUNS = const(3)  # loop overruns in the window that raise loop_overrun
_MEM_EVERY_MS = const(10000)
_SUPPLY_HYST_MV = const(300)
_TEMP_HYST_01C = const(20)
_CLOCK_VALID_S = const(1704067200)  # 2024-01-01: a wall clock before this was never set

_ST_SPEED = const(0x10)
_ST_VIB = const(0x20)
_ST_ADC = const(0x40)
_ST_RESTART = const(0x100)
_DI_RUN = const(1)
_DI_BATTERY = const(2)


def _mem_free():
    if not hasattr(gc, "mem_free"):
        return None  # CPython: no heap figure
    gc.collect()
    return gc.mem_free()


class _Window:
    """Sums over the last _BUCKETS buckets of _BUCKET_MS (a sliding minute)."""

    def __init__(self):
        self.b = [0] * _BUCKETS
        self.i = 0

    def add(self, v):
        self.b[self.i] += v

    def rotate(self):
        self.i = (self.i + 1) % _BUCKETS
        self.b[self.i] = 0

    def clear(self):
        for k in range(_BUCKETS):
            self.b[k] = 0

    def sum(self):
        return sum(self.b)


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
        mem_free=_mem_free,
        reset_cause=None,
    ):
        """alarms: the engine. params: the flat parameter dict. Sources are getters
        called from run(); one left None drops its check:
        link() -> {"state", "requests", "responses", "timeouts", "crc_errors", "exceptions",
                   "latency_ms_sum", "latency_ms_max", "consecutive_failures"} (cumulative)
        store() -> {"free_bytes", "write_errors", "corrupt_found", "pending"}
        uplink() -> {"state", "connected", "acked", "backlog"}
        loop: the gateway.loop.Loop
        production() -> {"day_t", "month_t"}
        running() -> {"running": bool, "load_pct": % of design load}
        mem_free() -> free heap bytes or None.  reset_cause: "watchdog" or other."""
        self.alarms = alarms
        self.clock = clock
        self._emit = emit
        self.identity = identity
        self._link = link
        self._store = store
        self._uplink = uplink
        self._loop = loop
        self._production = production
        self._running = running
        self.crosscheck = None  # () -> the output-against-power status (docs/crosscheck.md)
        self._mem_free = mem_free
        self._reset_cause = reset_cause
        self._bad = {}  # hysteresis latches, by code
        self.apply(params)
        # per-period sample aggregates (reset every run)
        self._n = 0
        self._status_or = 0
        self._di_or = 0
        self._di = 0
        self._mv_sum = 0
        self._temp_sum = 0
        self._freq = 0
        self._vib_sum = 0
        self._vib_n = 0  # samples with the motor running
        self._csum = [0, 0, 0, 0]
        self._cn = [0, 0, 0, 0]
        # last period's figures
        self._have_samples = False
        self._mv = 0
        self._temp = 0
        self._vib = 0
        self._cmean = [0, 0, 0, 0]
        # collector restarts
        self._uptime = None
        self._seen = False
        self._bit8 = False
        self._restarts = 0
        self._restart_up = 0
        self._restart_pending = False
        # stuck: range of each cell over a window of moving-belt samples
        self._smin = [0, 0, 0, 0]
        self._smax = [0, 0, 0, 0]
        self._sn = [0, 0, 0, 0]
        self._span = [-1, -1, -1, -1]  # last window's range; -1: none yet
        self._stuck = [False, False, False, False]
        # drift: cell means over empty running belt against a baseline
        self._empty = False
        self._dsum = [0, 0, 0, 0]
        self._dn = 0
        self._base = None
        self._dev = None
        # link
        self._lstat = None
        self._lreq = 0
        self._lerr = 0
        self._lresp = 0
        self._llat = 0
        self._wreq = _Window()
        self._werr = _Window()
        self._wresp = _Window()
        self._wlat = _Window()
        self._err_pm = 0  # error rate over the window, per mille
        self._lat_ms = 0  # mean response latency over the window
        # loop
        self._wovr = _Window()
        self._ovr_seen = 0
        self._errs = {}
        self._mem = None
        self._mem_ms = _MEM_EVERY_MS
        # uplink
        self._ustat = None
        self._down_ms = 0
        self._noack_ms = 0
        self._ack_seen = None
        # others
        self._sstat = None
        self._pstat = None
        self._last_wall = None
        self._last_step = 0
        self._hwm = 0  # latest wall time seen (record times never go back past it)
        self._last_run = None
        self._bucket_ms = 0
        self._diag_ms = 0
        self.uptime_ms = 0

    def apply(self, params):
        self.p = params
        self._empty_pct = params.get("scale.autozero_band_pct", 2.0)

    def start(self):
        self._last_run = self.clock.ticks_ms()
        if self._reset_cause == "watchdog":
            self.alarms.raise_event("watchdog_reset", "the loop stopped making progress")

    # --- inputs
    def on_sample(self, s):
        """Every collector Sample (10 Hz): only sums and flags, no allocation."""
        st = s.status
        di = s.di
        self._n += 1
        self._status_or |= st
        self._di_or |= di
        self._di = di
        self._mv_sum += s.supply_mv
        self._temp_sum += s.temp_01c
        self._freq = s.freq_centihz
        running = di & _DI_RUN
        if running:
            self._vib_sum += s.vib_rms_01mv
            self._vib_n += 1
        up = s.uptime_s
        bit8 = bool(st & _ST_RESTART)
        if self._seen:
            restarted = up < self._uptime or (bit8 and not self._bit8)
        elif self._uptime is not None:
            # First sample of this run: the uptime persisted before our restart tells
            # whether the collector restarted meanwhile (bit 8 may just be unacknowledged).
            restarted = up < self._uptime
        else:
            restarted = bit8
        self._seen = True
        if restarted:
            self._restarts += 1
            self._restart_up = up
            self._restart_pending = True
        self._uptime = up
        self._bit8 = bit8
        if self.identity is not None:
            self.identity.on_config_counter(s.config_counter)
        moving = running and s.freq_centihz > 0
        empty = moving and self._empty and not (st & 0xF)
        cells = s.cells
        for i in range(4):
            if st & (1 << i):
                continue  # a faulty cell's value is meaningless
            v = cells[i]
            self._csum[i] += v
            self._cn[i] += 1
            if moving:
                self._stuck_sample(i, v)
            if empty:
                self._dsum[i] += v
        if empty:
            self._dn += 1

    def _stuck_sample(self, i, v):
        if self._sn[i] == 0:
            self._smin[i] = self._smax[i] = v
        elif v < self._smin[i]:
            self._smin[i] = v
        elif v > self._smax[i]:
            self._smax[i] = v
        self._sn[i] += 1
        if self._sn[i] >= _CELL_WINDOW:
            span = self._smax[i] - self._smin[i]
            self._span[i] = span
            self._stuck[i] = span <= self.p["alarms.cell_stuck_counts"]
            self._sn[i] = 0

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
        step = int(round(step_s))
        if self._last_wall is not None:
            self._last_wall += step  # the next run sees no step
        if step >= self.p["alarms.clock_step_s"] or step <= -self.p["alarms.clock_step_s"]:
            self._last_step = step
            self.alarms.raise_event("clock_stepped", "%+d s" % step)

    def rebaseline_cells(self):
        """Relearn the cells' drift baseline (after a zero calibration or a cell change)."""
        self._base = None
        self._dev = None
        for i in range(4):
            self._bad.pop("cell%d_drift" % (i + 1), None)
            self.alarms.set("cell%d_drift" % (i + 1), False)
        self._dn = 0
        for i in range(4):
            self._dsum[i] = 0

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
        if self._running is not None:
            r = self._running()
            self._empty = bool(r["running"]) and r["load_pct"] < self._empty_pct
        self._check_samples()
        if self._link is not None:
            self._check_link(rotate)
        if self._store is not None:
            self._check_store()
        if self._uplink is not None:
            self._check_uplink(dt)
        if self._loop is not None:
            self._check_loop(rotate)
        self._mem_ms += dt
        if self._mem_free is not None and self._mem_ms >= _MEM_EVERY_MS:
            self._mem_ms = 0
            self._check_memory()
        if self._production is not None:
            self._check_production()
        self._check_clock(dt)
        self._diag_ms += dt
        if self._diag_ms >= _DIAG_MS and self._emit is not None:
            self._diag_ms -= _DIAG_MS
            self._emit("diag", {"detail": self.report(compact=True)})

    # --- checks
    def _hyst(self, code, bad_now, still_bad):
        """Hysteresis: raise on `bad_now`, stay raised while `still_bad`."""
        bad = still_bad if self._bad.get(code, False) else bad_now
        self._bad[code] = bad
        return bad

    def _check_samples(self):
        n = self._n
        if n == 0:
            return  # no data: every sample condition keeps its state
        a = self.alarms
        p = self.p
        st = self._status_or
        self._have_samples = True
        self._mv = self._mv_sum // n
        self._temp = self._temp_sum // n
        self._vib = self._vib_sum // self._vib_n if self._vib_n else 0
        if self._restart_pending:
            self._restart_pending = False
            a.raise_event("collector_restarted", "uptime %d s" % self._restart_up)
            a.refresh_do1()
        a.set("collector_adc_fault", st & _ST_ADC, "ADC fault")
        a.set("speed_sensor_fault", st & _ST_SPEED, "speed sensor disconnected")
        floor = int(p["alarms.vib_floor_mv"] * 10)
        dead = (
            floor > 0
            and self._vib_n == n
            and self._hyst("vibration_sensor_fault", self._vib < floor, self._vib < floor * 3 // 2)
        )
        if st & _ST_VIB:
            a.set("vibration_sensor_fault", True, "vibration sensor disconnected")
        else:
            detail = "no vibration while running: %s mV" % _tenths(self._vib)
            a.set("vibration_sensor_fault", dead, detail)
        a.set("mains_lost", self._di_or & _DI_BATTERY, "on battery")
        low = p["alarms.supply_low_mv"]
        mv = self._mv
        a.set(
            "supply_low",
            self._hyst("supply_low", mv < low, mv < low + _SUPPLY_HYST_MV),
            "supply %d mV < %d mV" % (mv, low),
        )
        t = self._temp
        lo = int(p["alarms.temp_low_c"] * 10)
        hi = int(p["alarms.temp_high_c"] * 10)
        a.set(
            "collector_temp",
            self._hyst(
                "collector_temp",
                t < lo or t > hi,
                t < lo + _TEMP_HYST_01C or t > hi - _TEMP_HYST_01C,
            ),
            "temperature %s C" % _tenths(t),
        )
        self._check_cells(st)
        self._check_drift()
        self._n = 0
        self._status_or = self._di_or = 0
        self._mv_sum = self._temp_sum = self._vib_sum = self._vib_n = 0

    def _check_cells(self, st):
        a = self.alarms
        p = self.p
        lo = p["alarms.cell_min_counts"]
        hi = p["alarms.cell_max_counts"]
        margin = (hi - lo) // 100
        for i in range(4):
            c = i + 1
            a.set("cell%d_fault" % c, st & (1 << i), "cell %d fault" % c)
            if self._cn[i]:
                m = self._csum[i] // self._cn[i]
                self._cmean[i] = m
                code = "cell%d_range" % c
                out = self._hyst(code, m < lo or m > hi, m < lo + margin or m > hi - margin)
                a.set(code, out, "cell %d at %d counts" % (c, m))
                self._csum[i] = self._cn[i] = 0
            if self._span[i] >= 0:
                detail = "cell %d varied %d counts" % (c, self._span[i])
                a.set("cell%d_stuck" % c, self._stuck[i], detail)

    def _check_drift(self):
        n = self._dn
        if n < _CELL_WINDOW:
            return
        m = [self._dsum[i] // n for i in range(4)]
        self._dn = 0
        for i in range(4):
            self._dsum[i] = 0
        if self._base is None:
            self._base = m
            return
        d = [m[i] - self._base[i] for i in range(4)]
        total = sum(d)
        # Each cell's zero change against the mean change of the other three: a shift
        # common to all four (temperature, belt wear) cancels.
        self._dev = [d[i] - (total - d[i]) // 3 for i in range(4)]
        thr = self.p["alarms.cell_drift_counts"]
        for i in range(4):
            code = "cell%d_drift" % (i + 1)
            dev = abs(self._dev[i])
            bad = self._hyst(code, dev > thr, dev > thr * 4 // 5)
            detail = "cell %d zero moved %d counts from the others" % (i + 1, self._dev[i])
            self.alarms.set(code, bad, detail)

    def _check_link(self, rotate):
        a = self.alarms
        p = self.p
        s = self._link()
        self._lstat = s
        req = s["requests"]
        err = s["timeouts"] + s["crc_errors"]
        resp = s["responses"]
        lat = s["latency_ms_sum"]
        # Counters are cumulative; one that went down was reset.
        dreq = req - self._lreq if req >= self._lreq else req
        derr = err - self._lerr if err >= self._lerr else err
        dresp = resp - self._lresp if resp >= self._lresp else resp
        dlat = lat - self._llat if lat >= self._llat else lat
        self._lreq = req
        self._lerr = err
        self._lresp = resp
        self._llat = lat
        lost = s["state"] == "lost"
        a.set("collector_link_lost", lost, "%d failures in a row" % s["consecutive_failures"])
        if not lost:
            # A second that ends with the link lost is left out of the minute: an
            # outage's timeouts are collector_link_lost, not a degraded link once it is
            # back. A bad link that is lost only now and then keeps its figures.
            self._wreq.add(dreq)
            self._werr.add(derr)
            self._wresp.add(dresp)
            self._wlat.add(dlat)
        wreq = self._wreq.sum()
        self._err_pm = self._werr.sum() * 1000 // wreq if wreq >= _MIN_REQUESTS else 0
        # The latency of the last minute, like the error rate: a lifetime mean would take
        # as long as the healthy history to notice a slow collector, and to forget one.
        wresp = self._wresp.sum()
        self._lat_ms = self._wlat.sum() // wresp if wresp else 0
        if rotate:
            self._wreq.rotate()
            self._werr.rotate()
            self._wresp.rotate()
            self._wlat.rotate()
        thr_pm = int(p["alarms.link_error_pct"] * 10)
        err_bad = self._hyst("link_err", self._err_pm > thr_pm, self._err_pm > thr_pm // 2)
        lat = self._lat_ms
        lat_thr = p["alarms.link_latency_ms"]
        lat_bad = self._hyst("link_lat", lat > lat_thr, lat > lat_thr * 4 // 5)
        if err_bad:
            detail = "errors %s%%" % _tenths(self._err_pm)
        elif lat_bad:
            detail = "latency %d ms" % lat
        else:
            detail = "collector driver reports %s" % s["state"]
        # Not while the outage itself is the alarm.
        bad = err_bad or lat_bad or s["state"] != "ok"
        a.set("collector_link_degraded", bad and not a.is_active("collector_link_lost"), detail)

    def _check_store(self):
        s = self._store()
        self._sstat = s
        free = s["free_bytes"]
        low = self.p["alarms.flash_free_min_kib"] * 1024
        self.alarms.set(
            "flash_low",
            self._hyst("flash_low", free < low, free < low + low // 10),
            "flash free %d KiB" % (free // 1024),
        )

    def _check_uplink(self, dt):
        a = self.alarms
        s = self._uplink()
        self._ustat = s
        if s["connected"]:
            self._down_ms = 0
        else:
            self._down_ms += dt
        if s["acked"] != self._ack_seen:
            self._ack_seen = s["acked"]
            self._noack_ms = 0
        elif s["connected"] and s["backlog"] > 0:
            self._noack_ms += dt
        else:
            self._noack_ms = 0  # nothing waiting: no ACK is due
        limit = self.p["alarms.upload_down_s"] * 1000
        if self._down_ms > limit:
            a.set("upload_down", True, "center unreachable for %d s" % (self._down_ms // 1000))
        else:
            detail = "no ACK for %d s" % (self._noack_ms // 1000)
            a.set("upload_down", self._noack_ms > limit, detail)
        backlog = s["backlog"]
        thr = self.p["alarms.backlog_records"]
        a.set(
            "upload_backlog",
            self._hyst("upload_backlog", backlog > thr, backlog > thr * 9 // 10),
            "%d records waiting" % backlog,
        )

    def _check_loop(self, rotate):
        stats = self._loop.stats()
        ovr = 0
        failed = None
        for name, js in stats.items():
            ovr += js["overruns"]
            if js["errors"] > self._errs.get(name, 0):
                failed = name if failed is None else failed + "," + name
            self._errs[name] = js["errors"]
        self._wovr.add(ovr - self._ovr_seen if ovr >= self._ovr_seen else ovr)
        self._ovr_seen = ovr
        n = self._wovr.sum()
        if rotate:
            self._wovr.rotate()
        bad = self._hyst("loop_overrun", n >= _OVERRUNS, n > 0)
        self.alarms.set("loop_overrun", bad, "%d overruns in a minute" % n)
        if failed is not None:
            self.alarms.raise_event("job_failed", failed)

    def _check_memory(self):
        free = self._mem_free()
        if free is None:
            return
        self._mem = free
        low = self.p["alarms.mem_free_min_kib"] * 1024
        self.alarms.set(
            "memory_low",
            self._hyst("memory_low", free < low, free < low + low // 4),
            "free heap %d KiB" % (free // 1024),
        )

    def _check_production(self):
        s = self._production()
        self._pstat = s
        for code, key, lkey, what in (
            ("overproduction_day", "day_t", "alarms.day_limit_t", "day"),
            ("overproduction_month", "month_t", "alarms.month_limit_t", "month"),
        ):
            limit = self.p[lkey]
            v = s[key]
            self.alarms.set(code, 0 < limit < v, "%s %d t > %d t" % (what, int(v), int(limit)))

    def _check_clock(self, dt):
        a = self.alarms
        wall = int(self.clock.time())
        not_set = wall < _CLOCK_VALID_S
        a.set("clock_not_set", not_set, "wall clock %d" % wall)
        step_s = self.p["alarms.clock_step_s"]
        if self._last_wall is not None:
            step = (wall - self._last_wall) - (dt + 500) // 1000
            if step >= step_s or step <= -step_s:
                self._last_step = step
                a.raise_event("clock_stepped", "%+d s" % step)
        self._last_wall = wall
        if not_set:
            return
        back = wall < self._hwm - step_s
        a.set("clock_backwards", back, "%d s behind the latest record time" % (self._hwm - wall))
        if wall > self._hwm:
            self._hwm = wall

    # --- report
    def report(self, compact=False):
        """Every check with pass/warn/fail and its figures. compact=True is the diag
        record's form: the names of passing checks, figures only where not passing.
        The code is loaded for the call only (gateway/health/report.py)."""
        return ondemand.call("gateway.health.report", "report", self, compact)

    # --- persistence
    def snapshot(self):
        snap = {
            "uptime": self._uptime,
            "hwm": self._hwm,
            "base": self._base,
            "down_ms": self._down_ms,
        }
        if self.identity is not None:
            snap["identity"] = self.identity.snapshot()
        return snap

    def restore(self, snap):
        if not isinstance(snap, dict):
            return
        if isinstance(snap.get("uptime"), int):
            self._uptime = snap["uptime"]
        if isinstance(snap.get("hwm"), int):
            self._hwm = snap["hwm"]
        base = snap.get("base")
        if isinstance(base, list) and len(base) == 4 and all(isinstance(b, int) for b in base):
            self._base = base
        if isinstance(snap.get("down_ms"), int):
            self._down_ms = snap["down_ms"]
        if self.identity is not None:
            self.identity.restore(snap.get("identity"))


def _tenths(v):
    """'-1.5' from -15: a value in tenths, without floats."""
    return "%s%d.%d" % ("-" if v < 0 else "", abs(v) // 10, abs(v) % 10)
