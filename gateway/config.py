# The configuration file: one JSON object, checked key by key against SCHEMA.
# Every key is documented in docs/config.md. A bad file yields ConfigError naming the
# key and the problem; the entry point turns that into exit status 2.
# Loaded on demand (gateway/ondemand.py): at start-up and for a change of parameters.
import json
import os

from gateway.errors import ConfigError
from hal.compat import const
from hal.fs import Flash
from hal.uart import UartError, _split_socket_url

REQUIRED = object()


# Kinds of value: SCHEMA's second column.
_INT = const(0)  # an integer lo..hi
_NUM = const(1)  # a number lo..hi, kept as a float
_STR = const(2)  # a non-empty string
_OPT_STR = const(3)  # a non-empty string or null
_BOOL = const(4)  # true or false
_ONE_OF = const(5)  # one of the values in lo
_SHIFTS = const(6)  # 1 to 4 shift start times "HH:MM", ascending
_LIN = const(7)  # up to 5 linearization points [load_pct, correction_pct]
_CLASSES = const(8)  # a list of alarm classes
_TERMINALS = const(9)  # up to 16 power terminals {address, role, ct_ratio, pt_ratio, nominal_v}
_LIMITS = const(10)  # 6 limits, % of design (0: off): rate min, max, load min, max, speed min, max

