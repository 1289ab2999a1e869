# The CLI job driven keystroke by keystroke through an in-memory stream, in simulated
# time, against the fake Control, in the real loop next to a 10 Hz job.
import json

from gateway.cli import auth
from gateway.cli.session import Cli
from gateway.loop import Loop
from hal.virtualclock import VirtualClock
from tests.core.fakecontrol import FakeControl
from tests.core.util import Rng, heap_lock, holds_secret

PIN = "2468"


class FakeStream:
    """The hal.uart interface over two byte queues."""

    def __init__(self):
        self.inq = bytearray()
        self.out = bytearray()

    def write(self, data):
        self.out += data

    def readinto(self, buf, timeout_ms):
        if not self.inq:
            return 0
        n = min(len(buf), len(self.inq))
        buf[:n] = self.inq[:n]
        self.inq = self.inq[n:]
        return n

    def discard_input(self):
        n = len(self.inq)
        self.inq = bytearray()
        return n

    def close(self):
        pass


_ACCOUNTS = None


def _accounts():
    global _ACCOUNTS
    if _ACCOUNTS is None:
        text = json.dumps({"accounts": [auth.make_account("1001", PIN, "Zhang", iterations=600)]})
        _ACCOUNTS = auth.parse_accounts(text)
    return _ACCOUNTS


class Term:
    def __init__(self, accounts=None):
        self.clock = VirtualClock()
        self.control = FakeControl(self.clock)
        self.stream = FakeStream()
        self.auth = auth.Auth(_accounts() if accounts is None else accounts, self.clock)
        self.cli = Cli(self.control, self.stream, self.auth, self.clock)
        self.loop = Loop(self.clock)
        self.loop.add(self.control, 100)
        self.loop.add(self.cli, 20)
        self.cli.start()
        self.seen = 0

    def run(self, ms):
        self.loop.run(ms)

    def type(self, text, ms=200):
        self.stream.inq += text.encode() if isinstance(text, str) else text
        self.run(ms)

    def read(self):
        text = bytes(self.stream.out[self.seen:]).decode()
        self.seen = len(self.stream.out)
        return text

    def cmd(self, line, ms=200):
        self.read()
        self.type(line + "\r", ms)
        return self.read()

    def login(self):
        self.cmd("login 1001")
        return self.cmd(PIN)


def test_banner_prompt_and_help():
    t = Term()
    out = t.read()
    assert "device 4242" in out and out.endswith("gw> ")
    out = t.cmd("help")
    assert "calibrate (login)" in out and "\r\n" in out and "\n" not in out.replace("\r\n", "")
    out = t.cmd("help cal")
    assert "cal speed belt LENGTH_M [REVS]" in out
    assert t.cmd("nonsense").startswith("nonsense\r\nerror: unknown command 'nonsense'")


def test_reading_is_open():
    t = Term()
    out = t.cmd("status")
    assert "rate       812.2 t/h" in out or "rate       812.3 t/h" in out
    assert "total      123456.789 t" in out and "collector  online" in out
    out = t.cmd("show params scale.")
    assert "* scale.zero_counts = 1000" in out and "collector." not in out
    out = t.cmd("show identity")
    assert "device id         4242" in out
    out = t.cmd("show totals")
    assert "shift      20.000 t" in out
    assert "collector   pass" in t.cmd("diag")
    assert "kWh/t" not in t.cmd("status")  # no power terminals
    assert "no active alarms" in t.cmd("alarms")
    assert "coef 0.95, effective since 2026-01-01 08:00:00 +08:00" in t.cmd("coef")
    assert "2026-01-01 08:00:0" in t.cmd("time")


