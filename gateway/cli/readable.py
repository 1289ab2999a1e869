# What a technician reads, in words and units: one line per record (local time, who,
# what, old -> new), a calibration's result with its headline deviation in % first, the
# registered units, the self-diagnosis with why a check does not pass. Loaded by `log`,
# `records`, `show identity`, `diag` and the calibration dialogue.
from gateway.cli.syntax import clip, fmt
from gateway.health.alarms import TABLE, spec
from gateway.health.registration import UNITS
from hal.compat import const

_LINE_CHARS = const(200)

# A procedure of gateway.measure.calibration as the technician calls it.
TITLES = {
    "zero": "zero calibration",
    "span_weight": "span calibration (test weights)",
    "span_chain": "span calibration (test chain)",
    "speed": "speed calibration",
    "material": "material test",
    "linearization": "linearization test",
}

# Calibrated parameters: what a technician calls them, and their unit.
_NAMES = {
    "scale.zero_counts": ("zero", " counts"),
    "scale.span_kg_per_count": ("span", " kg per count"),
    "scale.pulses_per_m": ("pulses per metre", ""),
    "scale.material_factor": ("material factor", ""),
    "scale.linearization": ("linearization (load %, correction %)", ""),
}
# gateway.health.registration.UNITS as a technician calls them.
UNIT_NAMES = ("collector", "load cell 1", "load cell 2", "load cell 3", "load cell 4",
              "speed sensor", "vibration sensor", "open/stop sensor")


def title(kind):
    return TITLES.get(kind, "%s calibration" % kind)


def _num(v, form):
    return form % v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _t(kg):
    return _num(kg / 1000, "%.3f t") if isinstance(kg, (int, float)) else "?"


# -- calibration results ---------------------------------------------------------------


def result_lines(kind, result):
    """The headline (how far the scale was off, in %), then what changes, with units."""
    lines = [_headline(kind, result)]
    old, new = result.get("old") or {}, result.get("new") or {}
    for key in sorted(new):
        lines.append("  " + changed(key, old.get(key), new[key]))
    detail = _details(kind, result)
    if detail:
        lines.append("  " + detail)
    return lines


def changed(key, old, new):
    """One calibrated parameter, old -> new, with its unit."""
    name, unit = _NAMES.get(key, (key, ""))
    text = "%s %s -> %s%s" % (name, fmt(old), fmt(new), unit)
    if isinstance(old, int) and isinstance(new, int):
        text += " (%+d)" % (new - old)
    elif isinstance(old, (int, float)) and isinstance(new, (int, float)) and old:
        text += " (%+.3f %%)" % ((new - old) * 100.0 / old)
    return text


def _headline(kind, r):
    change = r.get("change_pct")
    if kind == "zero" and change is not None:
        limit = r.get("limit_pct")
        return "zero moved %+.2f %% of design load%s" % (
            change, "" if limit is None else " (limit %g %%)" % limit)
    if kind in ("span_weight", "span_chain") and change is not None:
        read = (1.0 / (1.0 + change / 100.0) - 1.0) * 100.0
        return "the scale read %+.2f %% against the test %s (span %+.2f %%)" % (
            read, "weights" if kind == "span_weight" else "chain", change)
    if kind == "speed" and change is not None:
        return "the belt speed read %+.2f %% against the marks" % change
    wb, measured = r.get("weighbridge_kg"), r.get("measured_kg")
    if kind in ("material", "linearization") and wb and measured is not None:
        text = "the scale read %+.2f %% against the weighbridge" % ((measured / wb - 1) * 100.0)
        if kind == "linearization" and r.get("load_pct") is not None:
            text += " at %.1f %% of design load" % r["load_pct"]
        return text
    return title(kind) + " done"


def _details(kind, r):
    parts = []
    if kind in ("material", "linearization"):
        parts.append("weighbridge %s, scale %s" % (_t(r.get("weighbridge_kg")),
                                                   _t(r.get("measured_kg"))))
        if kind == "material" and r.get("load_pct") is not None:
            parts.append("at %.1f %% of design load" % r["load_pct"])
        if r.get("correction_pct") is not None:
            parts.append("correction at that load %+.3f %%" % r["correction_pct"])
    elif kind == "speed":
        if r.get("pulses") is not None and r.get("metres") is not None:
            parts.append("%d pulses over %.2f m" % (r["pulses"], r["metres"]))
    else:
        if r.get("test"):
            parts.append("test " + r["test"])
        if r.get("net_counts") is not None:
            parts.append("%.1f counts net" % r["net_counts"])
        if r.get("revolutions"):
            parts.append("over %s belt revolutions" % r["revolutions"])
    return ", ".join(p for p in parts if p)


