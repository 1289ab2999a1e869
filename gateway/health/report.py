# The self-diagnosis report (Diagnostics.report): every check with pass/warn/fail and its
# figures. Asked for rarely (the diag record every 10 minutes, status, the CLI), so it is
# loaded for each call only (gateway/ondemand.py); it reads the Diagnostics' own state.
from gateway.health.alarms import TABLE
from hal.compat import const

CHECKS = (
    "link",
    "collector",
    "cells",
    "speed",
    "vibration",
    "power",
    "storage",
    "clock",
    "uplink",
    "gateway",
    "production",
    "crosscheck",
    "identity",
)
_SAMPLE_CHECKS = const(("collector", "cells", "speed", "vibration", "power"))
_DI_RUN = const(1)
_DI_BATTERY = const(2)


def report(diag, compact):
    """Every check with pass/warn/fail and its figures. compact=True is the diag
    record's form: the names of passing checks, figures only where not passing (and the
    cross-check's learning state always)."""
    worst = {}
    for al in diag.alarms.active():
        spec = TABLE[al["code"]]
        level = "fail" if spec[1] == "F" else "warn"
        if worst.get(spec[5]) != "fail":
            worst[spec[5]] = level
    checks = []
    summary = "pass"
    for name in CHECKS:
        figs = _figures(diag, name)
        if figs is None:
            continue
        result = worst.get(name, "pass")
        if result == "pass" and name in _SAMPLE_CHECKS and not diag._have_samples:
            result = "warn"
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


def _round1(v):
    return None if v is None else round(v, 1)


def _figures(diag, name):
    if name in _SAMPLE_CHECKS:
        if not diag._have_samples:
            return {"samples": 0}
        if name == "collector":
            return {
                "supply_mv": diag._mv,
                "temp_c": diag._temp / 10,
                "uptime_s": diag._uptime,
                "restarts": diag._restarts,
            }
        if name == "cells":
            figs = {"mean": list(diag._cmean), "span": list(diag._span)}
            if diag._dev is not None:
                figs["drift"] = list(diag._dev)
            return figs
        if name == "speed":
            return {"freq_hz": diag._freq / 100, "running": diag._di & _DI_RUN}
        if name == "vibration":
            return {"rms_mv": diag._vib / 10}
        return {"battery": (diag._di & _DI_BATTERY) >> 1, "supply_mv": diag._mv}
    if name == "link":
        s = diag._lstat
        if s is None:
            return None
        return {
            "state": s["state"],
            "err_pct": diag._err_pm / 10,
            "lat_ms": diag._lat_ms,
            "lat_max": s["latency_ms_max"],
        }
    if name == "storage":
        s = diag._sstat
        if s is None:
            return None
        return {
            "free_kib": s["free_bytes"] // 1024,
            "write_errors": s["write_errors"],
            "corrupt": s["corrupt_found"],
            "pending": s["pending"],
        }
    if name == "clock":
        return {"t": diag._last_wall, "last_step_s": diag._last_step}
    if name == "uplink":
        s = diag._ustat
        if s is None:
            return None
        return {
            "connected": bool(s["connected"]),
            "backlog": s["backlog"],
            "down_s": max(diag._down_ms, diag._noack_ms) // 1000,
        }
    if name == "gateway":
        if diag._loop is None:
            figs = {}
        else:
            figs = {"max_late_ms": diag._loop.max_late_ms, "overruns": diag._ovr_seen}
            stalled = diag._loop.stalled(diag.clock.ticks_ms())
            if stalled:
                figs["stalled"] = ",".join(stalled)
        if diag._mem is not None:
            figs["mem_kib"] = diag._mem // 1024
        return figs
    if name == "production":
        s = diag._pstat
        if s is None:
            return None
        return {"day_t": s["day_t"], "month_t": s["month_t"]}
    if name == "crosscheck":
        if diag.crosscheck is None:
            return None
        s = diag.crosscheck()
        return {"state": s["state"], "h": round(s["hours"], 2),
                "kwh_per_t": round(s["kwh_per_t"], 4), "fit_pct": _round1(s["fit_pct"]),
                "dev_pct": _round1(s["dev_pct"]), "paused": s["paused"]}
    if diag.identity is None:
        return None
    return diag.identity.report()
