# The self-diagnosis report (Diagnostics.report): every check with pass/warn/fail and its
# figures. Asked for rarely (the diag record every 10 minutes, status, the CLI), so it is
# loaded for each call only (gateway/ondemand.py); it reads the figures each check of
# gateway/health/checks.py documents.
from gateway.health.alarms import CHECKS, spec
from hal.compat import const

_SAMPLE_CHECKS = const(("collector", "cells", "speed", "vibration", "power"))
_DI_RUN = const(1)
_DI_BATTERY = const(2)


def report(diag, compact):
    """Every check with pass/warn/fail and its figures. compact=True is the diag
    record's form: the names of passing checks, figures only where not passing (and the
    cross-check's learning state always)."""
    worst = {}
    for al in diag.alarms.active():
        _, lv, _, _, _, check = spec(al["code"])
        level = "fail" if lv == "F" else "warn"
        if worst.get(check) != "fail":
            worst[check] = level
    by_name = {}
    for check in diag.checks:
        by_name[check.name] = check
    checks = []
    summary = "pass"
    for name in CHECKS:
        if name == "crosscheck":
            figs = _crosscheck(diag)
        else:
            figs = _figures(by_name, diag.identity, name)
        if figs is None:
            continue
        if name == "identity":
            figs["cal_count"] = diag.p.get("scale.cal_count", 0)  # never reset
        result = worst.get(name, "pass")
        if result == "pass" and "samples" in figs:
            result = "warn"  # no sample judged yet
        if result == "fail" or (result == "warn" and summary == "pass"):
            summary = result
        checks.append((name, result, figs))
    alarms = diag.alarms.active_count()
    up_s = diag.uptime_ms // 1000
    if not compact:
        return {
            "checks": [{"name": n, "result": r, "figures": f} for n, r, f in checks],
            "summary": {"result": summary, "alarms": alarms, "uptime_s": up_s},
        }
    out = {"result": summary, "alarms": alarms, "up_s": up_s}
    passed = [n for n, r, _ in checks if r == "pass"]
    if passed:
        out["pass"] = ",".join(passed)
    for n, r, f in checks:
        if r != "pass":
            out.setdefault(r, {})[n] = f
        elif n == "crosscheck":
            out[n] = f  # its learning state, always
    return out


def _figures(by_name, identity, name):
    """The figures of report check `name` from the figures of the diagnosis' checks
    (gateway/health/checks.py), or None where the source is not wired or has not
    answered yet."""
    if name in _SAMPLE_CHECKS:
        s = by_name["cells" if name == "cells" else "samples"]
        if not s.judged:
            return {"samples": 0}
        if name == "collector":
            return {
                "supply_mv": s.mv,
                "temp_c": s.temp / 10,
                "uptime_s": s.uptime,
                "restarts": s.restarts,
            }
        if name == "cells":
            figs = {"mean": list(s.mean), "span": list(s.span)}
            if s.dev is not None:
                figs["drift"] = list(s.dev)
            return figs
        if name == "speed":
            return {"freq_hz": s.freq / 100, "running": s.di & _DI_RUN}
        if name == "vibration":
            return {"rms_mv": s.vib / 10}
        return {"battery": (s.di & _DI_BATTERY) >> 1, "supply_mv": s.mv}
    if name == "gateway":
        figs = {}
        loop = by_name.get("loop")
        if loop is not None:
            figs["max_late_ms"] = loop.source.max_late_ms
            figs["overruns"] = loop.overruns
            stalled = loop.source.stalled(by_name["clock"].source.ticks_ms())
            if stalled:
                figs["stalled"] = ",".join(stalled)
        mem = by_name.get("memory")
        if mem is not None and mem.free is not None:
            figs["mem_kib"] = mem.free // 1024
        return figs
    if name == "identity":
        return None if identity is None else identity.report()
    if name == "clock":
        c = by_name["clock"]
        return {"t": c.wall, "last_step_s": c.step}
    c = by_name.get("store" if name == "storage" else name)
    s = None if c is None else c.stat
    if s is None:
        return None
    if name == "link":
        figs = {
            "state": s["state"],
            "err_pct": c.err_pm / 10,
            "lat_ms": c.lat_ms,
            "lat_max": s["latency_ms_max"],
        }
        if s.get("port_failures"):  # the port would not open (hal/uart.py): why, how often
            figs["port_error"] = s["port_error"] or "none now"
            figs["port_failures"] = s["port_failures"]
        return figs
    if name == "storage":
        return {
            "free_kib": s["free_bytes"] // 1024,
            "write_errors": s["write_errors"],
            "corrupt": s["corrupt_found"],
            "pending": s["pending"],
        }
    if name == "uplink":
        return {
            "connected": bool(s["connected"]),
            "backlog": s["backlog"],
            "down_s": max(c.down_ms, c.noack_ms) // 1000,
        }
    if name == "production":
        return {"day_t": s["day_t"], "month_t": s["month_t"]}
    return None


def _round1(v):
    return None if v is None else round(v, 1)


def _crosscheck(diag):
    """The output-against-power cross-check's learning state (docs/crosscheck.md)."""
    if diag.crosscheck is None:
        return None
    s = diag.crosscheck()
    return {"state": s["state"], "h": round(s["hours"], 2),
            "kwh_per_t": round(s["kwh_per_t"], 4), "fit_pct": _round1(s["fit_pct"]),
            "dev_pct": _round1(s["dev_pct"]), "paused": s["paused"]}