def test_status_shows_the_power_terminals():
    t = Term()
    st = t.control.status()
    st["power"] = {"last": {"kwh_per_t": 0.1234}, "day_kwh_per_t": 0.1,
                   "terminals": [{"address": "000000000012", "role": "belt_drive",
                                  "state": "ok", "kw": 101.25}]}
    t.control.status = lambda: st
    out = t.cmd("status")
    assert "energy     0.123 kWh/t last interval, 0.100 kWh/t today" in out
    assert "meter      000000000012 belt_drive ok, 101.2 kW" in out or \
        "meter      000000000012 belt_drive ok, 101.3 kW" in out
    assert "x-check" not in out  # no belt drive, no cross-check
    st["power"]["crosscheck"] = {"state": "ready", "hours": 26.04, "learn_h": 24.0,
                                 "kwh_per_t": 0.07123, "fit_pct": 0.64, "dev_pct": -9.87,
                                 "mismatch": True, "paused": "mismatch"}
    out = t.cmd("status")
    assert "x-check    ready 26.0 of 24 h, 0.0712 kWh/t, fit 0.6 %, last window -9.9 %, " \
        "MISMATCH, learning paused: mismatch" in out


def test_changes_need_login():
    t = Term()
    for line in ("set scale.damping_s 5", "cal zero", "coef set 0.9", "time set 1767225600",
                 "output 1 on", "register"):
        out = t.cmd(line)
        assert "needs a technician login; usage: login [ID]" in out, out
    assert t.control.params()["scale.damping_s"] == 3.0
    assert t.control.records_list == []


def test_login_pin_not_echoed_nor_recorded_and_prompt_shows_technician():
    t = Term()
    assert t.cmd("login 1001").endswith("PIN: ")
    out = t.cmd(PIN)
    assert PIN not in out
    assert "logged in as 1001 (Zhang)" in out and out.endswith("gw:1001> ")
    assert t.control.events("login")[0]["detail"] == {"who": "tech:1001"}
    assert not holds_secret(PIN, t.control.records_list)
    out = t.cmd("logout")
    assert "logged out" in out and out.endswith("gw> ")
    assert t.control.events("logout")[0]["detail"]["who"] == "tech:1001"


def test_login_asks_for_the_id_when_not_given():
    t = Term()
    assert t.cmd("login").endswith("id: ")
    assert t.cmd("1001").endswith("PIN: ")
    assert "logged in as 1001" in t.cmd(PIN)


def test_set_shows_old_and_new_and_applies_only_on_yes():
    t = Term()
    t.login()
    out = t.cmd("set scale.damping_s 5 scale.autozero false")
    assert "scale.autozero: true -> false" in out and "scale.damping_s: 3 -> 5" in out
    assert out.endswith("confirm? (yes/no) ")
    out = t.cmd("maybe")
    assert "please answer yes or no" in out and out.endswith("confirm? (yes/no) ")
    out = t.cmd("no")
    assert "not applied" in out
    assert t.control.params()["scale.damping_s"] == 3.0
    t.cmd("set scale.damping_s 5")
    out = t.cmd("yes")
    assert "applied scale.damping_s: 3 -> 5" in out
    assert t.control.params()["scale.damping_s"] == 5.0
    ev = t.control.events("param_changed")[-1]
    assert ev["detail"]["by"] == "tech:1001"
    assert "param_changed" in t.cmd("alarms")


def test_set_rejects_a_bad_set_whole():
    t = Term()
    t.login()
    out = t.cmd("set scale.damping_s 5 scale.material_factor 9")
    assert "error: scale.material_factor: 9 is out of range" in out
    assert "usage: set KEY VALUE" in out
    assert t.control.params()["scale.damping_s"] == 3.0
    assert t.control.events("param_changed") == []


def test_full_zero_calibration_with_progress_in_revolutions():
    t = Term()
    t.login()
    out = t.cmd("cal zero 3", ms=1000)
    assert "zero calibration running" in out
    assert "rev" in out and "/3 rev" in out
    t.run(6000)  # 50 m belt at 25 m/s: 2 s a revolution
    out = t.read()
    assert "\r[####################] 3.00/3 rev" in out
    assert "  zero 1000 -> 1100 counts (+100)" in out
    assert out.endswith("confirm? (yes/no) ")
    assert t.control.params()["scale.zero_counts"] == 1000  # nothing before the confirmation
    out = t.cmd("yes")
    assert "applied: zero 1000 -> 1100 counts" in out
    assert t.control.params()["scale.zero_counts"] == 1100
    assert t.control.events("cal_started")[0]["detail"] == {"kind": "zero", "by": "tech:1001"}
    assert t.control.events("cal_zero")[0]["detail"]["technician"] == "tech:1001"
    assert t.control.reanchored is None  # only a material test re-anchors the cross-check
    assert t.control.polls >= 70 and t.control.max_gap_ms <= 100