# (dotted key, kind, lo, hi, default, settable at run time by set / set_params)
SCHEMA = (
    ("device_id", _INT, 1, 0xFFFFFFFF, REQUIRED, False),
    ("key_file", _STR, None, None, REQUIRED, False),
    ("data_dir", _STR, None, None, REQUIRED, False),
    ("collector.port", _STR, None, None, REQUIRED, False),
    ("collector.baud", _ONE_OF, (9600, 19200, 38400, 115200), None, 9600, False),
    ("collector.address", _INT, 1, 247, 1, False),
    ("collector.poll_hz", _NUM, 0.1, 20.0, 10.0, False),
    ("collector.timeout_ms", _INT, 20, 2000, 100, False),
    ("collector.retries", _INT, 0, 5, 2, False),
    ("collector.identity_s", _INT, 10, 86400, 300, False),
    ("collector.capture_s", _INT, 2, 3600, 10, False),
    ("center.host", _STR, None, None, REQUIRED, False),
    ("center.port", _INT, 1, 65535, REQUIRED, False),
    ("center.ping_s", _INT, 1, 300, 10, False),
    ("center.silence_s", _INT, 5, 600, 30, False),
    ("center.backoff_max_s", _INT, 1, 3600, 60, False),
    ("scale.weigh_length_m", _NUM, 0.1, 10.0, 1.2, True),
    ("scale.pulses_per_m", _NUM, 1.0, 100000.0, 100.0, True),
    ("scale.zero_counts", _INT, -(2**31), 2**31 - 1, 0, True),
    ("scale.span_kg_per_count", _NUM, 1e-9, 1.0, 0.001, True),
    ("scale.material_factor", _NUM, 0.5, 2.0, 1.0, True),
    ("scale.design_tph", _NUM, 1.0, 20000.0, 1000.0, True),
    ("scale.design_speed_mps", _NUM, 0.1, 8.0, 2.5, True),
    ("scale.dropout_pct", _NUM, 0.0, 20.0, 2.0, True),
    ("scale.dropout_window_m", _NUM, 1.0, 50.0, 10.0, True),
    ("scale.belt_length_m", _NUM, 1.0, 20000.0, 200.0, True),
    ("scale.linearization", _LIN, None, None, [], True),
    ("scale.damping_s", _NUM, 0.0, 60.0, 3.0, True),
    ("scale.zero_limit_pct", _NUM, 0.1, 20.0, 2.0, True),
    ("scale.autozero", _BOOL, None, None, True, True),
    ("scale.autozero_band_pct", _NUM, 0.1, 10.0, 1.0, True),
    ("scale.autozero_limit_pct", _NUM, 0.1, 20.0, 2.0, True),
    ("scale.run_min_speed_mps", _NUM, 0.01, 2.0, 0.1, True),
    ("scale.run_mismatch_s", _NUM, 1.0, 600.0, 10.0, True),
    # --- the figure through field events (docs/measurement.md)
    ("scale.zero_check_h", _NUM, 0.0, 720.0, 8.0, True),
    ("scale.division_kg", _NUM, 0.001, 10000.0, 1.0, True),
    # ---
    ("production.interval_s", _ONE_OF, (10, 15, 20, 30, 60, 120, 300, 600, 900), None, 60, True),
    ("production.shifts", _SHIFTS, None, None, ["00:00", "08:00", "16:00"], True),
    ("production.utc_offset_min", _INT, -720, 840, 480, True),
    ("production.coef", _NUM, 0.1, 2.0, 1.0, True),
    ("production.coef_from", _INT, 0, 0xFFFFFFFF, 0, True),
    ("vibration.machine_group", _ONE_OF, (1, 2), None, 2, True),
    ("vibration.foundation", _ONE_OF, ("rigid", "flexible"), None, "rigid", True),
    ("vibration.motor_rpm", _NUM, 60.0, 6000.0, 1480.0, True),
    ("store.budget_mib", _INT, 1, 4096, 64, False),
    ("store.checkpoint_s", _INT, 1, 600, 10, True),
    ("store.checkpoint_battery_s", _INT, 1, 60, 1, True),
    ("alarms.do1_classes", _CLASSES, None, None, ["fault", "power", "process", "production"],
     True),
    ("alarms.day_limit_t", _NUM, 0.0, 1000000.0, 0.0, True),
    ("alarms.month_limit_t", _NUM, 0.0, 30000000.0, 0.0, True),
    ("alarms.supply_low_mv", _INT, 5000, 15000, 10800, True),
    ("alarms.temp_low_c", _NUM, -50.0, 20.0, -20.0, True),
    ("alarms.temp_high_c", _NUM, 20.0, 120.0, 60.0, True),
    ("alarms.link_error_pct", _NUM, 0.1, 100.0, 5.0, True),
    ("alarms.link_latency_ms", _INT, 10, 5000, 200, True),
    ("alarms.upload_down_s", _INT, 60, 604800, 1800, True),
    ("alarms.backlog_records", _INT, 100, 100000000, 10000, True),
    ("alarms.mem_free_min_kib", _INT, 1, 65536, 16, True),
    ("alarms.flash_free_min_kib", _INT, 16, 16777216, 1024, True),
    ("alarms.clock_step_s", _INT, 2, 3600, 5, True),
    ("alarms.cell_min_counts", _INT, -(2**31), 2**31 - 1, -40000, True),
    ("alarms.cell_max_counts", _INT, -(2**31), 2**31 - 1, 340000, True),
    ("alarms.cell_stuck_counts", _INT, 0, 10000, 2, True),
    ("alarms.cell_drift_counts", _INT, 100, 10000000, 5000, True),
    ("alarms.vib_floor_mv", _NUM, 0.0, 100.0, 2.0, True),
    # the power terminals on the second RS485 port (docs/power.md); no port: none
    ("meters.port", _OPT_STR, None, None, None, False),
    ("meters.baud", _ONE_OF, (1200, 2400, 4800, 9600), None, 2400, False),
    ("meters.parity", _ONE_OF, ("E", "N", "O"), None, "E", False),
    ("meters.terminals", _TERMINALS, None, None, [], False),
    ("alarms.voltage_dev_pct", _NUM, 1.0, 50.0, 7.0, True),
    ("alarms.pf_min", _NUM, 0.1, 1.0, 0.85, True),
    ("alarms.thd_v_max_pct", _NUM, 0.5, 50.0, 5.0, True),
    ("alarms.freq_dev_hz", _NUM, 0.05, 5.0, 0.5, True),
    ("alarms.drive_run_kw", _NUM, 0.0, 100000.0, 5.0, True),
    # --- limit alarms of rate, load and speed (docs/alarms.md)
    # the minima off: a light or slow belt is the site's business, not a siren's
    ("alarms.limits_pct", _LIMITS, None, None, [0.0, 98.0, 0.0, 120.0, 0.0, 120.0], True),
    # output against power, with a belt_drive terminal (docs/crosscheck.md)
    ("crosscheck.learn_h", _NUM, 0.01, 720.0, 24.0, True),
    ("crosscheck.window_min", _NUM, 0.1, 1440.0, 60.0, True),
    ("crosscheck.tolerance_pct", _NUM, 1.0, 50.0, 8.0, True),
    ("crosscheck.min_load_pct", _NUM, 0.0, 100.0, 20.0, True),
    ("cli.port", _OPT_STR, None, None, None, False),
    ("cli.idle_logout_s", _INT, 30, 86400, 600, True),
)


