# The gateway's operations for the people who run it: what the technician's CLI and the
# center's commands both read and change (the state at a glance, the parameters, the
# clock, the switch outputs, alarm acknowledgement), and what only the CLI offers (records,
# the maintenance log, identity, the coefficient, the calibration procedures). One
# implementation: the CLI holds a Control while it is loaded; the center's commands
# (command()) and the monitor (report()) load this module for the call only
# (gateway/ondemand.py), so its code costs heap only while it is used.
#
# Control works through the parts' public methods; the Gateway keeps composing them and
# checkpointing; a new parameter set is persisted and applied to every job here.
from gateway import ondemand
from gateway.center.commands import Busy, CommandError
from gateway.store import history
from hal.compat import const

_LOG_SCAN = const(512)  # records read back at most to find the maintenance events
_LOG_CHUNK = const(64)
_PERIODS = const(("interval", "shift", "day", "month", "quarter", "year"))

# The calibration parameters: every applied change of any of them counts in
# scale.cal_count, kept with the parameters and never settable.
_CAL_KEYS = const((
    "scale.zero_counts",
    "scale.span_kg_per_count",
    "scale.pulses_per_m",
    "scale.material_factor",
    "scale.linearization",
    "scale.weigh_length_m",
))


class Control:
    def __init__(self, gw):
        self._gw = gw

    # --- reading ----------------------------------------------------------------------

    def params(self):
        """Every parameter in force (the device key is never among them)."""
        return dict(self._gw.params)

    def status(self):
        """The state at a glance: rate, totals, running, vibration, links, alarms and the
        self-diagnosis summary."""
        gw = self._gw
        m = gw.measurement.status()
        sc = m["scale"]
        prod = m["production"]
        totals = {}
        for period in _PERIODS:
            if period in prod:
                totals[period] = {"mass_kg": prod[period]["mass_kg"],
                                  "conv_kg": prod[period].get("conv_kg")}
        link = gw.collector.link_counters()
        up = gw.uplink.stats()
        out = {
            "time": int(gw.clock.time()),
            "rate_tph": sc["rate_tph"],
            "speed_mps": sc["speed_mps"],
            "load_kgpm": sc["load_kgpm"],
            "running": m["running"]["state"] == "running",
            "run_state": m["running"]["state"],
            "total_kg": sc["total_kg"],
            "totals": totals,
            "coef": prod.get("coef"),
            "vibration": m["vibration"],
            "link": {"state": link["state"], "timeouts": link.get("timeouts"),
                     "crc_errors": link.get("crc_errors")},
            "uplink": {"state": up["state"], "backlog": up["backlog"], "last_failure": None
                       if up["failure"] is None else {"kind": up["failure"],
                                                      "t": up["failure_t"],
                                                      "detail": up["last_error"]}},
            "alarms": [a["code"] for a in gw.alarms.active()],
            "diag": gw.diag.report()["summary"],
            "cal_count": gw.params.get("scale.cal_count"),  # calibration changes, never reset
        }
        if gw.power:
            out["power"] = self._power(prod)
        # A port that would not open: why (the OS's words) and how often (hal/uart.py).
        if link.get("port_failures"):
            out["link"]["port_error"] = link["port_error"] or "none now"
            out["link"]["port_failures"] = link["port_failures"]
        cli = gw.hw.cli_uart
        if getattr(cli, "open_failures", 0):
            out["cli_port"] = {"error": cli.open_error or "none now",
                               "failures": cli.open_failures}
        return out

    def _power(self, prod):
        # The terminals, and the belt drive's kWh per tonne over the last interval and the
        # open day (docs/power.md).
        out = self._gw.power.status()
        day_kwh = out.pop("day_kwh", None)
        day_kg = prod["day"]["mass_kg"] if "day" in prod else 0
        out["day_kwh_per_t"] = round(day_kwh * 1000 / day_kg, 3) if day_kwh and day_kg else None
        return out

    def load_pct(self):
        """The load on the belt now, in % of the design load."""
        scale = self._gw.measurement.scale
        return scale.load_kgpm() * 100.0 / scale.design_kgpm if scale.design_kgpm else None

    def identity(self):
        gw = self._gw
        reg = gw.diag.identity.registered() or {}
        serials = reg.get("serials") or []
        out = {"device_id": gw.device_id, "collector": {}, "sensors": [], "registered": {}}
        if serials:
            out["collector"] = {"serial": serials[0], "fw": reg.get("fw"),
                                "vendor_id": reg.get("vendor_id"), "model": reg.get("model")}
            out["sensors"] = serials[1:]
            out["registered"] = {"by": reg.get("by"), "t": reg.get("t")}
        out["registered"]["swapped"] = gw.diag.identity.report().get("swapped", 0)
        return out

    def alarms_active(self):
        return self._gw.alarms.active()

    def diag_report(self):
        return self._gw.diag.report()

    def records(self, from_seq, max_n):
        return self._gw.log.read(from_seq, max_n)

    def records_time(self, t0, t1, max_n):
        return history.read_time(self._gw.log, t0, t1, max_n)

    def maintenance_log(self, max_n):
        """The newest max_n event records, oldest first (looking back _LOG_SCAN records)."""
        log = self._gw.log
        found = []
        hi = log.head
        lo_limit = max(log.oldest, hi - _LOG_SCAN + 1)
        while hi >= lo_limit and len(found) < max_n:
            lo = max(lo_limit, hi - _LOG_CHUNK + 1)
            chunk = [r for r in log.read(lo, hi - lo + 1) if r.get("type") == "event"]
            found = chunk + found
            hi = lo - 1
        return found[-max_n:]

    def time(self):
        return self._gw.clock.time()

    def coef(self):
        prod = self._gw.measurement.production.status()
        hist = prod.get("coef_history") or []
        now = self.time()
        since = None
        for t, _ in hist:
            if t <= now:
                since = t
        return {"value": prod.get("coef"), "since": since, "history": hist}

    # --- changing: `who` is recorded with each change ("tech:ID", "center") ------------

    def set_params(self, changes, who):
        """Validate the whole set, persist it, apply it, record it. Returns
        {key: [old, new]} for the keys that changed; ConfigError (nothing applied)."""
        gw = self._gw
        old = gw.params
        flat, run_time = ondemand.call("gateway.config", "check_change", old, changes)
        sc = gw.measurement.scale
        verified, sc.verified_zero = sc.verified_zero, None  # a verified zero calibration's
        changed = {}
        for key in flat:
            if old[key] != flat[key]:
                changed[key] = [old[key], flat[key]]
        if not changed:
            return changed
        new = dict(old)
        new.update(flat)
        # Every change of a calibration parameter counts, for good (HB44's calibration
        # event counter); the zero a verified zero calibration set is the reference of
        # the next ones (gateway/measure/calibration.py).
        for key in changed:
            if key in _CAL_KEYS:
                new["scale.cal_count"] = old.get("scale.cal_count", 0) + 1
        if verified is not None and new["scale.zero_counts"] == verified:
            new["scale.zero_ref_counts"] = verified
        _commit_params(gw, new, run_time, who)
        gw.emit("event", {"code": "param_changed", "detail": {"by": who, "changes": changed}})
        gw.alarms.raise_event("param_changed", "%s: %s" % (who, ", ".join(sorted(changed))))
        return changed

    def reanchor_crosscheck(self, who):
        """A confirmed material test: the scale is right as of now, and the output-against-
        power model learns afresh from it (docs/crosscheck.md)."""
        power = self._gw.power
        if power is not None and power.cross is not None:
            power.cross.reanchor(who)

    def set_coef(self, value, effective_t, who):
        return self.set_params({"production.coef": value,
                                "production.coef_from": int(effective_t)}, who)

    def set_time(self, unix_s, who):
        """Step the clock; returns the step in s."""
        gw = self._gw
        step = round(gw.clock.set_time(unix_s), 3)
        gw.emit("event", {"code": "time_set", "detail": {"by": who, "step_s": step}})
        gw.diag.clock_set(step)
        gw.checkpoint_soon()  # the new offset survives a restart
        return step

    def set_output(self, do, on, who):
        self._gw.collector.write_output(do, on)
        self._gw.emit("event", {"code": "output_set", "detail": {"by": who, "do": do, "on": on}})

    def ack_alarm(self, code, who):
        """Clear a one-shot alarm now (condition alarms clear only with their condition).
        Returns whether it was active; AlarmError for an unknown or condition code."""
        if not self._gw.alarms.ack(code):
            return False
        self._gw.emit("event", {"code": "alarm_ack", "detail": {"by": who, "alarm": code}})
        return True

    def register_units(self, who):
        self._gw.diag.register(who)

    def emit(self, rtype, fields):
        return self._gw.emit(rtype, fields)

    def calibrator(self):
        """The calibration procedures (gateway.measure.calibration.Calibrator)."""
        return self._gw.measurement.calibrator()