def test_progress_bar_is_redrawn_at_most_four_times_a_second():
    t = Term()
    t.login()
    t.cmd("cal zero 3")
    t.read()
    t.run(2000)
    assert 4 <= t.read().count("\r[") <= 9


def test_out_of_limit_zero_is_refused_unless_forced():
    t = Term()
    t.control.zero_true = 2000
    t.login()
    t.cmd("cal zero 1")
    t.run(3000)
    out = t.read()
    assert "zero moved +4.00 % of design load (limit 2 %)" in out
    assert "outside the limit of 2 %: yes is refused (and recorded), force applies it" in out
    assert out.endswith("apply? (yes/no/force) ")
    out = t.cmd("yes")
    assert "refused: " in out and out.endswith("apply? (yes/no/force) ")
    assert t.control.params()["scale.zero_counts"] == 1000
    assert t.control.events("cal_refused")[0]["detail"]["technician"] == "tech:1001"
    out = t.cmd("no")
    assert "cancelled; nothing changed" in out
    assert t.control.params()["scale.zero_counts"] == 1000
    t.cmd("cal zero 1")
    t.run(3000)
    out = t.cmd("force")
    assert "applied: zero 1000 -> 2000 counts" in out
    assert t.control.events("cal_zero")[0]["detail"]["forced"] is True


def test_ctrl_c_cancels_a_running_calibration():
    t = Term()
    t.login()
    t.cmd("cal zero 5")
    out = t.cmd("\x03")
    assert "zero calibration cancelled; nothing changed" in out and out.endswith("gw:1001> ")
    assert t.control.cal.state == "idle"
    assert t.control.events("cal_aborted")[0]["detail"] == {"kind": "zero", "by": "tech:1001"}
    t.cmd("cal zero 5")
    assert "cancelled" in t.cmd("cancel")
    assert t.control.params()["scale.zero_counts"] == 1000


def test_calibration_failure_changes_nothing():
    t = Term()
    t.login()
    t.cmd("cal zero 2")
    t.control.running = False
    t.run(5000)
    out = t.read()
    assert "zero calibration failed: belt stopped; nothing changed" in out
    assert out.endswith("gw:1001> ")


def test_material_test_changes_material_factor_and_records_it():
    t = Term()
    t.login()
    out = t.cmd("cal material", ms=3000)
    assert "type end when the batch has passed, and its weighed mass in t" in out
    assert "measured 0.2" in out
    out = t.cmd("abc")
    assert "error: the mass in t must be a number" in out
    out = t.cmd("0.300")
    measured = t.control.cal.measured_kg / 1000
    assert "material factor 1 -> %.7g" % (0.3 / measured) in out
    assert out.endswith("confirm? (yes/no) ")
    assert t.control.params()["scale.material_factor"] == 1.0
    out = t.cmd("yes")
    assert "applied: material factor 1 -> " in out
    assert abs(t.control.params()["scale.material_factor"] - 0.3 / measured) < 1e-9
    ev = t.control.events("param_changed")[-1]
    assert ev["detail"]["by"] == "tech:1001"
    assert ev["detail"]["changes"]["scale.material_factor"][0] == 1.0
    assert t.control.events("cal_material")[0]["detail"]["technician"] == "tech:1001"
    assert t.control.reanchored == "tech:1001"  # the output-against-power model too