# Relations between keys, checked on a whole set (the file; the parameters in force with a
# change applied): (key, key that must be strictly greater). Add a row for a new pair.
RELATIONS = (
    ("alarms.cell_min_counts", "alarms.cell_max_counts"),
    ("alarms.temp_low_c", "alarms.temp_high_c"),
    ("scale.run_min_speed_mps", "scale.design_speed_mps"),
)


def _broken(flat):
    """The first relation flat breaks, as (lower key, upper key); None if none."""
    for lo, hi in RELATIONS:
        if lo in flat and hi in flat and not flat[lo] < flat[hi]:
            return lo, hi
    return None


def _check_relations(flat):
    bad = _broken(flat)
    if bad:
        lo, hi = bad
        raise ConfigError("%s (%s) must be below %s (%s)" % (lo, json.dumps(flat[lo]), hi,
                                                            json.dumps(flat[hi])))


def _check(kind, lo, hi, v):
    """v checked against its kind: the value (possibly normalised), or ConfigError."""
    if kind == _INT or kind == _NUM:
        if isinstance(v, bool) or not isinstance(v, int if kind == _INT else (int, float)):
            raise ConfigError("must be %s, got %s" % (
                "an integer" if kind == _INT else "a number", json.dumps(v)))
        if not lo <= v <= hi:
            raise ConfigError((("%d is out of range %d..%d") if kind == _INT
                               else "%s is out of range %s..%s") % (v, lo, hi))
        return v if kind == _INT else float(v)
    if kind == _STR or kind == _OPT_STR:
        if v is None and kind == _OPT_STR:
            return None
        if not isinstance(v, str) or not v:
            raise ConfigError("must be a non-empty string, got %s" % json.dumps(v))
        return v
    if kind == _BOOL:
        if not isinstance(v, bool):
            raise ConfigError("must be true or false, got %s" % json.dumps(v))
        return v
    if kind == _ONE_OF:
        if v not in lo:
            raise ConfigError(
                "%s is not one of %s" % (json.dumps(v), ", ".join(json.dumps(c) for c in lo)))
        return v
    if kind == _SHIFTS:
        return _shifts(v)
    if kind == _LIN:
        return _linearization(v)
    if kind == _TERMINALS:
        return _terminals(v)
    if kind == _LIMITS:
        if not isinstance(v, list) or len(v) != 6:
            raise ConfigError("must be 6 limits, %% of design: [rate min, rate max, load min, "
                              "load max, speed min, speed max] (0: off)")
        return [_check(_NUM, 0.0, 200.0, x) for x in v]
    return _alarm_classes(v)


def _hhmm(v):
    if not isinstance(v, str) or len(v) != 5 or v[2] != ":":
        raise ConfigError("%s is not a time of day HH:MM" % json.dumps(v))
    h, m = v[:2], v[3:]
    if not (h.isdigit() and m.isdigit() and int(h) < 24 and int(m) < 60):
        raise ConfigError("%s is not a time of day HH:MM" % json.dumps(v))
    return int(h) * 60 + int(m)


