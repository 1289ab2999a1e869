# The gateway: builds every job from the configuration and the hardware it is handed,
# restores what survived the last power cut, and runs the one loop. It holds the
# parameters in force, persists a new set and applies it to every job (commit_params),
# and checkpoints. What technicians and the center do with it goes through
# gateway/control.py, loaded on demand.
import gc

from drivers.collector import Collector
from gateway import FIRMWARE_VERSION, ondemand
from gateway.center.commands import Commands
from gateway.center.uplink import Uplink
from gateway.cli.port import CliPort
from gateway.health.alarms import Alarms
from gateway.health.diag import Diagnostics
from gateway.health.identity import Identity
from gateway.loop import Loop
from gateway.measure.measurement import Measurement
from gateway.store.recordlog import RecordLog
from gateway.store.slots import Slots
from hal.compat import const, mem_free

# The commands the center may send (../shared/specs/center-station.md), each carried out
# by gateway.control.command.
CENTER_OPS = ("status", "get_params", "set_params", "time_sync", "set_output", "ack_alarm")
_CHECKPOINT_BUFFER = const(2048)
_CHECKPOINT_PER_TERMINAL = const(160)  # its registers and reported energy in the checkpoint
_CHECKPOINT_CROSSCHECK = const(768)  # the output-against-power model, with a belt drive
_TAIL_RECORDS = const(64)  # records read back at start-up to reconcile the checkpoint with the log
_TAIL_CHUNK = const(8)
# While a RECORDS frame is read, encoded and sealed, each record takes about 1.5 KB of heap
# on the unix port (its dict, its JSON, the sealed bytes): frames are sized so that one
# needs at most a quarter of the heap left free after start-up.
_HEAP_PER_RECORD = const(1536)


