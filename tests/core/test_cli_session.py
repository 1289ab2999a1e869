# The CLI job driven keystroke by keystroke through an in-memory stream, in simulated
# time, against the fake facade, in the real loop next to a 10 Hz job.
import json

from gateway.cli import auth
from gateway.cli.session import Cli
from gateway.loop import Loop
from hal.clock import VirtualClock
from tests.core.fakegw import FakeGateway
from tests.core.util import SkipTest, holds_secret

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
    def __init__(self):
        self.clock = VirtualClock()
        self.gw = FakeGateway(self.clock)
        self.stream = FakeStream()
        self.auth = auth.Auth(_accounts(), self.clock)
        self.cli = Cli(self.gw, self.stream, self.auth, self.clock)
        self.loop = Loop(self.clock)
        self.loop.add(self.gw, 100)
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
    assert "rate     812.2 t/h" in out or "rate     812.3 t/h" in out
    assert "total    123456.789 t" in out and "link     online" in out
    out = t.cmd("show params scale.")
    assert "* scale.zero_counts = 1000" in out and "collector." not in out
    out = t.cmd("show identity")
    assert "device_id  4242" in out and "serial=LC-3" in out
    out = t.cmd("show totals")
    assert "shift     20.000 t" in out
    assert "collector_link" in t.cmd("diag")
    assert "kWh/t" not in t.cmd("status")  # no power terminals


def test_status_shows_the_power_terminals():
    t = Term()
    st = t.gw.status()
    st["power"] = {"last": {"kwh_per_t": 0.1234}, "day_kwh_per_t": 0.1,
                   "terminals": [{"address": "000000000012", "role": "belt_drive",
                                  "state": "ok", "kw": 101.25}]}
    t.gw.status = lambda: st
    out = t.cmd("status")
    assert "kWh/t    0.123 (last interval), 0.100 (day)" in out
    assert "meter    000000000012 belt_drive ok 101.2 kW" in out or \
        "meter    000000000012 belt_drive ok 101.3 kW" in out
    assert "x-check" not in out  # no belt drive, no cross-check
    st["power"]["crosscheck"] = {"state": "ready", "hours": 26.04, "learn_h": 24.0,
                                 "kwh_per_t": 0.07123, "fit_pct": 0.64, "dev_pct": -9.87,
                                 "mismatch": True, "paused": "mismatch"}
    out = t.cmd("status")
    assert "x-check  ready 26.0 of 24 h, 0.0712 kWh/t, fit 0.6 %, last window -9.9 %, " \
        "MISMATCH, learning paused: mismatch" in out
    assert "no active alarms" in t.cmd("alarms")
    assert "coef 0.95, effective since 2026-01-01 08:00:00 +08:00" in t.cmd("coef")
    assert "2026-01-01 08:00:0" in t.cmd("time")


def test_changes_need_login():
    t = Term()
    for line in ("set scale.damping_s 5", "cal zero", "coef set 0.9", "time set 1767225600",
                 "output 1 on", "register"):
        out = t.cmd(line)
        assert "needs a technician login; usage: login [ID]" in out, out
    assert t.gw.params()["scale.damping_s"] == 3.0
    assert t.gw.records_list == []


def test_login_pin_not_echoed_nor_recorded_and_prompt_shows_technician():
    t = Term()
    assert t.cmd("login 1001").endswith("PIN: ")
    out = t.cmd(PIN)
    assert PIN not in out
    assert "logged in as 1001 (Zhang)" in out and out.endswith("gw:1001> ")
    assert t.gw.events("login")[0]["detail"] == {"who": "tech:1001"}
    assert not holds_secret(PIN, t.gw.records_list)
    out = t.cmd("logout")
    assert "logged out" in out and out.endswith("gw> ")
    assert t.gw.events("logout")[0]["detail"]["who"] == "tech:1001"


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
    assert t.gw.params()["scale.damping_s"] == 3.0
    t.cmd("set scale.damping_s 5")
    out = t.cmd("yes")
    assert "applied scale.damping_s: 3 -> 5" in out
    assert t.gw.params()["scale.damping_s"] == 5.0
    ev = t.gw.events("param_changed")[-1]
    assert ev["detail"]["who"] == "tech:1001"
    assert "param_changed" in t.cmd("alarms")


def test_set_rejects_a_bad_set_whole():
    t = Term()
    t.login()
    out = t.cmd("set scale.damping_s 5 scale.material_factor 9")
    assert "error: scale.material_factor: 9 is out of range" in out
    assert "usage: set KEY VALUE" in out
    assert t.gw.params()["scale.damping_s"] == 3.0
    assert t.gw.events("param_changed") == []