def _shifts(v):
    if not isinstance(v, list) or not 1 <= len(v) <= 4:
        raise ConfigError("must be a list of 1 to 4 shift start times HH:MM")
    minutes = [_hhmm(x) for x in v]
    for a, b in zip(minutes, minutes[1:]):
        if b <= a:
            raise ConfigError("shift start times must be in ascending order")
    return v


def _linearization(v):
    # Up to 5 points [load_pct, correction_pct], ascending load, each correction within ±10 %.
    if not isinstance(v, list) or len(v) > 5:
        raise ConfigError("must be a list of at most 5 [load_pct, correction_pct] points")
    last = 0.0
    out = []
    for p in v:
        if not isinstance(p, list) or len(p) != 2:
            raise ConfigError("each point must be [load_pct, correction_pct]")
        load = _check(_NUM, 0.1, 200.0, p[0])
        corr = _check(_NUM, -10.0, 10.0, p[1])
        if load <= last:
            raise ConfigError("points must be in ascending load_pct")
        last = load
        out.append([load, corr])
    return out


_ROLES = ("belt_drive", "mine_total", "underground", "other")


def _terminals(v):
    # [{address: 12 digits, role, ct_ratio, pt_ratio, nominal_v}], at most 16, addresses
    # distinct, at most one belt_drive and one mine_total.
    if not isinstance(v, list) or len(v) > 16:
        raise ConfigError("must be a list of at most 16 terminals")
    out = []
    seen = []
    for t in v:
        if not isinstance(t, dict):
            raise ConfigError("each terminal must be an object {address, role, ...}")
        for k in t:
            if k not in ("address", "role", "ct_ratio", "pt_ratio", "nominal_v"):
                raise ConfigError("terminal: unknown key %s" % json.dumps(k))
        a = t.get("address")
        if not isinstance(a, str) or len(a) != 12 or not a.isdigit():
            raise ConfigError("terminal address must be 12 decimal digits, got %s"
                              % json.dumps(a))
        role = t.get("role")
        if role not in _ROLES:
            raise ConfigError("terminal %s: role must be one of %s" % (a, ", ".join(_ROLES)))
        if a in seen:
            raise ConfigError("terminal %s is listed twice" % a)
        if role in ("belt_drive", "mine_total") and role in [x["role"] for x in out]:
            raise ConfigError("more than one %s terminal" % role)
        seen.append(a)
        out.append({
            "address": a,
            "role": role,
            "ct_ratio": _check(_NUM, 1.0, 100000.0, t.get("ct_ratio", 1.0)),
            "pt_ratio": _check(_NUM, 1.0, 10000.0, t.get("pt_ratio", 1.0)),
            "nominal_v": _check(_NUM, 50.0, 500.0, t.get("nominal_v", 220.0)),
        })
    return out


def _alarm_classes(v):
    from gateway.health.alarms import CLASSES

    if not isinstance(v, list):
        raise ConfigError("must be a list of alarm classes (%s)" % ", ".join(CLASSES))
    for c in v:
        if c not in CLASSES:
            raise ConfigError(
                "%s is not an alarm class (%s)" % (json.dumps(c), ", ".join(CLASSES))
            )
    return v


def _row(key):
    for row in SCHEMA:
        if row[0] == key:
            return row
    return None


def _flatten(obj, prefix, out):
    for k, v in obj.items():
        key = prefix + k
        if isinstance(v, dict):
            _flatten(v, key + ".", out)
        else:
            out[key] = v
    return out


def nest(flat):
    """{"a.b": 1} -> {"a": {"b": 1}}"""
    out = {}
    for key, v in flat.items():
        d = out
        parts = key.split(".")
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = v
    return out


