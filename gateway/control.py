# The center's commands (status, get_params, set_params, time_sync, set_output, ack_alarm)
# and the status report they, the CLI and the monitor show. Loaded for each call only
# (gateway/ondemand.py, from Gateway.status() and the app's command handlers): commands
# are rare, and where bytecode lives in RAM this code then costs heap only while it runs.
# Every function takes the gateway (gateway.app.Gateway) and reads it; changes go through
# its own methods (set_params, set_time, set_output, ack_alarm), which persist and
# record them.
from gateway import ondemand
from gateway.center.commands import Busy, CommandError
from gateway.errors import ConfigError

def report(gw):
    """The gateway's state at a glance: rate, totals, running, vibration, links, alarms
    and the self-diagnosis summary."""
    m = gw.measurement.status()
    sc = m["scale"]
    prod = m["production"]
    totals = {}
    for kind in ("interval", "shift", "day", "month", "quarter", "year"):
        if kind in prod:
            totals[kind] = {"mass_kg": prod[kind]["mass_kg"], "conv_kg": prod[kind].get("conv_kg")}
    link = gw._link_stats()
    up = gw.uplink.stats()
    return {
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
                   if up["failure"] is None else {"kind": up["failure"], "t": up["failure_t"],
                                                  "detail": up["last_error"]}},
        "alarms": [a["code"] for a in gw.alarms.active()],
        "diag": gw.diag.report()["summary"],
    }


# --- the commands, one function per op (gateway.app's CENTER_OPS): op(gw, args) -> result;
# CommandError for an invalid command (nothing changed), Busy when it cannot be applied
# now (gateway/center/commands.py keeps it and retries)


def status(gw, args):
    return report(gw)


def get_params(gw, args):
    return {"params": ondemand.call("gateway.config", "nest", gw.params_public())}


def set_params(gw, args):
    changes = args.get("params") if isinstance(args, dict) else None
    if not isinstance(changes, dict):
        raise CommandError("set_params needs {\"params\": {...}}")
    try:
        changed = gw.set_params(changes, "center")
    except ConfigError as e:
        raise CommandError(str(e))
    return {"changed": changed}


def time_sync(gw, args):
    t = args.get("time") if isinstance(args, dict) else None
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 1e9 < t < 1e10:
        raise CommandError("time_sync needs {\"time\": unix seconds}")
    return {"step_s": gw.set_time(t, "center")}


def set_output(gw, args):
    if not isinstance(args, dict):
        raise CommandError("set_output needs {\"do\": 1|2, \"on\": bool}")
    do, on = args.get("do"), args.get("on")
    # An int, not 1.0 (1.0 == 1 would pass "in (1, 2)" and fail in the driver).
    if not isinstance(do, int) or isinstance(do, bool) or do not in (1, 2) \
            or not isinstance(on, bool):
        raise CommandError("set_output needs {\"do\": 1|2, \"on\": bool}")
    if not gw.collector.online:
        raise Busy("collector offline")
    gw.set_output(do, on, "center")
    return {"do": do, "on": on}


def ack_alarm(gw, args):
    code = args.get("code") if isinstance(args, dict) else None
    if not isinstance(code, str):
        raise CommandError("ack_alarm needs {\"code\": str}")
    try:
        return {"code": code, "acknowledged": gw.ack_alarm(code, "center")}
    except ValueError as e:  # AlarmError: unknown code, or a condition alarm
        raise CommandError(str(e))
