# The gateway: holds every job, runs the one loop, holds the parameters in force, and
# checkpoints. gateway/compose.py builds it from the configuration and the hardware it is
# handed, gateway/start.py starts it and restores what survived the last power cut (each
# loaded for that only). What technicians and the center do with it goes through
# gateway/control.py, loaded on demand (a new parameter set persisted and applied too).
import gc

from gateway import ondemand

# The commands the center may send (../shared/specs/center-station.md), each carried out
# by gateway.control.command.
CENTER_OPS = ("status", "get_params", "set_params", "time_sync", "set_output", "ack_alarm")


class Gateway:
    def __init__(self, cfg, key, hw, monitor=None):
        """cfg: the flat configuration; key: the device key; hw: a hal.Hardware;
        monitor: a gateway.panel.monitor.Monitor job, or None."""
        ondemand.once("gateway.compose", "build", self, cfg, key, hw, monitor)

    # --- parameters ------------------------------------------------------------------

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
        """Recover, restore and start every job (gateway/start.py)."""
        ondemand.once("gateway.start", "start", self)
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