def test_a_result_outside_the_parameter_range_is_not_applied():
    t = Term()
    t.login()
    t.cmd("cal material", ms=3000)
    t.cmd("10")
    out = t.cmd("yes")
    assert "error: calibration result rejected: scale.material_factor:" in out
    assert "out of range" in out and "force" not in out
    assert "cancelled; nothing changed" in out and out.endswith("gw:1001> ")
    assert t.control.params()["scale.material_factor"] == 1.0


def test_speed_by_marked_distance_takes_enter_at_each_mark():
    t = Term()
    t.login()
    out = t.cmd("cal speed distance 50")
    assert "press Enter when the belt mark passes the start point" in out
    out = t.cmd("", ms=500)
    assert t.control.cal.marks == 1 and t.control.cal.state == "running"
    assert "marks 1" in out
    out = t.cmd("", ms=500)
    assert t.control.cal.marks == 2
    assert "pulses per metre 100 -> 99" in out
    t.cmd("yes")
    assert t.control.params()["scale.pulses_per_m"] == 99.0


def test_speed_by_belt_revolutions_takes_one_mark_more_than_revolutions():
    t = Term()
    t.login()
    out = t.cmd("cal speed belt 50 2")
    assert "now and after each of 2 revolutions" in out
    for i in range(2):
        t.cmd("", ms=2000)
        assert t.control.cal.state == "running"
    out = t.cmd("", ms=500)
    assert "pulses per metre 100 -> 99" in out and out.endswith("confirm? (yes/no) ")
    assert "applied: pulses per metre 100 -> 99" in t.cmd("yes")


def test_linearization_test_and_points():
    t = Term()
    t.login()
    t.cmd("cal lin", ms=3000)
    out = t.cmd("0.3")
    assert "linearization (load %, correction %) [] -> [[80" in out
    t.cmd("yes")
    assert t.control.params()["scale.linearization"][0][0] == 80.0
    out = t.cmd("cal lin 20:0.5 60:-0.25", ms=500)
    assert "scale.linearization: [[80.0, " in out and "-> [[20.0, 0.5], [60.0, -0.25]]" in out
    t.cmd("yes")
    assert t.control.params()["scale.linearization"] == [[20.0, 0.5], [60.0, -0.25]]


def test_lockout_after_five_failures():
    t = Term()
    for i in range(5):
        t.cmd("login 1001")
        out = t.cmd("0000")
    assert "login locked for 300 s" in out
    assert len(t.control.events("login_failed")) == 5 and t.control.events("login_locked")
    out = t.cmd("login 1001")
    assert "error: login locked for 300 s" in out
    t.run(301 * 1000)
    assert "logged in as 1001" in t.login()


def test_lockout_survives_a_restart():
    t = Term()
    for i in range(5):
        t.cmd("login 1001")
        t.cmd("0000")
    state = json.loads(json.dumps(t.cli.snapshot()))
    t2 = Term()
    t2.cli.restore(state)
    assert "locked" in t2.cmd("login 1001")


def test_idle_logout():
    t = Term()
    t.login()
    t.run(59 * 1000)
    assert "logged out" not in t.read()
    t.run(2000)
    out = t.read()
    assert "logged out: idle for 60 s" in out and out.endswith("gw> ")
    assert t.control.events("logout")[0]["detail"] == {"who": "tech:1001", "reason": "idle"}
    assert "needs a technician login" in t.cmd("set scale.damping_s 5")


def test_line_editing_backspace_escapes_and_crlf():
    t = Term()
    t.read()
    t.type("stx\x7f\x08tatus")
    assert t.read() == "stx\b \b\b \btatus"
    t.type("\r\n")
    out = t.read()
    assert "rate" in out and out.count("gw> ") == 1  # CRLF is one Enter
    t.type("\x1b[Ahelp\x1b[D\x1bOA lo\x15help\n")
    out = t.read()
    assert "commands (reading is open" in out
    t.type("abc\x03")
    assert t.read() == "abc^C\r\ngw> "


