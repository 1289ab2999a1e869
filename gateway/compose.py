# The gateway built (gateway/app.py runs it): every job made from the parameters in force
# and the hardware handed in, and wired. Loaded by Gateway.__init__ and forgotten after
# (ondemand.once): where bytecode lives in RAM this code then costs heap only while the
# gateway is built. It makes no function of its own that outlives the call (that would
# keep all of it). gateway/start.py is the other half of the start.
from drivers.collector import Collector
from gateway import FIRMWARE_VERSION, ondemand
from gateway.app import CENTER_OPS
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

# While a RECORDS frame is read, encoded and sealed, each record takes about 1.5 KB of heap
# on the unix port (its dict, its JSON, the sealed bytes): frames are sized so that one
# needs at most a quarter of the heap left free after start-up.
_HEAP_PER_RECORD = const(1536)


def _upload_batch():
    free = mem_free()
    if free is None:
        return 256  # CPython: no heap to fit
    return max(8, min(256, free // 4 // _HEAP_PER_RECORD))


def build(gw, cfg, key, hw, monitor):
    """Gateway(cfg, key, hw, monitor): its jobs, wired."""
    gw.hw = hw
    gw.clock = clock = hw.clock
    gw.monitor = monitor  # a gateway.panel.monitor.Monitor job, or None
    gw.device_id = cfg["device_id"]
    flash = hw.flash
    gw.param_slots = Slots(flash, "params")
    gw.params = p = _params_in_force(gw.param_slots, cfg)
    n_meters = len(p["meters.terminals"]) if p["meters.port"] else 0
    gw._ckpt_slots = Slots(flash, "checkpoint")
    gw.alarms = Alarms(clock, gw.emit, set_do1=gw._set_do1, params=p)
    gw.log = RecordLog(flash, budget_bytes=p["store.budget_mib"] << 20, alarm=gw.alarms.set)
    gw.collector = c = Collector(
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
    gw.measurement = Measurement(p, clock, gw.emit, gw.alarms.set)
    # The power side, only with terminals configured (docs/power.md).
    gw.meters = gw.power = None
    if n_meters:
        from gateway.power.energy import build as build_power

        build_power(gw, hw, p)
    handlers = {}
    for op in CENTER_OPS:
        handlers[op] = gw._center_command(op)
    gw.commands = Commands(Slots(flash, "commands"), handlers, clock, ready=gw._command_ready)
    gw.uplink = Uplink(
        hw.center_connect,
        gw.device_id,
        key,
        gw.log,
        gw.commands,
        clock,
        fw=FIRMWARE_VERSION,
        ping_s=p["center.ping_s"],
        silence_s=p["center.silence_s"],
        backoff_max_s=p["center.backoff_max_s"],
        alarm=gw.alarms.set,
        emit=gw.emit,
        on_breakpoint=gw._on_breakpoint,
        batch=_upload_batch(),
    )
    gw.loop = Loop(clock, watchdog=hw.watchdog, slack_ms=c.max_run_ms)
    # The diagnosis owns the identity: it feeds it, starts it and keeps its state.
    identity = Identity(gw.alarms, Slots(flash, "identity"), clock, gw.device_id, gw.emit)
    gw.diag = Diagnostics(
        gw.alarms,
        p,
        clock,
        gw.emit,
        identity,
        link=c.link_counters,
        store=gw.log.stats,
        uplink=gw.uplink.stats,
        loop=gw.loop,
        production=gw._production_t,
        running=gw._running_figures,
        reset_cause=hw.watchdog.reset_cause() if hw.watchdog else None,
    )
    if gw.power is not None and gw.power.cross is not None:
        gw.diag.crosscheck = gw.power.cross.status
    gw.lcd = None
    if hw.display:
        from gateway.panel.lcd import GatewayValues, Lcd  # only where there is a panel

        gw.lcd = Lcd(hw.display, clock, GatewayValues(gw), gw.alarms, p)
    gw.cli = None
    if hw.cli_uart is not None:
        gw.cli = CliPort(hw.cli_uart, clock, gw.device_id, gw._load_cli, flash)
    gw.measurement.verify_identity = c.read_identity
    c.on_sample = gw._on_sample
    c.on_capture = gw._on_capture
    c.on_identity = gw._on_identity
    c.on_restart = gw._on_collector_restart
    gw._ckpt_due_ms = 0
    gw.checkpoint_errors = 0
    gw._was_online = False
    gw.last_capture = None


def _params_in_force(slots, cfg):
    """The configuration file's values, overridden by the run-time set persisted on
    flash (what technicians and the center changed since commissioning)."""
    stored = slots.load() or {}
    if stored.get("params"):
        params = ondemand.call("gateway.config", "in_force", cfg, stored["params"])
    else:
        params = dict(cfg)  # never changed: no schema to load at start
    # Kept with them, never settable: the calibration counter and the verified zero
    # (gateway/control.py).
    params["scale.cal_count"] = stored.get("cal_count", 0)
    params["scale.zero_ref_counts"] = stored.get("zero_ref_counts")
    return params