# -- records ---------------------------------------------------------------------------


def record_line(r, when):
    """#seq, local time (when(t)), who, what: one line."""
    rtype = r.get("type")
    who, what = "", None
    if rtype == "event":
        who, what = _event(r.get("code"), r.get("detail"))
    elif rtype == "alarm":
        what = "alarm %s %s" % (r.get("code"), "raised" if r.get("state") == "raise"
                                else "cleared")
        if r.get("detail"):
            what += ": %s" % r["detail"]
    elif rtype == "prod":
        what = _prod(r, when)
    elif rtype == "total":
        what = "%s %s closed: %s" % (r.get("period"), r.get("key"), _t(r.get("mass_kg")))
        if r.get("conv_kg") is not None:
            what += ", converted %s" % _t(r["conv_kg"])
    elif rtype == "diag":
        d = r.get("detail") or {}
        what = "self-diagnosis %s" % (d.get("result", "?") if isinstance(d, dict) else d)
        if isinstance(d, dict) and d.get("alarms"):
            what += ", %d alarms active" % d["alarms"]
    if what is None:
        rest = {}
        for k in r:
            if k not in ("seq", "t", "type"):
                rest[k] = r[k]
        what = "%s %s" % (rtype, _fields(rest))
    head = "#%s %s  " % (r.get("seq"), when(r.get("t")))
    return clip(head + (who + "  " if who else "") + what, _LINE_CHARS)


def _prod(r, when):
    span = ""
    if r.get("t0") is not None and r.get("t1") is not None:
        span = "%s..%s " % (when(r["t0"])[11:19], when(r["t1"])[11:19])
    text = "production %s%s" % (span, _t(r.get("mass_kg")))
    for key, form in (("rate_tph", "%.1f t/h"), ("speed_mps", "%.2f m/s"), ("run_s", "ran %d s")):
        v = _num(r.get(key), form)
        if v:
            text += ", " + v
    if r.get("est_kg"):
        text += ", %s estimated" % _t(r["est_kg"])
    if r.get("total_kg") is not None:
        text += ", total %s" % _t(r["total_kg"])
    return text


def _who(d):
    for key in ("by", "who", "technician"):
        if d.get(key):
            return str(d[key])
    return ""


def _event(code, d):
    if not isinstance(d, dict):
        return "", "%s %s" % (code, fmt(d))
    who = _who(d)
    if code == "param_changed":
        ch = d.get("changes") or {}
        return who, "set " + ", ".join("%s %s -> %s" % (k, fmt(ch[k][0]), fmt(ch[k][1]))
                                       for k in sorted(ch))
    if code in ("login", "logout"):
        return who, "logged %s%s" % ("in" if code == "login" else "out",
                                     " (idle)" if d.get("reason") == "idle" else "")
    if code == "login_failed":
        return "id %s" % d.get("id"), "login failed (%s in a row)" % d.get("failures")
    if code == "login_locked":
        return "id %s" % d.get("id"), "login locked for %s s" % d.get("lock_s")
    if code in ("cal_started", "cal_aborted"):
        return who, "%s %s" % (title(d.get("kind")),
                               "started" if code == "cal_started" else "cancelled")
    if code == "cal_refused":
        return who, "%s refused: %s" % (title(d.get("kind")), _headline(d.get("kind"), d))
    if isinstance(code, str) and code.startswith("cal_"):
        kind = code[4:]
        text = "%s applied%s: %s" % (title(kind), " (forced)" if d.get("forced") else "",
                                     _headline(kind, d))
        old, new = d.get("old") or {}, d.get("new") or {}
        for key in sorted(new):
            text += "; " + changed(key, old.get(key), new[key])
        return who, text
    if code == "time_set":
        return who, "clock set, step %+.1f s" % (d.get("step_s") or 0)
    if code == "alarm_ack":
        return who, "alarm %s acknowledged" % d.get("alarm")
    if code == "output_set":
        return who, "output %s switched %s" % (d.get("do"), "on" if d.get("on") else "off")
    if code == "identity_registered":
        return who, "units registered: " + _serials(d)
    if code == "gateway_start":
        return "", "gateway started, firmware %s, %s, %s records" % (
            d.get("fw"), "state restored" if d.get("restored") else "no state restored",
            d.get("records"))
    if code == "collector_restarted":
        return "", "collector restarted (had run %s s)" % d.get("uptime_s")
    rest = {}
    for k in d:
        if k not in ("by", "who", "technician"):
            rest[k] = d[k]
    return who, "%s %s" % (code, _fields(rest))