def test_overlong_line_and_garbage_are_refused_and_the_poll_keeps_time():
    t = Term()
    t.read()
    t.type("x" * 5000 + "\r", ms=1000)
    out = t.read()
    assert "error: line too long (at most 200 characters); nothing done" in out
    assert len(out) < 400  # no echo beyond the cap
    garbage = Rng(10240).bytes(10240)
    t.type(garbage, ms=3000)
    t.type("\x03")
    t.read()
    assert t.control.max_gap_ms <= 100
    out = t.cmd("status")
    assert "rate" in out and "collector  online" in out


def test_records_and_log():
    t = Term()
    t.login()
    t.cmd("set scale.damping_s 5")
    t.cmd("yes")
    out = t.cmd("log")
    assert "tech:1001  logged in" in out and "tech:1001  set scale.damping_s 3 -> 5" in out
    for i in range(30):
        t.control.emit("prod", {"mass_kg": i})
    out = t.cmd("records seq 1..25")
    assert out.count("\r\n#") == 20 and "more: records seq 21..25" in out
    out = t.cmd("records seq 21..25")
    assert out.count("\r\n#") == 5 and "more" not in out
    assert "no records" in t.cmd("records seq 1000")
    out = t.cmd("records time 2026-01-01..2026-01-02")
    assert "#1 2026-01-01 08:00:" in out


def test_coef_time_and_output_changes():
    t = Term()
    t.login()
    out = t.cmd("coef set 0.92 at 2026-02-01T00:00")
    assert "coef: 0.95 -> 0.92, effective 2026-02-01 00:00:00 +08:00" in out
    t.cmd("yes")
    assert t.control.coef()["value"] == 0.92
    assert t.control.events("coef_set")[0]["detail"]["by"] == "tech:1001"
    t.cmd("coef set 3")
    out = t.cmd("yes")
    assert "error: coef must be 0.5..1.0; usage: coef set VALUE" in out
    assert t.control.coef()["value"] == 0.92
    out = t.cmd("time set 2026-03-01T12:00")
    assert "-> 2026-03-01 12:00:00 +08:00" in out
    t.cmd("yes")
    assert abs(t.control.time() - 1772337600) < 5
    assert t.control.events("time_set")[0]["detail"]["by"] == "tech:1001"
    t.cmd("output 2 on")
    t.cmd("yes")
    assert t.control.outputs == {2: True}
    out = t.cmd("register")
    assert "registered now: collector 70001" in out
    assert "registered; device_swap cleared" in t.cmd("yes")
    assert t.control.registered_by == "tech:1001"


def test_an_idle_run_does_not_allocate():
    lock, unlock = heap_lock()
    t = Term()
    t.login()
    t.run(500)
    lock()
    try:
        for _ in range(10):
            t.clock.advance_ms(20)
            t.cli.run(t.clock.ticks_ms())
    finally:
        unlock()


def test_input_typed_ahead_waits_for_the_pin_check_and_keeps_its_order():
    t = Term()
    out = t.cmd("login 1001\r" + PIN + "\rstatus", ms=1000)
    assert PIN not in out
    assert out.index("logged in as 1001") < out.index("belt       running")
    assert out.endswith("gw:1001> ")


def test_alarm_ack_needs_a_login_asks_for_confirmation_and_is_recorded():
    t = Term()
    t.control.alarms["clock_stepped"] = {"code": "clock_stepped", "since": 1767225600,
                                         "detail": "+60 s"}
    assert "needs a technician login" in t.cmd("alarms ack clock_stepped")
    t.login()
    out = t.cmd("alarms ack clock_stepped")
    assert "acknowledge clock_stepped (since 2026-01-01 08:00:00 +08:00)" in out
    assert out.endswith("confirm? (yes/no) ")
    assert "not applied; nothing changed" in t.cmd("no")
    assert "clock_stepped" in t.control.alarms and t.control.events("alarm_ack") == []
    t.cmd("alarms ack clock_stepped")
    assert "clock_stepped acknowledged" in t.cmd("yes")
    assert t.control.events("alarm_ack")[0]["detail"] == {"by": "tech:1001",
                                                          "alarm": "clock_stepped"}
    assert "clock_stepped is not active" in t.cmd("alarms ack clock_stepped")
    # Refused at once, with the reason, not after a confirmation:
    out = t.cmd("alarms ack collector_link_lost")
    assert "error: collector_link_lost clears with its condition" in out
    assert out.endswith("gw:1001> ")
    assert "error: no alarm bogus" in t.cmd("alarms ack bogus")


