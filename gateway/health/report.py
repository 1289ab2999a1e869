# The self-diagnosis report (Diagnostics.report): every check with pass/warn/fail and its
# figures. Asked for rarely (the diag record every 10 minutes, status, the CLI), so it is
# loaded for each call only (gateway/ondemand.py); it asks each check for its figures.
from gateway.health.alarms import TABLE

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
    "identity",
)


def report(diag, compact):
    """Every check with pass/warn/fail and its figures. compact=True is the diag
    record's form: the names of passing checks, figures only where not passing."""
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
    return out


def _figures(diag, name):
    """The figures of report check `name` from the diagnosis' checks that have them
    (merged: the loop and memory both speak for "gateway"), or None if none has."""
    if name == "identity":
        return None if diag.identity is None else diag.identity.report()
    figs = None
    for check in diag.checks:
        if name in check.reports:
            f = check.figures(name)
            if figs is None:
                figs = f
            elif f is not None:
                figs.update(f)
    return figs