def test_full_zero_calibration_with_progress_in_revolutions():
    t = Term()
    t.login()
    out = t.cmd("cal zero 3", ms=1000)
    assert "zero calibration running" in out
    assert "rev" in out and "/3 rev" in out
    t.run(6000)  # 50 m belt at 25 m/s: 2 s a revolution
    out = t.read()
    assert "\r[####################] 3.00/3 rev" in out
    assert "scale.zero_counts: 1000 -> 1100" in out
    assert out.endswith("confirm? (yes/no) ")
    assert t.gw.params()["scale.zero_counts"] == 1000  # nothing before the confirmation
    out = t.cmd("yes")
    assert "applied scale.zero_counts: 1000 -> 1100" in out
    assert t.gw.params()["scale.zero_counts"] == 1100
    assert t.gw.events("calibration")[0]["detail"]["who"] == "tech:1001"
    assert t.gw.polls >= 70 and t.gw.max_gap_ms <= 100


def test_progress_bar_is_redrawn_at_most_four_times_a_second():
    t = Term()
    t.login()
    t.cmd("cal zero 3")
    t.read()
    t.run(2000)
    assert 4 <= t.read().count("\r[") <= 9


def test_out_of_limit_zero_is_refused_unless_forced():
    t = Term()
    t.gw.zero_true = 2000
    t.login()
    t.cmd("cal zero 1")
    t.run(3000)
    out = t.read()
    assert "outside the limit: zero moved 1000 counts, limit 500" in out
    assert out.endswith("apply? (yes/no/force) ")
    out = t.cmd("yes")
    assert "refused: " in out and out.endswith("apply? (yes/no/force) ")
    assert t.gw.params()["scale.zero_counts"] == 1000
    assert t.gw.events("cal_refused")[0]["detail"]["who"] == "tech:1001"
    out = t.cmd("no")
    assert "cancelled; nothing changed" in out
    assert t.gw.params()["scale.zero_counts"] == 1000
    t.cmd("cal zero 1")
    t.run(3000)
    out = t.cmd("force")
    assert "applied scale.zero_counts: 1000 -> 2000" in out
    assert t.gw.events("calibration")[0]["detail"]["forced"] is True


def test_ctrl_c_cancels_a_running_calibration():
    t = Term()
    t.login()
    t.cmd("cal zero 5")
    out = t.cmd("\x03")
    assert "zero calibration cancelled; nothing changed" in out and out.endswith("gw:1001> ")
    assert t.gw.cal is None
    t.cmd("cal zero 5")
    assert "cancelled" in t.cmd("cancel")
    assert t.gw.params()["scale.zero_counts"] == 1000


def test_calibration_failure_changes_nothing():
    t = Term()
    t.login()
    t.cmd("cal zero 2")
    t.gw.running = False
    t.run(1000)
    t.gw.cal.state = "failed"
    t.run(500)
    out = t.read()
    assert "zero calibration failed: belt stopped; nothing changed" in out
    assert out.endswith("gw:1001> ")


def test_material_test_changes_material_factor_and_records_it():
    t = Term()
    t.login()
    out = t.cmd("cal material", ms=3000)
    assert "type the weighed mass of the batch in t" in out
    assert "measured 0.2" in out
    out = t.cmd("abc")
    assert "error: the mass in t must be a number" in out
    out = t.cmd("0.300")
    measured = t.gw.cal.measured_t
    assert "scale.material_factor: 1 -> %.7g" % (0.3 / measured) in out
    assert out.endswith("confirm? (yes/no) ")
    assert t.gw.params()["scale.material_factor"] == 1.0
    out = t.cmd("yes")
    assert "applied scale.material_factor: 1 -> " in out
    assert abs(t.gw.params()["scale.material_factor"] - 0.3 / measured) < 1e-9
    ev = t.gw.events("param_changed")[-1]
    assert ev["detail"]["who"] == "tech:1001"
    assert ev["detail"]["changes"]["scale.material_factor"][0] == 1.0


def test_a_result_outside_the_parameter_range_is_not_applied():
    t = Term()
    t.login()
    t.cmd("cal material", ms=3000)
    t.cmd("10")
    out = t.cmd("yes")
    assert "error: scale.material_factor:" in out and "out of range" in out
    assert "cancelled; nothing changed" in out and out.endswith("gw:1001> ")
    assert t.gw.params()["scale.material_factor"] == 1.0


def test_speed_by_marked_distance_takes_enter_at_each_mark():
    t = Term()
    t.login()
    out = t.cmd("cal speed distance 50")
    assert "press Enter when the belt mark passes the start point" in out
    out = t.cmd("", ms=500)
    assert t.gw.cal.marks == 1 and t.gw.cal.state == "running"
    assert "marks 1" in out
    out = t.cmd("", ms=500)
    assert t.gw.cal.marks == 2
    assert "scale.pulses_per_m: 100 -> 99" in out
    t.cmd("yes")
    assert t.gw.params()["scale.pulses_per_m"] == 99.0


def test_speed_by_belt_revolutions_takes_one_mark_more_than_revolutions():
    t = Term()
    t.login()
    out = t.cmd("cal speed belt 50 2")
    assert "now and after each of 2 revolutions" in out
    for i in range(2):
        t.cmd("", ms=2000)
        assert t.gw.cal.state == "running"
    out = t.cmd("", ms=500)
    assert "scale.pulses_per_m: 100 -> 99" in out and out.endswith("confirm? (yes/no) ")
    assert "applied scale.pulses_per_m: 100 -> 99" in t.cmd("yes")


