# The technician CLI's language: tokens, the command table with each command's usage,
# argument checks, and local-time parsing and formatting. Pure functions: the CLI job
# (gateway/cli/session.py) does the talking. parse() either returns (command, args) with every
# argument checked, or raises UsageError whose line() is the one-line answer.
import json

# The schema (gateway.config) is loaded only to check a set: ondemand.call.
from gateway import ondemand
from gateway.calendar import civil_from_days, days_from_civil
from gateway.cli.auth import AuthError, check_tech_id
from gateway.errors import ConfigError, UserError
from hal.compat import const

MAX_LINE = 200
MAX_REVOLUTIONS = 20
MAX_LOG = 200

# name, usage, summary. Commands marked (login) change something.
COMMANDS = (
    ("help", "help [COMMAND]", "list the commands, or show how to use one"),
    ("status", "status", "live values: rate, speed, load, totals, links, alarms"),
    ("show", "show params [PREFIX] | show calibration | show identity | show totals",
     "parameters in force, calibration, identity, totals"),
    ("set", "set KEY VALUE [KEY VALUE ...]", "change run-time parameters (login)"),
    ("cal", "cal zero|span|speed|material|lin ...  (help cal)", "calibrate (login)"),
    ("coef", "coef | coef set VALUE [at TIME]",
     "raw/gross coal coefficient and its history; set it (login)"),
    ("alarms", "alarms | alarms ack CODE", "active alarms; acknowledge a one-shot alarm (login)"),
    ("diag", "diag", "self-diagnosis report"),
    ("log", "log [N] [--raw]", "calibration and maintenance log, last N events (default 20)"),
    ("records", "records [--raw] | records seq A[..B] [--raw] | records time T0..T1 [--raw]",
     "stored records (default: the last 5 minutes)"),
    ("time", "time | time set TIME", "show the clock; set it (login)"),
    ("output", "output 1|2 on|off", "drive a collector switch output (login)"),
    ("register", "register", "register the collector and sensors now present as ours (login)"),
    ("login", "login [ID]", "log in as a technician; the PIN is asked for"),
    ("logout", "logout", "log out"),
)

# The calibrations: the words typed after `cal`, the procedure they start (one of
# gateway.measure.calibration.KINDS, with its arguments; None: the linearization points
# are given, a parameter change), the usage and what it does. `help cal` shows it.
CALIBRATIONS = (
    ("zero", "zero", "cal zero [REVS]", "empty belt, REVS revolutions (default 3)"),
    ("span weight", "span_weight", "cal span weight KG [REVS]",
     "test weights of KG hung on the weigh frame, REVS revolutions (default 3)"),
    ("span chain", "span_chain", "cal span chain KGPM [REVS]",
     "a test chain of KGPM laid on the belt, REVS revolutions (default 3)"),
    ("speed belt", "speed", "cal speed belt LENGTH_M [REVS]",
     "a belt mark timed over REVS revolutions (default 3) of a belt LENGTH_M long"),
    ("speed distance", "speed", "cal speed distance M", "a belt mark over a measured distance"),
    ("material", "material", "cal material", "run a batch, then enter its weighed mass in t"),
    ("lin", "linearization", "cal lin",
     "a material test that sets the linearization at its load"),
    ("lin", None, "cal lin LOAD_PCT:CORR_PCT ... | cal lin clear",
     "up to 5 linearization points given, or none"),
    ("removed", None, "cal removed",
     "a span's test weights or chain are off the frame: the totalizer counts again"),
)

_HELP_CAL = (
    "  Commissioning order: speed, then zero until two in a row agree, span, zero again",
    "  with the weights off, then a material test against the weighbridge",
    "  (docs/technician.md). Each shows its result and applies it on yes; cancel or",
    "  Ctrl-C stops it and changes nothing. show calibration shows the values in force.",
)
_HELP_SET = (
    "  KEY: a parameter's full name as show params lists it (show params scale. lists",
    "  those of the scale; * marks the ones settable at run time). VALUE: a number, true",
    "  or false, a word, or a [list]. The set is checked whole, shown old -> new and",
    "  applied on yes.",
)

