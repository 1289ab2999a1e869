# The self-diagnosis checks (gateway/health/diag.py feeds and walks them): one small object
# per concern, each reporting its raw conditions to the alarm engine, which debounces them,
# and keeping its own hysteresis, so that a figure hovering at its threshold does not flap.
# Every check has a `name` and run(p, dt_ms, rotate), called once a second (p: the
# parameters; rotate: the sliding minute moves on). The attributes documented as figures
# are what the report shows (gateway/health/report.py, loaded for each report only).
# Every code and its exact condition: docs/alarms.md.
from hal.compat import const

_BUCKETS = const(6)  # sliding windows: 6 buckets of 10 s (Diagnostics rotates them)
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

# The link's cumulative counters, in the order the link check keeps them.
_REQ = const(0)
_ERR = const(1)
_RESP = const(2)
_LAT = const(3)


def _hyst(bad, bad_now, still_bad):
    """Hysteresis: a check that is not `bad` turns bad on `bad_now`; one that is stays
    bad while `still_bad`."""
    return still_bad if bad else bad_now


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

    def sum(self):
        return sum(self.b)


class _Check:
    """A check of one source, a getter asked once a second. Its state starts as the
    class's values: each check sets its own when it first has one."""

    stat = None  # figures: the source's last answer

    def __init__(self, alarms, source):
        self.alarms = alarms
        self.source = source