def check_value(key, value):
    """The normalised value for one key, or ConfigError naming it."""
    row = _row(key)
    if row is None:
        raise ConfigError("%s: unknown key" % key)
    try:
        return _check(row[1], row[2], row[3], value)
    except ConfigError as e:
        raise ConfigError("%s: %s" % (key, e))


def validate(obj):
    """A flat dict of every key with defaults applied, from a parsed config object."""
    if not isinstance(obj, dict):
        raise ConfigError("the configuration must be a JSON object")
    given = _flatten(obj, "", {})
    flat = {}
    for key in given:
        if _row(key) is None:
            raise ConfigError("%s: unknown key" % key)
    for key, _, _, _, default, _ in SCHEMA:
        if key in given:
            flat[key] = check_value(key, given[key])
        elif default is REQUIRED:
            raise ConfigError("%s: required key is missing" % key)
        else:
            flat[key] = default
    _check_relations(flat)
    return flat


def check_params(changes, settable_only=True):
    """Validate a set of parameter changes as a whole. `changes` is flat or nested;
    returns the flat dict of normalised values or raises ConfigError for the first bad one."""
    flat = _flatten(changes, "", {}) if isinstance(changes, dict) else None
    if not flat:
        raise ConfigError("params: must be a non-empty object")
    out = {}
    for key, v in flat.items():
        value = check_value(key, v)
        if settable_only and not _row(key)[5]:
            raise ConfigError("%s: not settable at run time (change the config file)" % key)
        out[key] = value
    return out


def settable(key):
    row = _row(key)
    return bool(row and row[5])


def settable_keys():
    return [row[0] for row in SCHEMA if row[5]]


def in_force(flat, stored):
    """The configuration file's flat values overridden by the run-time set stored on
    flash; a key this firmware no longer knows (or refuses) keeps the file's value."""
    out = dict(flat)
    for key, value in stored.items():
        try:
            out[key] = check_params({key: value})[key]
        except ConfigError:
            pass
    bad = _broken(out)
    while bad:  # a pair stored apart that no longer holds: the file's pair (which does)
        out[bad[0]] = flat[bad[0]]
        out[bad[1]] = flat[bad[1]]
        bad = _broken(out)
    return out


def check_change(params, changes):
    """For a change of the parameters in force: (the changes checked as a whole, flat;
    the run-time set to persist: every settable key of params, updated by them)."""
    flat = check_params(changes)
    merged = dict(params)
    merged.update(flat)
    _check_relations(merged)  # the change as a whole, with what it leaves in force
    run_time = {}
    for key, value in params.items():
        if settable(key):
            run_time[key] = flat[key] if key in flat else value
    return flat, run_time


def read_key(path):
    """The 32-byte device key from its file (64 hex digits). Neither the key nor any byte
    of the file is ever printed: a bad file's message says what is wrong, not what is
    there. A file others may read is refused: a copied key must not sit world-readable
    (provisioning writes 0600)."""
    import os
    from binascii import unhexlify

    try:
        mode = os.stat(path)[0]
        with open(path, "rb") as f:
            text = f.read(130).strip()
    except OSError as e:
        raise ConfigError("key_file: cannot read %s (%s)" % (path, e))
    if mode & 0o077:  # a board's file system has no such bits: 0
        raise ConfigError("key_file: %s may be read by group or others (mode %03o): chmod 600 %s"
                          % (path, mode & 0o777, path))
    if len(text) != 64:
        raise ConfigError("key_file: %s must hold 64 hex digits (a 32-byte key)" % path)
    try:
        return unhexlify(text)
    except ValueError:
        raise ConfigError("key_file: %s must hold 64 hex digits (a 32-byte key)" % path)