TIME_FORMS = "YYYY-MM-DD[THH:MM[:SS]] (local; Z or +HH:MM for another zone) or unix seconds"

_USAGE = {}
for _name, _usage, _ in COMMANDS:
    _USAGE[_name] = _usage
for _words, _, _usage, _ in CALIBRATIONS:
    _name = "cal " + _words.split()[0]
    _USAGE[_name] = _USAGE[_name] + " | " + _usage if _name in _USAGE else _usage
_USAGE["time set"] = "time set TIME, TIME as " + TIME_FORMS
_USAGE["alarms ack"] = "alarms ack CODE"
_USAGE["coef set"] = "coef set VALUE [at TIME], TIME as " + TIME_FORMS


class UsageError(UserError):
    def __init__(self, reason, usage_of=None):
        super().__init__(reason)
        self.reason = reason
        self.usage_of = usage_of

    def line(self):
        usage = _USAGE.get(self.usage_of)
        if usage is None:
            return "error: %s; type help for the commands" % self.reason
        return "error: %s; usage: %s" % (self.reason, usage)


def usage(name):
    return _USAGE.get(name)


def help_text(name=None):
    """Lines of help: every command, or one command's usage."""
    if name is None:
        lines = ["commands (reading is open; changes need login):"]
        for n, _, summary in COMMANDS:
            lines.append("  %-8s %s" % (n, summary))
        lines.append("help COMMAND shows how to use one.")
        return lines
    for n, use, summary in COMMANDS:
        if n == name:
            lines = ["usage: " + use, "  " + summary]
            if n == "cal":
                for _, _, cu, cs in CALIBRATIONS:
                    lines.append("  %s" % cu)
                    lines.append("      %s" % cs)
                lines.extend(_HELP_CAL)
            elif n == "set":
                lines.extend(_HELP_SET)
            elif n in ("log", "records"):
                lines.append("  one line per record in local time; --raw shows each as stored")
            if n in ("time", "records", "coef"):
                lines.append("  TIME: " + TIME_FORMS)
            return lines
    raise UsageError("no command %s" % _short(name), "help")


def _short(s):
    s = repr(s)
    return s if len(s) <= 24 else s[:20] + "...'"


# -- values as shown ---------------------------------------------------------------------


def fmt(v):
    """A parameter's or a figure's value, in the form `set` takes."""
    if isinstance(v, float):
        return "%.7g" % v
    if isinstance(v, (list, dict, bool)) or v is None:
        return json.dumps(v)
    return str(v)