def test_help_for_set_and_cal_says_where_the_names_and_kinds_are():
    t = Term()
    out = t.cmd("help set")
    assert "show params" in out and "* marks the ones settable at run time" in out
    out = t.cmd("help cal")
    for words in ("cal zero", "cal span weight", "cal span chain", "cal speed belt",
                  "cal speed distance", "cal material", "cal lin"):
        assert words in out, words
    assert "Commissioning order: speed, then zero" in out and "docs/technician.md" in out
    assert "--raw" in t.cmd("help log")


def test_login_without_accounts_says_so_and_counts_no_failure():
    t = Term(accounts={})
    out = t.cmd("login 1001")
    assert "error: no technician accounts on this device" in out and "PIN" not in out
    assert out.endswith("gw> ")
    assert t.auth.failures == 0 and t.control.events("login_failed") == []


def test_status_labels_units_and_totals_in_the_order_of_show_totals():
    t = Term()
    out = t.cmd("status")
    assert "null" not in out and "None" not in out
    lines = out.split("\r\n")
    for line in lines:
        if line.endswith(" t") or " t  (" in line:
            assert "kg" not in line, line  # a t figure has no kg label beside it
    totals = [ln for ln in lines if ln.split(" ")[0] in (
        "total", "interval", "shift", "day", "month", "quarter", "year")]
    assert [ln.split(" ")[0] for ln in totals] == [
        "total", "interval", "shift", "day", "month", "quarter", "year"]
    assert "quarter    2500.000 t  (converted by coef: 2375.000 t)" in totals
    assert "interval   1.000 t" in totals  # no coefficient-converted figure: none shown
    shown = [ln for ln in t.cmd("show totals").split("\r\n") if ln.endswith(")") or
             ln.endswith(" t")]
    assert shown == totals
    assert "collector  online; 0 timeouts, 0 CRC errors" in lines
    assert "center     online; 0 records to send" in lines
    assert "belt       running" in lines


def test_show_identity_names_each_sensor_and_the_registration_in_local_time():
    t = Term()
    out = t.cmd("show identity")
    assert "registered units  (2026-01-01 08:00:00 +08:00, by commissioning):" in out
    assert "  collector        serial 70001, firmware 12, vendor 1, model 2" in out
    for name, serial in (("load cell 1", "11"), ("load cell 4", "14"), ("speed sensor", "21"),
                         ("vibration sensor", "31"), ("open/stop sensor", "none")):
        assert "  %-16s serial %s" % (name, serial) in out, name
    assert "units now present: the registered ones" in out


def test_diag_says_why_a_check_does_not_pass():
    t = Term()
    t.control.alarms["collector_restarted"] = {"code": "collector_restarted", "since": 0,
                                               "detail": "uptime 5 s"}
    out = t.cmd("diag")
    lines = out.split("\r\n")
    i = [n for n in range(len(lines)) if lines[n].startswith("collector   warn")][0]
    assert lines[i + 1].strip() == "why: collector_restarted (uptime 5 s)"
    assert "link        pass" in out and "overall     warn, 1 alarm active" in out
    assert "supply 24000 mV, temp 31.5 C" in out