def _serials(d):
    serials = d.get("serials") or {}
    old = d.get("old") or {}
    parts = []
    for i in range(len(UNITS)):
        unit = UNITS[i]
        if unit in old and old[unit] != serials.get(unit):
            parts.append("%s %s -> %s" % (UNIT_NAMES[i], old[unit], serials.get(unit)))
    if parts:
        return ", ".join(parts)
    return "collector %s and its sensors" % serials.get("collector")


def _fields(d):
    """A detail's fields as words: old -> new pairs first, then the rest."""
    parts = []
    old, new = d.get("old"), d.get("new")
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(new):
            parts.append("%s %s -> %s" % (k, fmt(old.get(k)), fmt(new[k])))
    for k in sorted(d):
        if k not in ("old", "new"):
            v = d[k]
            parts.append("%s %s" % (k.replace("_", " "), _fields(v) if isinstance(v, dict)
                                    else fmt(v)))
    return ", ".join(parts)


# -- identity and self-diagnosis -------------------------------------------------------


def _serial(serial):
    return str(serial) if serial else "none"


def identity_lines(ident, firmware, when):
    """Control.identity() as lines: the registered collector and sensors by name."""
    lines = ["device id         %s" % ident.get("device_id"), "firmware          %s" % firmware]
    col = ident.get("collector") or {}
    sensors = ident.get("sensors") or []
    if not col:
        lines.append("no units registered yet: the collector's first identity read "
                     "registers them")
        return lines
    reg = ident.get("registered") or {}
    lines.append("registered units  (%s, by %s):" % (when(reg.get("t")), reg.get("by", "?")))
    extra = []
    for key, what in (("fw", "firmware"), ("vendor_id", "vendor"), ("model", "model")):
        if col.get(key) is not None:
            extra.append("%s %s" % (what, col[key]))
    lines.append("  %-16s serial %s%s" % (UNIT_NAMES[0], _serial(col.get("serial")),
                                           ", " + ", ".join(extra) if extra else ""))
    for i in range(len(sensors)):
        name = UNIT_NAMES[i + 1] if i + 1 < len(UNIT_NAMES) else "sensor %d" % (i + 1)
        lines.append("  %-16s serial %s" % (name, _serial(sensors[i])))
    swapped = reg.get("swapped") or 0
    lines.append("units now present: %s" % (
        "the registered ones" if not swapped else
        "%d differ from the registered ones (alarm device_swap; register after a "
        "legitimate replacement)" % swapped))
    return lines


def diag_lines(report, active):
    """Each check with its result and figures, and why it does not pass: its active
    alarms (gateway/health/alarms.py TABLE names each code's check), or no samples."""
    why = {}
    for alarm in active:
        code = alarm.get("code")
        if code in TABLE:
            detail = alarm.get("detail")
            why.setdefault(spec(code)[5], []).append(
                "%s (%s)" % (alarm["code"], detail) if detail else alarm["code"])
    lines = []
    for check in report.get("checks") or []:
        name, result, figs = check.get("name"), check.get("result"), check.get("figures")
        lines.append("%-11s %-5s %s" % (name, result, _figures(figs)))
        if result != "pass":
            reasons = why.get(name)
            if not reasons and isinstance(figs, dict) and figs.get("samples") == 0:
                reasons = ["no samples from the collector yet"]
            lines.append("            why: %s" % ("; ".join(reasons) if reasons else
                                                 "see alarms"))
    summary = report.get("summary")
    if isinstance(summary, dict):
        alarms = summary.get("alarms")
        lines.append("overall     %s, %s alarm%s active, up %s s" % (
            summary.get("result"), alarms, "" if alarms == 1 else "s", summary.get("uptime_s")))
    return lines


_UNIT_SUFFIXES = const((("_mv", "mV"), ("_c", "C"), ("_ms", "ms"), ("_s", "s"), ("_pct", "%"),
                        ("_hz", "Hz"), ("_mps", "m/s"), ("_tph", "t/h"), ("_kg", "kg"),
                        ("_t", "t")))


def _figures(figs):
    """A check's figures as words: supply_mv 24000 -> supply 24000 mV."""
    if not isinstance(figs, dict):
        return "" if figs is None else fmt(figs)
    parts = []
    for key in sorted(figs):
        name, unit = key, ""
        for suffix, symbol in _UNIT_SUFFIXES:
            if key.endswith(suffix):
                name, unit = key[: -len(suffix)], " " + symbol
                break
        parts.append("%s %s%s" % (name.replace("_", " "), fmt(figs[key]), unit))
    return ", ".join(parts)