def test_linearization_test_and_points():
    t = Term()
    t.login()
    t.cmd("cal lin", ms=3000)
    out = t.cmd("0.3")
    assert "scale.linearization: [] -> [[80" in out
    t.cmd("yes")
    assert t.gw.params()["scale.linearization"][0][0] == 80.0
    out = t.cmd("cal lin 20:0.5 60:-0.25", ms=500)
    assert "scale.linearization: [[80.0, " in out and "-> [[20.0, 0.5], [60.0, -0.25]]" in out
    t.cmd("yes")
    assert t.gw.params()["scale.linearization"] == [[20.0, 0.5], [60.0, -0.25]]


def test_the_calibration_module_s_own_progress_and_result_words_are_understood():
    t = Term()
    t.gw.module_shaped = True
    t.login()
    out = t.cmd("cal zero 3", ms=1000)
    assert "/3 rev" in out
    t.run(6000)
    out = t.read()
    assert "scale.zero_counts: 1000 -> 1100  (+100)" in out
    assert "change_pct=0.4" in out and out.endswith("confirm? (yes/no) ")
    assert "applied scale.zero_counts: 1000 -> 1100" in t.cmd("yes")
    t.gw.zero_true = 2000
    t.cmd("cal zero 3")
    t.run(7000)
    out = t.read()
    assert "outside the limit: change 3.600 % of design load, limit 2.000 %" in out
    assert "refused" in t.cmd("yes")
    t.cmd("no")
    assert t.gw.params()["scale.zero_counts"] == 1100
    out = t.cmd("cal material", ms=3000)
    assert "measured 0.2" in out
    t.cmd("0.3")
    t.cmd("yes")
    assert t.gw.params()["scale.material_factor"] != 1.0


def test_lockout_after_five_failures():
    t = Term()
    for i in range(5):
        t.cmd("login 1001")
        out = t.cmd("0000")
    assert "login locked for 300 s" in out
    assert len(t.gw.events("login_failed")) == 5 and t.gw.events("login_locked")
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
    assert t.gw.events("logout")[0]["detail"] == {"who": "tech:1001", "reason": "idle"}
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
    import random
    rnd = random.getrandbits if hasattr(random, "getrandbits") else None
    garbage = bytes((rnd(8) if rnd else (i * 7919) & 0xFF) for i in range(10240))
    t.type(garbage, ms=3000)
    t.type("\x03")
    t.read()
    assert t.gw.max_gap_ms <= 100
    out = t.cmd("status")
    assert "rate" in out and "link     online" in out


def test_records_and_log():
    t = Term()
    t.login()
    t.cmd("set scale.damping_s 5")
    t.cmd("yes")
    out = t.cmd("log")
    assert "login" in out and "param_changed" in out and "tech:1001" in out
    for i in range(30):
        t.gw.emit("prod", {"mass_kg": i})
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
    assert t.gw.coef()["value"] == 0.92
    assert t.gw.events("coef_set")[0]["detail"]["who"] == "tech:1001"
    t.cmd("coef set 3")
    out = t.cmd("yes")
    assert "error: coef must be 0.5..1.0; usage: coef set VALUE" in out
    assert t.gw.coef()["value"] == 0.92
    out = t.cmd("time set 2026-03-01T12:00")
    assert "-> 2026-03-01 12:00:00 +08:00" in out
    t.cmd("yes")
    assert abs(t.gw.time() - 1772337600) < 5
    assert t.gw.events("time_set")[0]["detail"]["who"] == "tech:1001"
    t.cmd("output 2 on")
    t.cmd("yes")
    assert t.gw.outputs == {2: True}
    out = t.cmd("register")
    assert "registered now: collector SC-0001" in out
    assert "registered; device_swap cleared" in t.cmd("yes")
    assert t.gw.registered_by == "tech:1001"


def test_an_idle_run_does_not_allocate():
    try:
        import micropython

        lock, unlock = micropython.heap_lock, micropython.heap_unlock
    except (ImportError, AttributeError):
        raise SkipTest("heap_lock is MicroPython's")
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
    assert out.index("logged in as 1001") < out.index("running  yes")
    assert out.endswith("gw:1001> ")


def test_alarm_ack_needs_a_login_and_is_recorded():
    t = Term()
    t.gw.alarms["clock_stepped"] = {"code": "clock_stepped", "since": 0, "detail": "+60 s"}
    assert "needs a technician login" in t.cmd("alarms ack clock_stepped")
    t.login()
    assert "clock_stepped acknowledged" in t.cmd("alarms ack clock_stepped")
    assert t.gw.events("alarm_ack")[0]["detail"] == {"by": "tech:1001", "alarm": "clock_stepped"}
    assert "clock_stepped is not active" in t.cmd("alarms ack clock_stepped")