def report(gw):
    """The status at a glance (the monitor's line)."""
    return Control(gw).status()


def command(gw, op, args):
    """Carry out the center's command op (gateway.app.CENTER_OPS) with its args, by
    center. CommandError (or another UserError) for an invalid one: nothing changed;
    Busy when it cannot be applied now (gateway/center/commands.py retries it)."""
    ctl = Control(gw)
    if not isinstance(args, dict):
        args = {}  # each op below says what it needs
    if op == "status":
        return ctl.status()
    if op == "get_params":
        return {"params": ondemand.call("gateway.config", "nest", ctl.params())}
    if op == "set_params":
        changes = args.get("params")
        if not isinstance(changes, dict):
            raise CommandError("set_params needs {\"params\": {...}}")
        return {"changed": ctl.set_params(changes, "center")}
    if op == "time_sync":
        t = args.get("time")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 1e9 < t < 1e10:
            raise CommandError("time_sync needs {\"time\": unix seconds}")
        return {"step_s": ctl.set_time(t, "center")}
    if op == "set_output":
        do, on = args.get("do"), args.get("on")
        # An int, not 1.0 (1.0 == 1 would pass "in (1, 2)" and fail in the driver).
        if not isinstance(do, int) or isinstance(do, bool) or do not in (1, 2) \
                or not isinstance(on, bool):
            raise CommandError("set_output needs {\"do\": 1|2, \"on\": bool}")
        if not gw.collector.online:
            raise Busy("collector offline")
        ctl.set_output(do, on, "center")
        return {"do": do, "on": on}
    if op == "ack_alarm":
        code = args.get("code")
        if not isinstance(code, str):
            raise CommandError("ack_alarm needs {\"code\": str}")
        return {"code": code, "acknowledged": ctl.ack_alarm(code, "center")}
    raise CommandError("unknown op %s" % op)


def _commit_params(gw, params, run_time, who):
    """Persist a checked parameter set (run_time: the run-time keys as persisted) and
    apply it to every job."""
    # Persisted before anything uses it: a cut here leaves the old set or the new one.
    gw.param_slots.save({
        "params": run_time,
        "by": who,
        "t": int(gw.clock.time()),
        "cal_count": params["scale.cal_count"],
        "zero_ref_counts": params["scale.zero_ref_counts"],
    })
    gw.params = params
    gw.measurement.apply_params(params)
    gw.alarms.apply_params(params)
    gw.diag.apply_params(params)
    if gw.power:
        gw.power.apply_params(params)
    if gw.lcd:
        gw.lcd.apply_params(params)
    if gw.cli:
        gw.cli.apply_params(params)