def fmt_number(v, form):
    """v % form, or ? when v is not a number."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return form % v
    return "?"


def fmt_t(kg):
    """A mass in kg as t."""
    if isinstance(kg, (int, float)) and not isinstance(kg, bool):
        return "%.3f t" % (kg / 1000)
    return "?"


def clip(text, n):
    return text if len(text) <= n else text[: n - 3] + "..."


# -- tokens ----------------------------------------------------------------------------


def tokenize(line):
    """Whitespace-separated tokens; a [...] group or a "..." string stays one token."""
    toks = []
    i = 0
    n = len(line)
    while i < n:
        c = line[i]
        if c == " " or c == "\t":
            i += 1
            continue
        start = i
        depth = 0
        quoted = False
        while i < n:
            c = line[i]
            if quoted:
                if c == "\\":
                    i += 1
                elif c == '"':
                    quoted = False
            elif c == '"':
                quoted = True
            elif c == "[":
                depth += 1
            elif c == "]":
                depth -= 1
            elif (c == " " or c == "\t") and depth <= 0:
                break
            i += 1
        if quoted or depth != 0:
            raise UsageError("unbalanced quotes or brackets")
        toks.append(line[start:i])
    return toks


# -- numbers and times -----------------------------------------------------------------


def _int(text, what, lo, hi, usage_of):
    try:
        v = int(text)
    except ValueError:
        raise UsageError("%s must be a whole number, got %s" % (what, _short(text)), usage_of)
    if not lo <= v <= hi:
        raise UsageError("%s must be %d..%d, got %d" % (what, lo, hi, v), usage_of)
    return v


def _num(text, what, lo, hi, usage_of):
    try:
        v = float(text)
    except ValueError:
        raise UsageError("%s must be a number, got %s" % (what, _short(text)), usage_of)
    if not lo <= v <= hi:  # also refuses nan
        raise UsageError("%s must be %s..%s, got %s" % (what, lo, hi, text), usage_of)
    return v


def number(text, what, lo, hi):
    """A number lo..hi from text, or UsageError naming what was wanted."""
    return _num(text, what, lo, hi, None)


_MONTH_DAYS = const((31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31))


def _days_in(y, m):
    if m == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0):
        return 29
    return _MONTH_DAYS[m - 1]


def _digits(text, n):
    if len(text) != n or not text.isdigit():
        raise ValueError
    return int(text)


def _zone_min(text):
    # "+HH:MM" or "-HH:MM"
    if len(text) != 6 or text[0] not in "+-" or text[3] != ":":
        raise ValueError
    m = _digits(text[1:3], 2) * 60 + _digits(text[4:], 2)
    if m > 14 * 60:
        raise ValueError
    return -m if text[0] == "-" else m


def parse_time(text, utc_offset_min, usage_of=None):
    """Unix seconds from 'YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM]' (local time unless a zone
    is given) or from unix seconds."""
    if text.isdigit():
        return _int(text, "unix time", 0, 0xFFFFFFFF, usage_of)
    try:
        zone = utc_offset_min
        date, sep, clock = text, "", ""
        for s in ("T", "_"):
            if s in text:
                date, sep, clock = text.partition(s)
                break
        if sep:
            if clock.endswith("Z"):
                zone, clock = 0, clock[:-1]
            elif len(clock) > 6 and clock[-6] in "+-":
                zone, clock = _zone_min(clock[-6:]), clock[:-6]
        y = _digits(date[0:4], 4)
        if len(date) != 10 or date[4] != "-" or date[7] != "-":
            raise ValueError
        mo = _digits(date[5:7], 2)
        d = _digits(date[8:10], 2)
        hh = mm = ss = 0
        if sep:
            parts = clock.split(":")
            if len(parts) not in (2, 3):
                raise ValueError
            hh = _digits(parts[0], 2)
            mm = _digits(parts[1], 2)
            ss = _digits(parts[2], 2) if len(parts) == 3 else 0
        if not (1970 <= y <= 2105 and 1 <= mo <= 12 and 1 <= d <= _days_in(y, mo)):
            raise ValueError
        if hh > 23 or mm > 59 or ss > 59:
            raise ValueError
    except ValueError:
        raise UsageError("%s is not a time (%s)" % (_short(text), TIME_FORMS), usage_of)
    return days_from_civil(y, mo, d) * 86400 + hh * 3600 + mm * 60 + ss - zone * 60


def format_time(t, utc_offset_min):
    """'YYYY-MM-DD HH:MM:SS +HH:MM' in local time."""
    local = int(t) + utc_offset_min * 60
    days = local // 86400
    s = local - days * 86400
    y, mo, d = civil_from_days(days)
    off = utc_offset_min if utc_offset_min >= 0 else -utc_offset_min
    return "%04d-%02d-%02d %02d:%02d:%02d %s%02d:%02d" % (
        y, mo, d, s // 3600, s // 60 % 60, s % 60,
        "+" if utc_offset_min >= 0 else "-", off // 60, off % 60,
    )


def _range(text, usage_of):
    lo, sep, hi = text.partition("..")
    if not lo:
        raise UsageError("give a range FROM..TO", usage_of)
    return lo, (hi if sep and hi else None)


# -- commands --------------------------------------------------------------------------


def _none(name):
    def parse(a, tz):
        if a:
            raise UsageError("%s takes no arguments" % name, name)
        return name, {}

    return parse


def _help(a, tz):
    if len(a) > 1:
        raise UsageError("help takes at most one command name", "help")
    if a and a[0].lower() not in _USAGE:
        raise UsageError("no command %s" % _short(a[0]), "help")
    return "help", {"cmd": a[0].lower() if a else None}


_SHOW = const(("params", "calibration", "identity", "totals"))


def _show(a, tz):
    if not a or a[0] not in _SHOW:
        raise UsageError("show what?", "show")
    if a[0] == "params":
        if len(a) > 2:
            raise UsageError("show params takes one PREFIX at most", "show")
        return "show", {"what": "params", "prefix": a[1] if len(a) == 2 else ""}
    if len(a) > 1:
        raise UsageError("show %s takes no more arguments" % a[0], "show")
    return "show", {"what": a[0]}


def _value(text):
    try:
        return json.loads(text)
    except ValueError:
        pass
    for c in text:
        if c in "[]{}\"',":
            raise UsageError("%s is not a value (number, true/false, word, [list])"
                             % _short(text), "set")
    return text  # a bare word, e.g. rigid


def _set(a, tz):
    if not a or len(a) % 2:
        raise UsageError("give KEY VALUE pairs", "set")
    changes = {}
    for i in range(0, len(a), 2):
        key = a[i]
        if key in changes:
            raise UsageError("%s given twice" % key, "set")
        changes[key] = _value(a[i + 1])
    try:
        changes = ondemand.call("gateway.config", "check_params", changes)
    except ConfigError as e:
        raise UsageError(str(e), "set")
    return "set", {"changes": changes}


def _revs(a, i, usage_of, default=None):
    if len(a) <= i:
        return default
    if len(a) > i + 1:
        raise UsageError("too many arguments", usage_of)
    return _int(a[i], "REVS", 1, MAX_REVOLUTIONS, usage_of)


def _cal(a, tz):
    if not a:
        raise UsageError("calibrate what?", "cal")
    u = "cal " + a[0]
    if a == ["removed"]:
        return "cal.removed", {}
    if a[0] == "lin" and len(a) > 1:
        return "set", {"changes": {"scale.linearization": _lin_points(a[1:], u)}}
    for words, kind, _, _ in CALIBRATIONS:
        n = words.count(" ") + 1
        if " ".join(a[:n]) == words:
            return "cal", _cal_args(words, kind, a[n:], u)
    if a[0] == "span":
        raise UsageError("span by weight or chain, and its value", u)
    if a[0] == "speed":
        raise UsageError("speed by belt length or marked distance, and its value", u)
    raise UsageError("no calibration %s" % _short(a[0]), "cal")


def _cal_args(words, kind, rest, u):
    """{"kind", "args": the procedure's arguments} for one form of CALIBRATIONS; the belt
    length typed for `speed belt` is given as "belt_length_m" (it must be the one in force)."""
    out = {"kind": kind, "args": {}}
    args = out["args"]
    if words == "speed distance":
        if len(rest) != 1:
            raise UsageError("give the measured distance in m", u)
        args["distance_m"] = _num(rest[0], "M", 1.0, 10000.0, u)
        return out
    if words in ("material", "lin"):
        if rest:
            raise UsageError("cal %s takes no arguments; the mass is asked for" % words, u)
        return out
    if words != "zero":
        if not rest:
            raise UsageError("give its value", u)
        if words == "speed belt":
            out["belt_length_m"] = _num(rest[0], "LENGTH_M", 1.0, 20000.0, u)
        elif words == "span weight":
            args["test_kg"] = _num(rest[0], "KG", 0.1, 5000.0, u)
        else:
            args["chain_kgpm"] = _num(rest[0], "KGPM", 0.1, 5000.0, u)
        rest = rest[1:]
    args["revolutions"] = _revs(rest, 0, u, 3)
    return out


def _lin_points(a, u):
    points = []
    if a != ["clear"]:
        for p in a:
            load, sep, corr = p.partition(":")
            if not sep:
                raise UsageError("%s is not LOAD_PCT:CORR_PCT" % _short(p), u)
            points.append([_num(load, "LOAD_PCT", 0.1, 200.0, u),
                           _num(corr, "CORR_PCT", -10.0, 10.0, u)])
    try:
        return ondemand.call("gateway.config", "check_value", "scale.linearization", points)
    except ConfigError as e:
        raise UsageError(str(e), u)


def _coef(a, tz):
    if not a:
        return "coef", {}
    u = "coef set"
    if a[0] != "set" or len(a) not in (2, 4):
        raise UsageError("coef alone shows it; coef set VALUE [at TIME] sets it", u)
    value = _num(a[1], "VALUE", 0.001, 10.0, u)
    effective = None
    if len(a) == 4:
        if a[2] != "at":
            raise UsageError("expected 'at TIME'", u)
        effective = parse_time(a[3], tz, u)
    return "coef.set", {"value": value, "effective_t": effective}


def _raw(a):
    """a without a trailing --raw, and whether it was there."""
    if a and a[-1] == "--raw":
        return a[:-1], True
    return a, False


def _log(a, tz):
    a, raw = _raw(a)
    if len(a) > 1:
        raise UsageError("too many arguments", "log")
    return "log", {"n": _int(a[0], "N", 1, MAX_LOG, "log") if a else 20, "raw": raw}


def _records(a, tz):
    a, raw = _raw(a)
    args = _records_range(a, tz)
    args["raw"] = raw
    return "records", args


def _records_range(a, tz):
    u = "records"
    if not a:
        return {"mode": "recent"}
    if len(a) != 2 or a[0] not in ("seq", "time"):
        raise UsageError("records by seq or by time", u)
    lo, hi = _range(a[1], u)
    if a[0] == "seq":
        first = _int(lo, "A", 1, 0xFFFFFFFF, u)
        last = _int(hi, "B", first, 0xFFFFFFFF, u) if hi else None
        return {"mode": "seq", "from": first, "to": last}
    if hi is None:
        raise UsageError("give a time range T0..T1", u)
    t0 = parse_time(lo, tz, u)
    t1 = parse_time(hi, tz, u)
    if t1 <= t0:
        raise UsageError("T1 must come after T0", u)
    return {"mode": "time", "t0": t0, "t1": t1}


def _time(a, tz):
    if not a:
        return "time", {}
    u = "time set"
    # "time set 2026-01-02 03:04:05" (two tokens) is taken as one.
    if a[0] != "set" or len(a) not in (2, 3):
        raise UsageError("time alone shows the clock; time set TIME sets it", u)
    text = a[1] if len(a) == 2 else a[1] + "T" + a[2]
    return "time.set", {"t": parse_time(text, tz, u)}


def _output(a, tz):
    if len(a) != 2 or a[0] not in ("1", "2") or a[1] not in ("on", "off"):
        raise UsageError("give the output 1 or 2, and on or off", "output")
    return "output", {"do": int(a[0]), "on": a[1] == "on"}


def _alarms(a, tz):
    if not a:
        return "alarms", {}
    if a[0] != "ack" or len(a) != 2:
        raise UsageError("alarms alone lists them; alarms ack CODE acknowledges one", "alarms")
    return "alarms.ack", {"code": a[1]}


def _login(a, tz):
    if len(a) > 1:
        raise UsageError("give only the id; the PIN is asked for", "login")
    if not a:
        return "login", {"id": None}
    try:
        return "login", {"id": check_tech_id(a[0])}
    except AuthError as e:
        raise UsageError(str(e), "login")


_PARSERS = {
    "help": _help,
    "?": _help,
    "status": _none("status"),
    "show": _show,
    "set": _set,
    "cal": _cal,
    "coef": _coef,
    "alarms": _alarms,
    "diag": _none("diag"),
    "log": _log,
    "records": _records,
    "time": _time,
    "output": _output,
    "register": _none("register"),
    "login": _login,
    "logout": _none("logout"),
}


def parse(line, utc_offset_min=0):
    """(command, args) for one line; None for an empty line; UsageError otherwise."""
    toks = tokenize(line)
    if not toks:
        return None
    fn = _PARSERS.get(toks[0].lower())
    if fn is None:
        raise UsageError("unknown command %s" % _short(toks[0]))
    return fn(toks[1:], utc_offset_min)


def parse_yes_no(line):
    """True for yes, False for no, None for anything else (a change needs the whole word)."""
    w = line.strip().lower()
    if w == "yes":
        return True
    if w == "no":
        return False
    return None
