from gateway import calendar
from gateway.cli import syntax as cliparse
from gateway.cli.syntax import UsageError
from gateway.measure.calibration import KINDS
from tests.core.util import raises


def parse(line):
    return cliparse.parse(line, 480)


def _err(line):
    return raises(UsageError, parse, line).line()


def test_tokens_keep_lists_and_strings_together():
    assert cliparse.tokenize("  set  a [1, 2]  b \"x y\" ") == ["set", "a", "[1, 2]", "b", '"x y"']
    toks = cliparse.tokenize("set x [[20, 0.5], [50, -1]]")
    assert toks == ["set", "x", "[[20, 0.5], [50, -1]]"]
    assert cliparse.tokenize("") == []
    assert raises(UsageError, cliparse.tokenize, "set x [1, 2")
    assert raises(UsageError, cliparse.tokenize, 'set x "abc')


def test_empty_and_unknown():
    assert parse("   ") is None
    e = _err("frobnicate now")
    assert e == "error: unknown command 'frobnicate'; type help for the commands"
    assert parse("HELP") == ("help", {"cmd": None})
    assert parse("help cal") == ("help", {"cmd": "cal"})
    assert "usage: help [COMMAND]" in _err("help nothing")


def test_every_command_has_help():
    for name, _, _ in cliparse.COMMANDS:
        lines = cliparse.help_text(name)
        assert lines[0].startswith("usage: " + name)
    assert len(cliparse.help_text()) == len(cliparse.COMMANDS) + 2
    cal = "\n".join(cliparse.help_text("cal"))
    for kind in ("zero", "span", "speed", "material", "lin"):
        assert "cal " + kind in cal


def test_show():
    assert parse("show params") == ("show", {"what": "params", "prefix": ""})
    assert parse("show params scale.") == ("show", {"what": "params", "prefix": "scale."})
    assert parse("show identity") == ("show", {"what": "identity"})
    assert "usage: show params" in _err("show")
    assert "usage: show params" in _err("show secrets")


def test_set_validates_the_whole_set():
    name, args = parse("set scale.material_factor 1.02 vibration.foundation flexible")
    assert name == "set"
    assert args["changes"] == {"scale.material_factor": 1.02, "vibration.foundation": "flexible"}
    name, args = parse("set scale.linearization [[20, 0.5], [50, -1]] scale.autozero false")
    assert args["changes"]["scale.linearization"] == [[20.0, 0.5], [50.0, -1.0]]
    assert args["changes"]["scale.autozero"] is False
    e = _err("set scale.material_factor 3")
    assert e.startswith("error: scale.material_factor: 3 is out of range")
    assert e.endswith("usage: set KEY VALUE [KEY VALUE ...]")
    assert "not settable at run time" in _err("set device_id 9")
    assert "unknown key" in _err("set scale.nothing 1")
    assert "KEY VALUE pairs" in _err("set scale.material_factor")
    assert "given twice" in _err("set scale.damping_s 1 scale.damping_s 2")
    assert "not a value" in _err("set scale.damping_s ab,c")


def test_cal_forms():
    # The CLI's words name a procedure of gateway.measure.calibration and its arguments,
    # in the procedure's own vocabulary.
    assert parse("cal zero") == ("cal", {"kind": "zero", "args": {"revolutions": 3}})
    assert parse("cal zero 5") == ("cal", {"kind": "zero", "args": {"revolutions": 5}})
    assert parse("cal span weight 50") == ("cal", {"kind": "span_weight",
                                                   "args": {"test_kg": 50.0, "revolutions": 3}})
    assert parse("cal span chain 30.5 2") == ("cal", {"kind": "span_chain", "args": {
        "chain_kgpm": 30.5, "revolutions": 2}})
    assert parse("cal speed belt 187.3") == ("cal", {"kind": "speed", "belt_length_m": 187.3,
                                                     "args": {"revolutions": 3}})
    assert parse("cal speed distance 50") == ("cal", {"kind": "speed",
                                                      "args": {"distance_m": 50.0}})
    assert parse("cal material") == ("cal", {"kind": "material", "args": {}})
    assert parse("cal lin") == ("cal", {"kind": "linearization", "args": {}})
    # Points given: a change of the parameter, shown and confirmed like any set.
    assert parse("cal lin 20:0.5 50:-0.3 100:0") == ("set", {"changes": {
        "scale.linearization": [[20.0, 0.5], [50.0, -0.3], [100.0, 0.0]]}})
    assert parse("cal lin clear") == ("set", {"changes": {"scale.linearization": []}})
    kinds = [kind for _, kind, _, _ in cliparse.CALIBRATIONS if kind]
    for kind in kinds:
        assert kind in KINDS, kind
    assert sorted(set(kinds)) == sorted(KINDS)