def test_log_and_records_one_readable_line_each_and_raw_json_on_request():
    t = Term()
    t.login()
    t.cmd("set scale.damping_s 5")
    t.cmd("yes")
    t.control.emit("prod", {"t0": 1767225600, "t1": 1767225660, "mass_kg": 12.345,
                            "total_kg": 123456.789, "rate_tph": 740.7, "speed_mps": 2.5,
                            "run_s": 60})
    t.control.emit("alarm", {"code": "mains_lost", "state": "raise", "detail": "on battery"})
    out = t.cmd("log")
    assert "#1 2026-01-01 08:00:00 +08:00  tech:1001  logged in\r\n" in out
    assert "tech:1001  set scale.damping_s 3 -> 5\r\n" in out
    assert "{" not in out and "param_changed" not in out
    out = t.cmd("records seq 1..10")
    assert ("production 08:00:00..08:01:00 0.012 t, 740.7 t/h, 2.50 m/s, ran 60 s, "
            "total 123.457 t") in out
    assert "alarm mains_lost raised: on battery" in out
    out = t.cmd("log --raw")
    assert '"code": "param_changed"' in out and '"by": "tech:1001"' in out


def test_a_zero_with_load_on_the_belt_warns_at_once_and_offers_to_cancel():
    t = Term()
    t.control.load_pct_now = 35.0
    t.login()
    out = t.cmd("cal zero 3")
    assert "load on the belt: 35.0 % of design; zero needs the belt running empty" in out
    assert out.endswith("cancel it? (yes/no) ")
    out = t.cmd("yes")
    assert "zero calibration cancelled; nothing changed" in out and out.endswith("gw:1001> ")
    assert t.control.cal.state == "idle"
    t.cmd("cal zero 3")
    assert "going on" in t.cmd("no")
    t.run(7000)
    assert "zero moved +0.40 % of design load" in t.read()
    t.cmd("no")
    t.control.load_pct_now = 0.5  # an empty belt: no question
    out = t.cmd("cal zero 3")
    assert "load on the belt" not in out and "cancel it?" not in out


def test_results_lead_with_the_deviation_and_name_no_internals():
    t = Term()
    t.login()
    t.cmd("cal zero 3")
    t.run(7000)
    out = t.read()
    assert "zero calibration done\r\nzero moved +0.40 % of design load (limit 2 %)\r\n" in out
    assert "scale.zero_counts" not in out and "change_pct" not in out and "=" not in out
    t.cmd("no")
    t.cmd("cal material", ms=3000)
    out = t.cmd("0.300")
    measured_t = t.control.cal.measured_kg / 1000
    head = "the scale read %+.2f %% against the weighbridge" % ((measured_t / 0.3 - 1) * 100)
    assert "material test done\r\n" + head + "\r\n" in out
    assert "weighbridge 0.300 t, scale %.3f t" % measured_t in out
    assert "scale.material_factor" not in out and "=" not in out
    t.cmd("no")
    t.cmd("cal span weight 55 3")
    t.run(7000)
    out = t.read()
    assert "span calibration (test weights) done" in out
    assert "the scale read -0.99 % against the test weights (span +1.00 %)" in out
    assert "span_weight" not in out


def test_material_test_tells_its_minimum_and_takes_an_end_mark():
    t = Term()
    t.login()
    out = t.cmd("cal material", ms=3000)
    assert "the batch must hold 3 belt revolutions of loaded travel and 1 t at least" in out
    out = t.cmd("end", ms=1000)
    assert t.control.cal.state == "ended" and "batch ended" in out
    measured = t.control.cal.measured_kg
    t.run(3000)  # production goes on: not part of the batch
    out = t.cmd("0.300")
    assert "material factor 1 -> %.7g" % (300 / measured) in out


def test_span_keeps_the_totalizer_stopped_until_the_test_load_is_declared_removed():
    t = Term()
    t.login()
    t.cmd("cal span weight 50 3", ms=20000)
    out = t.cmd("yes")
    assert "applied: span" in out
    assert out.endswith("test load removed from the frame? (yes/later) ")
    t.control.frame_loaded = True
    out = t.cmd("yes")
    assert "remove the test load first" in out and t.control.test_load
    out = t.cmd("later")
    assert "stays stopped until cal removed" in out and out.endswith("gw:1001> ")
    t.control.frame_loaded = False
    out = t.cmd("cal removed")
    assert "the totalizer counts again" in out and not t.control.test_load
    assert t.control.events("cal_test_load_removed")[0]["detail"]["technician"] == "tech:1001"
    assert "no test load" in t.cmd("cal removed")