class Samples:
    """The collector from its Samples: status bits, mains, supply, temperature,
    vibration while running, restarts. A period with no samples keeps every state.
    Figures (once `judged`): mv, temp (0.1 C), vib (0.1 mV), freq (0.01 Hz), di,
    uptime, restarts."""

    name = "samples"

    def __init__(self, alarms, running=None):
        self.alarms = alarms
        self.running = running  # as Cells's: its "speed_lost" is a speed sensor fault too
        # this period's sums
        self.n = 0
        self.st = 0  # status bits of any sample
        self.di_or = 0
        self.di = 0
        self.mv_sum = 0
        self.temp_sum = 0
        self.vib_sum = 0
        self.vib_n = 0  # samples with the motor running
        self.freq = 0
        # the last period's figures
        self.judged = False
        self.mv = 0
        self.temp = 0
        self.vib = 0
        # restarts
        self.uptime = None  # persisted
        self.sampled = False  # a sample since our own start
        self.bit8 = False
        self.restarts = 0
        self.restart_up = 0
        self.restart_pending = False
        # hysteresis
        self.dead = False
        self.low = False
        self.off_temp = False

    def on_sample(self, s):
        st = s.status
        di = s.di
        self.n += 1
        self.st |= st
        self.di_or |= di
        self.di = di
        self.mv_sum += s.supply_mv
        self.temp_sum += s.temp_01c
        self.freq = s.freq_centihz
        if di & _DI_RUN:
            self.vib_sum += s.vib_rms_01mv
            self.vib_n += 1
        up = s.uptime_s
        bit8 = bool(st & _ST_RESTART)
        if self.sampled:
            restarted = up < self.uptime or (bit8 and not self.bit8)
        elif self.uptime is not None:
            # First sample of this run: the uptime persisted before our restart tells
            # whether the collector restarted meanwhile (bit 8 may just be unacknowledged).
            restarted = up < self.uptime
        else:
            restarted = bit8
        self.sampled = True
        if restarted:
            self.restarts += 1
            self.restart_up = up
            self.restart_pending = True
        self.uptime = up
        self.bit8 = bit8

    def run(self, p, dt, rotate):
        n = self.n
        if n == 0:
            return
        a = self.alarms
        st = self.st
        self.judged = True
        self.mv = mv = self.mv_sum // n
        self.temp = t = self.temp_sum // n
        self.vib = vib = self.vib_sum // self.vib_n if self.vib_n else 0
        if self.restart_pending:
            self.restart_pending = False
            a.raise_event("collector_restarted", "uptime %d s" % self.restart_up)
            a.refresh_do1()
        a.set("collector_adc_fault", st & _ST_ADC, "ADC fault")
        if st & _ST_SPEED:
            a.set("speed_sensor_fault", True, "speed sensor disconnected")
        else:
            # No pulses while the belt moves: the measurement estimates the travel.
            lost = self.running is not None and self.running().get("speed_lost")
            a.set("speed_sensor_fault", lost, "no pulses while the belt moves: travel estimated")
        floor = int(p["alarms.vib_floor_mv"] * 10)
        dead = False
        if floor > 0 and self.vib_n == n:  # silence matters only while the motor runs
            self.dead = dead = _hyst(self.dead, vib < floor, vib < floor * 3 // 2)
        if st & _ST_VIB:
            a.set("vibration_sensor_fault", True, "vibration sensor disconnected")
        else:
            detail = "no vibration while running: %s mV" % _tenths(vib)
            a.set("vibration_sensor_fault", dead, detail)
        a.set("mains_lost", self.di_or & _DI_BATTERY, "on battery")
        low = p["alarms.supply_low_mv"]
        self.low = _hyst(self.low, mv < low, mv < low + _SUPPLY_HYST_MV)
        a.set("supply_low", self.low, "supply %d mV < %d mV" % (mv, low))
        lo = int(p["alarms.temp_low_c"] * 10)
        hi = int(p["alarms.temp_high_c"] * 10)
        self.off_temp = _hyst(
            self.off_temp, t < lo or t > hi, t < lo + _TEMP_HYST_01C or t > hi - _TEMP_HYST_01C
        )
        a.set("collector_temp", self.off_temp, "temperature %s C" % _tenths(t))
        self.n = self.st = self.di_or = 0
        self.mv_sum = self.temp_sum = self.vib_sum = self.vib_n = 0


class Cells:
    """The four load cells from the Samples: fault bits, each period's mean against the
    range, stuck (no variation over a window of a moving belt), and drift (one cell's
    zero against the other three's on an empty running belt, from a persisted baseline).
    running() -> {"running": bool, "load_pct": % of design load}, or None: no drift.
    Figures (once `judged`): mean, span (-1: no window yet), dev (None: no verdict yet)."""

    name = "cells"

    def __init__(self, alarms, running):
        self.alarms = alarms
        self.running = running
        self.n = 0
        self.st = 0
        self.sum = [0, 0, 0, 0]
        self.cn = [0, 0, 0, 0]
        self.judged = False
        self.mean = [0, 0, 0, 0]
        self.out = [False, False, False, False]  # range, with hysteresis
        # stuck: range of each cell over a window of moving-belt samples
        self.lo = [0, 0, 0, 0]
        self.hi = [0, 0, 0, 0]
        self.wn = [0, 0, 0, 0]
        self.span = [-1, -1, -1, -1]
        # drift: cell means over empty running belt against a baseline
        self.empty = False
        self.dsum = [0, 0, 0, 0]
        self.dn = 0
        self.base = None  # persisted
        self.dev = None
        self.drift = [False, False, False, False]

    def on_sample(self, s):
        st = s.status
        self.n += 1
        self.st |= st
        moving = s.di & _DI_RUN and s.freq_centihz > 0
        empty = moving and self.empty and not (st & 0xF)
        cells = s.cells
        for i in range(4):
            if st & (1 << i):
                continue  # a faulty cell's value is meaningless
            v = cells[i]
            self.sum[i] += v
            self.cn[i] += 1
            if moving:
                if self.wn[i] == 0:
                    self.lo[i] = self.hi[i] = v
                elif v < self.lo[i]:
                    self.lo[i] = v
                elif v > self.hi[i]:
                    self.hi[i] = v
                self.wn[i] += 1
                if self.wn[i] >= _CELL_WINDOW:
                    self.span[i] = self.hi[i] - self.lo[i]
                    self.wn[i] = 0
            if empty:
                self.dsum[i] += v
        if empty:
            self.dn += 1

    def run(self, p, dt, rotate):
        if self.running is not None:
            r = self.running()
            band = p.get("scale.autozero_band_pct", 2.0)
            self.empty = bool(r["running"]) and r["load_pct"] < band
        if self.n == 0:
            return
        a = self.alarms
        st = self.st
        self.n = self.st = 0
        self.judged = True
        lo = p["alarms.cell_min_counts"]
        hi = p["alarms.cell_max_counts"]
        margin = (hi - lo) // 100
        for i in range(4):
            c = i + 1
            a.set("cell%d_fault" % c, st & (1 << i), "cell %d fault" % c)
            if self.cn[i]:
                m = self.sum[i] // self.cn[i]
                self.mean[i] = m
                self.out[i] = _hyst(
                    self.out[i], m < lo or m > hi, m < lo + margin or m > hi - margin
                )
                a.set("cell%d_range" % c, self.out[i], "cell %d at %d counts" % (c, m))
                self.sum[i] = self.cn[i] = 0
            span = self.span[i]
            if span >= 0:
                stuck = span <= p["alarms.cell_stuck_counts"]
                a.set("cell%d_stuck" % c, stuck, "cell %d varied %d counts" % (c, span))
        n = self.dn
        if n >= _CELL_WINDOW:
            self._drift(p, [self.dsum[i] // n for i in range(4)])

    def _drift(self, p, m):
        self.dn = 0
        for i in range(4):
            self.dsum[i] = 0
        if self.base is None:
            self.base = m
            return
        d = [m[i] - self.base[i] for i in range(4)]
        total = sum(d)
        # Each cell's zero change against the mean change of the other three: a shift
        # common to all four (temperature, belt wear) cancels.
        self.dev = [d[i] - (total - d[i]) // 3 for i in range(4)]
        thr = p["alarms.cell_drift_counts"]
        for i in range(4):
            dev = abs(self.dev[i])
            self.drift[i] = _hyst(self.drift[i], dev > thr, dev > thr * 4 // 5)
            detail = "cell %d zero moved %d counts from the others" % (i + 1, self.dev[i])
            self.alarms.set("cell%d_drift" % (i + 1), self.drift[i], detail)

    def rebaseline(self):
        self.base = None
        self.dev = None
        self.dn = 0
        for i in range(4):
            self.dsum[i] = 0
            self.drift[i] = False
            self.alarms.set("cell%d_drift" % (i + 1), False)


class Link:
    """The collector link from the driver's cumulative counters: lost, or degraded by
    its state, its error rate or its latency over the last minute.
    source() -> {"state", "requests", "responses", "timeouts", "crc_errors", "exceptions",
    "latency_ms_sum", "latency_ms_max", "consecutive_failures"}.
    Figures: stat, err_pm (errors per mille), lat_ms (mean), over the minute."""

    name = "link"
    stat = None

    def __init__(self, alarms, source):
        self.alarms = alarms
        self.source = source
        self.seen = [0, 0, 0, 0]  # the counters at the last run (_REQ, _ERR, _RESP, _LAT)
        self.win = [_Window(), _Window(), _Window(), _Window()]  # their last minute
        self.err_pm = 0
        self.lat_ms = 0
        self.err_bad = False
        self.lat_bad = False

    def run(self, p, dt, rotate):
        a = self.alarms
        s = self.source()
        self.stat = s
        lost = s["state"] == "lost"
        a.set("collector_link_lost", lost,
              s.get("port_error") or "%d failures in a row" % s["consecutive_failures"])
        now = (s["requests"], s["timeouts"] + s["crc_errors"], s["responses"], s["latency_ms_sum"])
        win = self.win
        for k in range(4):
            v = now[k]
            last = self.seen[k]
            self.seen[k] = v
            # A second that ends with the link lost is left out of the minute: an
            # outage's timeouts are collector_link_lost, not a degraded link once it is
            # back. A bad link that is lost only now and then keeps its figures.
            if not lost:
                win[k].add(v - last if v >= last else v)  # a counter that went down was reset
        req = win[_REQ].sum()
        self.err_pm = err = win[_ERR].sum() * 1000 // req if req >= _MIN_REQUESTS else 0
        # The latency of the last minute, like the error rate: a lifetime mean would take
        # as long as the healthy history to notice a slow collector, and to forget one.
        resp = win[_RESP].sum()
        self.lat_ms = lat = win[_LAT].sum() // resp if resp else 0
        if rotate:
            for w in win:
                w.rotate()
        thr_pm = int(p["alarms.link_error_pct"] * 10)
        self.err_bad = _hyst(self.err_bad, err > thr_pm, err > thr_pm // 2)
        lat_thr = p["alarms.link_latency_ms"]
        self.lat_bad = _hyst(self.lat_bad, lat > lat_thr, lat > lat_thr * 4 // 5)
        if self.err_bad:
            detail = "errors %s%%" % _tenths(err)
        elif self.lat_bad:
            detail = "latency %d ms" % lat
        else:
            detail = "collector driver reports %s" % s["state"]
        # Not while the outage itself is the alarm.
        bad = self.err_bad or self.lat_bad or s["state"] != "ok"
        a.set("collector_link_degraded", bad and not a.is_active("collector_link_lost"), detail)


class Store(_Check):
    """Free flash. source() -> {"free_bytes", "write_errors", "corrupt_found", "pending"}.
    Figures: stat."""

    name = "store"
    low = False

    def run(self, p, dt, rotate):
        s = self.source()
        self.stat = s
        free = s["free_bytes"]
        low = p["alarms.flash_free_min_kib"] * 1024
        self.low = _hyst(self.low, free < low, free < low + low // 10)
        self.alarms.set("flash_low", self.low, "flash free %d KiB" % (free // 1024))


class Uplink(_Check):
    """The center: unreachable, or reachable without ACKs, too long; the backlog.
    source() -> {"state", "connected", "acked", "backlog"}.
    Figures: stat, down_ms (persisted), noack_ms."""

    name = "uplink"
    down_ms = 0
    noack_ms = 0
    acked = None
    backlogged = False

    def run(self, p, dt, rotate):
        a = self.alarms
        s = self.source()
        self.stat = s
        if s["connected"]:
            self.down_ms = 0
        else:
            self.down_ms += dt
        if s["acked"] != self.acked:
            self.acked = s["acked"]
            self.noack_ms = 0
        elif s["connected"] and s["backlog"] > 0:
            self.noack_ms += dt
        else:
            self.noack_ms = 0  # nothing waiting: no ACK is due
        limit = p["alarms.upload_down_s"] * 1000
        if self.down_ms > limit:
            a.set("upload_down", True, "center unreachable for %d s" % (self.down_ms // 1000))
        else:
            detail = "no ACK for %d s" % (self.noack_ms // 1000)
            a.set("upload_down", self.noack_ms > limit, detail)
        backlog = s["backlog"]
        thr = p["alarms.backlog_records"]
        self.backlogged = _hyst(self.backlogged, backlog > thr, backlog > thr * 9 // 10)
        a.set("upload_backlog", self.backlogged, "%d records waiting" % backlog)


class Loop:
    """The gateway's loop (the source: a gateway.loop.Loop): overruns in the last
    minute, failed jobs. Figures: source.max_late_ms, overruns (the loop's count)."""

    name = "loop"
    overruns = 0
    bad = False

    def __init__(self, alarms, source):
        self.alarms = alarms
        self.source = source
        self.win = _Window()
        self.errors = {}  # job -> its error count at the last run

    def run(self, p, dt, rotate):
        ovr = 0
        failed = None
        for name, js in self.source.stats().items():
            ovr += js["overruns"]
            if js["errors"] > self.errors.get(name, 0):
                failed = name if failed is None else failed + "," + name
            self.errors[name] = js["errors"]
        self.win.add(ovr - self.overruns if ovr >= self.overruns else ovr)
        self.overruns = ovr
        n = self.win.sum()
        if rotate:
            self.win.rotate()
        self.bad = _hyst(self.bad, n >= _OVERRUNS, n > 0)
        self.alarms.set("loop_overrun", self.bad, "%d overruns in a minute" % n)
        if failed is not None:
            self.alarms.raise_event("job_failed", failed)


class Memory(_Check):
    """Free heap every 10 s. source() -> free bytes, or None (CPython: no heap figure).
    Figures: free (None: not known)."""

    name = "memory"
    free = None
    ms = _MEM_EVERY_MS  # since the last look: the first run looks
    low = False

    def run(self, p, dt, rotate):
        self.ms += dt
        if self.ms < _MEM_EVERY_MS:
            return
        self.ms = 0
        free = self.source()
        if free is None:
            return
        self.free = free
        low = p["alarms.mem_free_min_kib"] * 1024
        self.low = _hyst(self.low, free < low, free < low + low // 4)
        self.alarms.set("memory_low", self.low, "free heap %d KiB" % (free // 1024))


class Production(_Check):
    """Day and month against their limits. source() -> {"day_t", "month_t"}.
    Figures: stat."""

    name = "production"

    def run(self, p, dt, rotate):
        s = self.source()
        self.stat = s
        for code, key, lkey, what in (
            ("overproduction_day", "day_t", "alarms.day_limit_t", "day"),
            ("overproduction_month", "month_t", "alarms.month_limit_t", "month"),
        ):
            limit = p[lkey]
            v = s[key]
            self.alarms.set(code, 0 < limit < v, "%s %d t > %d t" % (what, int(v), int(limit)))


class Clock(_Check):
    """The wall clock (the source: a hal.clock): never set, stepped beyond the time that
    passed, or behind the latest time seen. Figures: wall (at the last run), step (the
    last step, s); hwm (the latest wall time seen) is persisted."""

    name = "clock"
    wall = None
    step = 0
    hwm = 0

    def run(self, p, dt, rotate):
        a = self.alarms
        wall = int(self.source.time())
        not_set = wall < _CLOCK_VALID_S
        a.set("clock_not_set", not_set, "wall clock %d" % wall)
        step_s = p["alarms.clock_step_s"]
        if self.wall is not None:
            step = (wall - self.wall) - (dt + 500) // 1000
            if step >= step_s or step <= -step_s:
                self.step = step
                a.raise_event("clock_stepped", "%+d s" % step)
        self.wall = wall
        if not_set:
            return
        back = wall < self.hwm - step_s
        a.set("clock_backwards", back, "%d s behind the latest record time" % (self.hwm - wall))
        if wall > self.hwm:
            self.hwm = wall

    def set(self, p, step_s):
        """The clock was set by step_s: judged now; the next run sees no step."""
        step = int(round(step_s))
        if self.wall is not None:
            self.wall += step
        if step >= p["alarms.clock_step_s"] or step <= -p["alarms.clock_step_s"]:
            self.step = step
            self.alarms.raise_event("clock_stepped", "%+d s" % step)


def _tenths(v):
    """'-1.5' from -15: a value in tenths, without floats."""
    return "%s%d.%d" % ("-" if v < 0 else "", abs(v) // 10, abs(v) % 10)