def _upload_batch():
    free = mem_free()
    if free is None:
        return 256  # CPython: no heap to fit
    return max(8, min(256, free // 4 // _HEAP_PER_RECORD))


class Gateway:
    def __init__(self, cfg, key, hw, monitor=None):
        self.hw = hw
        self.clock = clock = hw.clock
        self.monitor = monitor  # a gateway.panel.monitor.Monitor job, or None
        self.device_id = cfg["device_id"]
        flash = hw.flash
        self._param_slots = Slots(flash, "params")
        # The checkpoint keeps a buffer for its JSON (~1.3 KB), made now while the heap is
        # whole: gateway/store/slots.py.
        self.params = self._params_in_force(cfg)
        p = self.params
        n_meters = len(p["meters.terminals"]) if p["meters.port"] else 0
        drive = n_meters and any(t["role"] == "belt_drive" for t in p["meters.terminals"])
        self._ckpt_slots = Slots(flash, "checkpoint", buffer_bytes=_CHECKPOINT_BUFFER
                                 + n_meters * _CHECKPOINT_PER_TERMINAL
                                 + (_CHECKPOINT_CROSSCHECK if drive else 0))
        self.alarms = Alarms(clock, self.emit, set_do1=self._set_do1, params=p)
        self.log = RecordLog(
            flash, budget_bytes=p["store.budget_mib"] << 20, alarm=self.alarms.set
        )
        self.collector = Collector(
            hw.collector_uart,
            clock,
            address=p["collector.address"],
            baud=p["collector.baud"],
            poll_hz=p["collector.poll_hz"],
            timeout_ms=p["collector.timeout_ms"],
            retries=p["collector.retries"],
            identity_s=p["collector.identity_s"],
            capture_s=p["collector.capture_s"],
        )
        self.measurement = Measurement(p, clock, self.emit, self.alarms.set)
        # The power side, only with terminals configured (docs/power.md).
        self.meters = self.power = None
        if n_meters:
            from gateway.power.energy import build

            build(self, hw, p)
        handlers = {}
        for op in CENTER_OPS:
            handlers[op] = self._center_command(op)
        self.commands = Commands(
            Slots(flash, "commands"), handlers, clock, ready=self._command_ready
        )
        self.uplink = Uplink(
            hw.center_connect,
            self.device_id,
            key,
            self.log,
            self.commands,
            clock,
            fw=FIRMWARE_VERSION,
            ping_s=p["center.ping_s"],
            silence_s=p["center.silence_s"],
            backoff_max_s=p["center.backoff_max_s"],
            alarm=self.alarms.set,
            emit=self.emit,
            on_breakpoint=self._on_breakpoint,
            batch=_upload_batch(),
        )
        self.loop = Loop(clock, watchdog=hw.watchdog, slack_ms=self.collector.max_run_ms)
        # The diagnosis owns the identity: it feeds it, starts it and keeps its state.
        identity = Identity(
            self.alarms, Slots(flash, "identity"), clock, self.device_id, self.emit
        )
        self.diag = Diagnostics(
            self.alarms,
            p,
            clock,
            self.emit,
            identity,
            link=self.collector.link_counters,
            store=self.log.stats,
            uplink=self.uplink.stats,
            loop=self.loop,
            production=self._production_t,
            running=self._running_figures,
            reset_cause=hw.watchdog.reset_cause() if hw.watchdog else None,
        )
        if self.power is not None and self.power.cross is not None:
            self.diag.crosscheck = self.power.cross.status
        self.lcd = None
        if hw.display:
            from gateway.panel.lcd import Lcd  # only where there is a panel

            self.lcd = Lcd(hw.display, clock, self._lcd_values, self.alarms, p)
        self.cli = None
        if hw.cli_uart is not None:
            self.cli = CliPort(hw.cli_uart, clock, self.device_id, self._load_cli, flash)
        c = self.collector
        self.measurement.verify_identity = c.read_identity
        c.on_sample = self._on_sample
        c.on_capture = self._on_capture
        c.on_identity = self._on_identity
        c.on_restart = self._on_collector_restart
        self._ckpt_due_ms = 0
        self.checkpoint_errors = 0
        self._was_online = False
        self.last_capture = None

    # --- parameters ------------------------------------------------------------------

    # The schema (gateway.config) is loaded only for these calls: ondemand.call.

    def _params_in_force(self, cfg):
        """The configuration file's values, overridden by the run-time set persisted on
        flash (what technicians and the center changed since commissioning)."""
        stored = self._param_slots.load() or {}
        if stored.get("params"):
            params = ondemand.call("gateway.config", "in_force", cfg, stored["params"])
        else:
            params = dict(cfg)  # never changed: no schema to load at start
        # Kept with them, never settable: the calibration counter and the verified zero
        # (gateway/control.py).
        params["scale.cal_count"] = stored.get("cal_count", 0)
        params["scale.zero_ref_counts"] = stored.get("zero_ref_counts")
        return params

    def commit_params(self, params, run_time, who):
        """Persist a checked parameter set (gateway.control.Control.set_params checks it;
        run_time: the run-time keys as persisted) and apply it to every job."""
        # Persisted before anything uses it: a cut here leaves the old set or the new one.
        self._param_slots.save({
            "params": run_time,
            "by": who,
            "t": int(self.clock.time()),
            "cal_count": params["scale.cal_count"],
            "zero_ref_counts": params["scale.zero_ref_counts"],
        })
        self.params = params
        self.measurement.apply_params(params)
        self.alarms.apply_params(params)
        self.diag.apply_params(params)
        if self.power:
            self.power.apply_params(params)
        if self.lcd:
            self.lcd.apply_params(params)
        if self.cli:
            self.cli.apply_params(params)

    def _load_cli(self):
        # Imported only when a technician types (gateway/cli/port.py unloads it again).
        from gateway.cli.session import build_cli

        return build_cli(self)

    # --- records -----------------------------------------------------------------------

    def emit(self, rtype, fields):
        """Append one record, stamped with the wall clock; returns its seq."""
        return self.log.append(rtype, int(self.clock.time()), fields)

    # --- collector callbacks -----------------------------------------------------------

    def _on_sample(self, s):
        self.measurement.on_sample(s)
        self.diag.on_sample(s)

    def _on_capture(self, wave, rate_hz):
        self.last_capture = self.measurement.on_capture(wave, rate_hz)

    def _on_identity(self, ident):
        self.diag.on_identity(ident)
        # Mass of a restarted or jumping collector counts once its serial is ours.
        reg = self.diag.identity.registered()
        self.measurement.identity_checked(reg is None or ident.get("serial") == reg["serials"][0])

    def _on_collector_restart(self, uptime_s):
        # The alarm's code (collector_restarted), so that the log reads as one story.
        self.emit("event", {"code": "collector_restarted", "detail": {"uptime_s": uptime_s}})

    def _set_do1(self, on):
        self.collector.write_output(1, on)

    # --- figures for diagnostics, LCD, status ------------------------------------------

    def _production_t(self):
        # Two figures, every second: not the whole status() (a dozen dicts each time).
        prod = self.measurement.production
        return {"day_t": prod.mass_kg("day") / 1000, "month_t": prod.mass_kg("month") / 1000}

    def _running_figures(self):
        sc = self.measurement.scale
        design = sc.design_kgpm if sc.design_kgpm else 1.0
        return {
            "running": self.measurement.running.state() == "running",
            "load_pct": sc.load_kgpm() * 100 / design,
            "speed_lost": sc.speed_lost,
        }

    def _lcd_values(self):
        m = self.measurement
        sc = m.scale
        up = self.uplink.stats()
        run = self._running_figures()
        s = self.collector.sample
        out = {
            "rate_tph": sc.rate_shown_tph(),
            "total_t": sc.total_g / 1e6,
            "day_t": self._production_t()["day_t"],
            "speed_mps": sc.speed_mps(),
            "running": run["running"],
            "load_pct": run["load_pct"],
            "battery": bool(s.di & 2) if self.collector.online else None,
            "link": self.collector.link.state,
            "center": up["connected"],
            "center_failure": up["failure"],
            "center_failure_t": up["failure_t"],
            "backlog": up["backlog"],
        }
        if self.power:
            out["power"] = self.power.figures()
        return out

    # --- center commands ---------------------------------------------------------------

    def _center_command(self, op):
        """The handler of one center command: gateway.control, loaded per command
        (commands are rare; its code costs heap only while one runs)."""

        def handle(args):
            return ondemand.call("gateway.control", "command", self, op, args)

        return handle

    def _command_ready(self, op):
        return op != "set_output" or self.collector.online

    # --- persistence -------------------------------------------------------------------

    def checkpoint_soon(self):
        """Checkpoint at the checkpoint job's next run (a stepped clock, a breakpoint)."""
        self._ckpt_due_ms = self.clock.ticks_ms()

    def _on_breakpoint(self, next_seq):
        # The center holds everything below next_seq: checkpoint at once, so retention
        # after a restart knows what it may reclaim.
        self.checkpoint_soon()

    def snapshot(self):
        snap = {
            "v": 1,
            "clock_offset_s": getattr(self.clock, "offset_s", 0.0),
            "measurement": self.measurement.snapshot(),
            "alarms": self.alarms.snapshot(),
            "diag": self.diag.snapshot(),
            "uplink": self.uplink.snapshot(),
            "cli": self.cli.snapshot() if self.cli else {},
        }
        if self.power:
            snap["power"] = self.power.snapshot()
        return snap

    def checkpoint(self):
        """Save the snapshot. A failure (the flash, or no room in the heap for the JSON)
        is counted and alarmed, and the job tries again at its next period: the previous
        checkpoint stays valid meanwhile. Returns whether it was saved."""
        try:
            self._ckpt_slots.save(self.snapshot())
        except (OSError, MemoryError) as e:
            self.checkpoint_errors += 1
            self.alarms.set("checkpoint_failed", True, "%s: %s" % (e.__class__.__name__, e))
            return False
        if self.alarms.is_active("checkpoint_failed"):
            self.alarms.set("checkpoint_failed", False)
        return True

    def _restore(self):
        ck = self._ckpt_slots.load()
        if not ck:
            return False
        if "clock_offset_s" in ck and hasattr(self.clock, "offset_s"):
            self.clock.offset_s = ck["clock_offset_s"]
        self.uplink.restore(ck["uplink"])
        self.measurement.restore(ck["measurement"])
        self.alarms.restore(ck["alarms"])
        self.diag.restore(ck["diag"])
        if self.cli and "cli" in ck:
            self.cli.restore(ck["cli"])
        if self.power and ck.get("power"):
            self.power.restore(ck["power"])
        return True

    def _log_tail(self):
        """The prod, total and power records among the newest _TAIL_RECORDS, oldest first: the
        only ones reconciling needs, read a few at a time so that a small heap never
        holds the whole tail."""
        log = self.log
        seq = max(log.oldest, log.head - _TAIL_RECORDS + 1)
        out = []
        while seq <= log.head:
            recs = log.read(seq, _TAIL_CHUNK)
            if not recs:
                break
            for r in recs:
                if r.get("type") in ("prod", "total", "power"):
                    out.append(r)
            seq = recs[-1]["seq"] + 1
        return out

    # --- jobs of the app itself ----------------------------------------------------------

    def _measurement_job(self, now):
        self.measurement.run(now)
        if self.measurement.checkpoint_due():
            # In the same run as the records: a cut between a prod record and the state
            # after it would make the next start count afresh from its first poll.
            self._checkpoint_now(now)

    def _checkpoint_now(self, now):
        battery = self.collector.online and self.collector.sample.di & 2
        period_s = self.params["store.checkpoint_battery_s" if battery else "store.checkpoint_s"]
        self.checkpoint()
        self._ckpt_due_ms = self.clock.ticks_add(now, period_s * 1000)

    def _checkpoint_job(self, now):
        if self.clock.ticks_diff(now, self._ckpt_due_ms) >= 0 or self.measurement.checkpoint_due():
            self._checkpoint_now(now)
        online = self.collector.online
        if online and not self._was_online:
            self.commands.wake()  # commands queued while the collector was away
        self._was_online = online

    def _flush_job(self, now):
        if self.log.pending:
            self.log.flush_pending()

    # --- start and run ---------------------------------------------------------------------

    def start(self):
        report = self.log.open()
        restored = self._restore()
        if restored:
            tail = self._log_tail()
            self.measurement.reconcile(tail)
            if self.power:
                self.power.adopt(tail)
            tail = None
        self.emit(
            "event",
            {
                "code": "gateway_start",
                "detail": {
                    "fw": FIRMWARE_VERSION,
                    "restored": restored,
                    "records": report.get("head", 0),
                    "torn_bytes": report.get("torn_bytes", 0),
                    "corrupt_skipped": report.get("corrupt_skipped", 0),
                },
            },
        )
        self.alarms.start()
        self.diag.start()
        self.measurement.start()
        self.commands.start()
        self.collector.start()
        self.uplink.start()
        # The first checkpoint at the job's first run. (A due time of 0 would be half a
        # ticks period away whenever the counter reads in the upper half.)
        self._ckpt_due_ms = self.clock.ticks_ms()
        loop = self.loop
        loop.add(_Job("collector", self.collector.run), 10)
        loop.add(_Job("measurement", self._measurement_job), 1000, 500)
        loop.add(self.uplink, 20, 5)
        loop.add(self.commands, 100, 7)
        loop.add(self.alarms, 1000, 300)
        loop.add(self.diag, 1000, 600)
        loop.add(_Job("checkpoint", self._checkpoint_job), 200, 50)
        loop.add(_Job("flush", self._flush_job), 2000, 150)
        if self.power:
            self.power.start(loop)
        if self.lcd:
            self.lcd.start()
            loop.add(self.lcd, 500, 250)
        if self.monitor:
            loop.add(self.monitor, 1000, 900)
        if self.cli:
            self.cli.start()
            loop.add(self.cli, 20, 3)
        if self.hw.watchdog:
            self.hw.watchdog.start()
        gc.collect()  # start-up's garbage gone before the first poll: less fragmentation

    def run(self, seconds=None):
        self.start()
        try:
            self.loop.run(None if seconds is None else int(seconds * 1000))
        except KeyboardInterrupt:
            pass
        self.stop()
        return 0

    def stop(self):
        self.checkpoint()
        self.uplink.stop()
        if self.cli:
            self.hw.cli_uart.close()  # the console gets its terminal settings back
        self.log.close()
        gc.collect()


class _Job:
    """A function as a loop job."""

    def __init__(self, name, fn):
        self.name = name
        self.run = fn