def test_cal_errors_name_the_reason_and_the_form():
    assert _err("cal zero 0") == "error: REVS must be 1..20, got 0; usage: cal zero [REVS]"
    e = _err("cal zero x")
    assert e == "error: REVS must be a whole number, got 'x'; usage: cal zero [REVS]"
    assert "usage: cal zero [REVS]" in _err("cal zero 3 4")
    assert "usage: cal span weight KG" in _err("cal span 50")
    assert "KG must be 0.1..5000" in _err("cal span weight -1")
    assert "usage: cal speed belt" in _err("cal speed belt")
    assert "usage: cal lin" in _err("cal lin 50:0.5 20:0.1")
    assert "usage: cal lin" in _err("cal lin 20=0.5")
    assert "usage: cal lin" in _err("cal lin 20:11")
    assert "usage: cal zero|span" in _err("cal tare")
    assert "usage: cal material" in _err("cal material 12")
    assert "usage: cal zero|span" in _err("cal")


def test_records_log_output_login():
    assert parse("records") == ("records", {"mode": "recent", "raw": False})
    assert parse("records seq 10..20") == ("records", {"mode": "seq", "from": 10, "to": 20,
                                                       "raw": False})
    assert parse("records seq 10") == ("records", {"mode": "seq", "from": 10, "to": None,
                                                   "raw": False})
    assert parse("records seq 10 --raw")[1]["raw"] is True
    assert parse("records --raw") == ("records", {"mode": "recent", "raw": True})
    assert "B must be 10.." in _err("records seq 10..5")
    name, args = parse("records time 2026-01-01..2026-01-02T08:00")
    assert args == {"mode": "time", "t0": 1767196800, "t1": 1767312000, "raw": False}
    assert "T1 must come after T0" in _err("records time 2026-01-02..2026-01-01")
    assert "give a time range" in _err("records time 2026-01-01")
    assert parse("log") == ("log", {"n": 20, "raw": False})
    assert parse("log 5") == ("log", {"n": 5, "raw": False})
    assert parse("log 5 --raw") == ("log", {"n": 5, "raw": True})
    assert parse("log --raw") == ("log", {"n": 20, "raw": True})
    assert "N must be 1..200" in _err("log 500")
    assert parse("output 2 on") == ("output", {"do": 2, "on": True})
    assert "usage: output 1|2 on|off" in _err("output 3 on")
    assert parse("login") == ("login", {"id": None})
    assert parse("login 1001") == ("login", {"id": "1001"})
    assert "usage: login [ID]" in _err("login 1001 2468")
    assert "usage: login [ID]" in _err("login ab;cd")
    assert parse("logout") == ("logout", {})
    assert "takes no arguments" in _err("logout now")


def test_coef_and_time_set():
    assert parse("coef") == ("coef", {})
    assert parse("coef set 0.93") == ("coef.set", {"value": 0.93, "effective_t": None})
    assert parse("coef set 0.93 at 2026-02-01")[1]["effective_t"] == 1769875200
    assert "usage: coef set VALUE" in _err("coef set")
    assert "usage: coef set VALUE" in _err("coef set 0.9 on 2026-02-01")
    assert parse("time") == ("time", {})
    assert parse("time set 2026-01-01T08:00:00") == ("time.set", {"t": 1767225600})
    assert parse("time set 2026-01-01 08:00:00") == ("time.set", {"t": 1767225600})
    assert parse("time set 2026-01-01T00:00:00Z") == ("time.set", {"t": 1767225600})
    assert parse("time set 2026-01-01T02:00+02:00") == ("time.set", {"t": 1767225600})
    assert parse("time set 1767225600") == ("time.set", {"t": 1767225600})
    assert "usage: time set TIME" in _err("time set 2026-02-30")
    assert "usage: time set TIME" in _err("time set 2026-01-01T24:00")
    assert "usage: time set TIME" in _err("time set yesterday")


def test_calendar_round_trip():
    for days in (-1, 0, 59, 365, 10957, 11016, 20454, 20513, 47482):
        y, m, d = calendar.civil_from_days(days)
        assert calendar.days_from_civil(y, m, d) == days
    assert calendar.civil_from_days(0) == (1970, 1, 1)
    assert calendar.civil_from_days(11016) == (2000, 2, 29)
    assert calendar.days_from_civil(2026, 1, 1) == 20454
    assert cliparse.format_time(1767225600, 480) == "2026-01-01 08:00:00 +08:00"
    assert cliparse.format_time(1767225600, -90) == "2025-12-31 22:30:00 -01:30"
    assert cliparse.format_time(951782400, 0) == "2000-02-29 00:00:00 +00:00"


def test_yes_no_needs_the_whole_word():
    assert cliparse.parse_yes_no(" YES ") is True
    assert cliparse.parse_yes_no("no") is False
    assert cliparse.parse_yes_no("y") is None
    assert cliparse.parse_yes_no("") is None


def test_alarms_ack():
    assert cliparse.parse("alarms") == ("alarms", {})
    assert cliparse.parse("alarms ack clock_stepped") == ("alarms.ack", {"code": "clock_stepped"})
    e = raises(cliparse.UsageError, cliparse.parse, "alarms clear x")
    assert "alarms ack CODE" in e.line()