def _json_error(text):
    """Where text leaves JSON's grammar: (offset, what was wanted), or None. MicroPython's
    json.loads passes over a stray, doubled or missing ',' or ':' and takes numbers such
    as 01 or 1. that CPython refuses: held to the standard here, both read a file alike.
    Bytes and their codes rather than one-character strings: each of those would be
    another name interned for good on a heap that has none to spare (docs/memory.md)."""
    import re

    b = text.encode()
    stack = []
    want = 0  # 0 a value, 1 a value or ], 2 a key, 3 a key or }, 4 a colon, 5 after a value
    i = 0
    n = len(b)
    while True:
        while i < n and b[i] in (32, 9, 13, 10):
            i += 1
        if i == n:
            return None if want == 5 and not stack else (i, "more: the file ends early")
        c = b[i]
        i += 1
        if want == 5:
            if not stack:
                return i - 1, "the end of the file after the object"
            if c == 44:  # ,
                want = 2 if stack[-1] == 123 else 0
            elif c == stack[-1] + 2:  # } after {, ] after [
                stack.pop()
            else:
                return i - 1, "',' or the closing bracket"
        elif want == 4:
            if c != 58:
                return i - 1, "':' after the key"
            want = 0
        elif (want == 1 and c == 93) or (want == 3 and c == 125):
            stack.pop()
            want = 5
        elif c == 34:  # a string
            while i < n and b[i] != 34:
                if b[i] < 32:
                    return i, "no control character in a string"
                if b[i] == 92:  # backslash: one of its escapes
                    i += 1
                    if i == n or b[i] not in b'"\\/bfnrtu' or (
                        b[i] == 117
                        and not re.match(b"[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]",
                                         b[i + 1 : i + 5])
                    ):
                        return i, "a valid escape after a backslash"
                i += 1
            if i == n:
                return n, "the closing quote of a string"
            i += 1
            want = 4 if want >= 2 else 5
        elif want >= 2:
            return i - 1, "a key in double quotes"
        elif c == 123 or c == 91:  # { [
            stack.append(c)
            want = 3 if c == 123 else 1
        else:
            i -= 1
            m = re.match(b"-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?", b[i : i + 40])
            if m:
                i += len(m.group(0))
            elif b[i : i + 4] in (b"true", b"null"):
                i += 4
            elif b[i : i + 5] == b"false":
                i += 5
            else:
                return i, "a value (a number, string, true, false, null, object or list)"
            want = 5


def load(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigError("cannot read config file %s (%s)" % (path, e))
    bad = _json_error(text)
    if bad:
        i = bad[0]
        raise ConfigError("%s is not valid JSON (line %d, column %d: want %s)" % (
            path, text.count("\n", 0, i) + 1, i - text.rfind("\n", 0, i), bad[1]))
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise ConfigError("%s is not valid JSON (%s)" % (path, e))
    flat = validate(obj)
    # The ports this machine can have: a UART only on a board; a serial server by host:port.
    for key in ("collector.port", "cli.port", "meters.port"):
        url = flat[key] or ""
        if url.startswith("uart:"):
            try:
                from machine import UART  # noqa: F401  (the unix port's machine has none)
            except ImportError:
                raise ConfigError("%s: %s needs a board; here give a serial device or "
                                  "socket://host:port" % (key, url))
            if not url[5:].isdigit():
                raise ConfigError("%s: %s is not uart:N (N the UART's number)" % (key, url))
        elif url.startswith("socket://"):
            try:
                _split_socket_url(url)
            except UartError as e:
                raise ConfigError("%s: %s" % (key, e))
    # The gateway makes data_dir at start; a file in its way, or a parent it cannot
    # write, is said here in one line rather than found at the first write.
    root = flat["data_dir"]
    Flash.makedirs(root)
    try:
        if not os.stat(root)[0] & 0x4000:
            raise ConfigError("data_dir: %s is a file, not a directory" % root)
    except OSError:
        try:
            os.mkdir(root)
        except OSError as e:
            # In words on both interpreters (MicroPython names few errno codes).
            why = {13: "permission denied", 20: "a part of its path is a file",
                   28: "no space left", 30: "read-only file system"}.get(e.args[0], e)
            raise ConfigError("data_dir: cannot create %s (%s)" % (root, why))
    return flat
