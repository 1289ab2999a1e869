# The CLI through a real pty, typed the way a technician types, in real time: the CLI job
# on hal.uart (pyserial) in the real loop next to a 10 Hz job, against the fake Control.
# The same sessions against the integrated gateway and the emulators: test_cli_e2e.py.
import json
import os
import random
import subprocess
import sys
import threading

import pytest

from gateway.cli import auth
from gateway.cli.session import Cli
from gateway.loop import Loop
from hal.board import open_uart
from hal.clock import Clock
from tests.core.fakecontrol import FakeControl
from tests.core.util import holds_secret
from tests.harness.ptyterm import PtyTerm

pytestmark = pytest.mark.realtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")
PIN = "7531"
KEY_S = 0.03  # a quick typist; slow typing is its own test


@pytest.fixture
def rig():
    term, path = PtyTerm.open()
    clock = Clock()
    control = FakeControl(clock)
    control._params["scale.belt_length_m"] = 10.0  # 0.4 s a revolution at 25 m/s
    accounts = auth.parse_accounts(json.dumps(
        {"accounts": [auth.make_account("1001", PIN, "Zhang", iterations=2000)]}))
    stream = open_uart(path, 115200)
    cli = Cli(control, stream, auth.Auth(accounts, clock), clock)
    loop = Loop(clock)
    loop.add(control, 100)
    loop.add(cli, 20)
    cli.start()
    th = threading.Thread(target=loop.run, daemon=True)
    th.start()
    term.control = control
    term.loop = loop
    term.expect(r"gw> $")
    yield term
    loop.stop()
    th.join(5)
    stream.close()
    term.close()


def _login(term):
    term.line("login 1001", KEY_S)
    term.expect("PIN: ")
    term.line(PIN, KEY_S)
    term.expect(r"logged in as 1001 \(Zhang\)\r\ngw:1001> ")


def test_full_zero_calibration_typed_at_the_terminal(rig):
    _login(rig)
    rig.line("cal zero 3", KEY_S)
    rig.expect(r"zero calibration running")
    rig.expect(r"\r\[#*\.+\] \d\.\d\d/3 rev")  # the bar, redrawn in place
    rig.expect(r"\r\[####################\] 3\.00/3 rev")
    rig.expect(r"  zero 1000 -> 1100 counts \(\+100\)\r\n.*\r\nconfirm\? \(yes/no\) $")
    assert rig.control.params()["scale.zero_counts"] == 1000
    rig.line("yes", KEY_S)
    rig.expect(r"applied: zero 1000 -> 1100 counts \(\+100\)\r\ngw:1001> $")
    assert rig.control.params()["scale.zero_counts"] == 1100
    ev = rig.control.events("param_changed")[-1]
    assert ev["detail"] == {"by": "tech:1001", "changes": {"scale.zero_counts": [1000, 1100]}}
    assert "param_changed" in [a["code"] for a in rig.control.alarms_active()]


def test_out_of_limit_zero_is_refused(rig):
    rig.control.zero_true = 5000
    _login(rig)
    rig.line("cal zero 1", KEY_S)
    rig.expect(r"zero moved \+16\.00 % of design load \(limit 2 %\)\r\n")
    rig.expect(r"outside the limit of 2 %: .*\r\napply\? \(yes/no/force\) $")
    rig.line("yes", KEY_S)
    rig.expect(r"refused: .*\r\ntype force to apply it anyway, or no\r\napply\? ")
    rig.line("no", KEY_S)
    rig.expect(r"zero calibration cancelled; nothing changed\r\ngw:1001> $")
    assert rig.control.params()["scale.zero_counts"] == 1000
    assert rig.control.events("cal_refused")[0]["detail"]["technician"] == "tech:1001"
    assert rig.control.events("param_changed") == []


def test_lockout_after_five_wrong_pins(rig):
    for i in range(1, 5):
        rig.line("login 1001", KEY_S)
        rig.expect("PIN: ")
        rig.line("1111", KEY_S)
        rig.expect(r"wrong id or PIN \(%d of 5 tries\)" % i)
    rig.line("login 1001", KEY_S)
    rig.expect("PIN: ")
    rig.line("1111", KEY_S)
    rig.expect(r"wrong id or PIN; login locked for 300 s")
    rig.line("login 1001", KEY_S)
    rig.expect(r"error: login locked for \d+ s after 5 failures\r\ngw> $")
    assert not holds_secret("1111", rig.control.records_list)
    assert len(rig.control.events("login_failed")) == 5
    assert rig.control.events("login_locked")[0]["detail"]["id"] == "1001"
    assert rig.control.events("login") == []


def test_material_test_changes_material_factor(rig):
    _login(rig)
    rig.line("cal material", KEY_S)
    rig.expect(r"measured 0\.[3-9]")
    rig.line("0.4", KEY_S)
    m = rig.expect(r"material factor 1 -> ([0-9.]+) \(([-+][0-9.]+) %\)\r\n.*\r\nconfirm")
    measured_t = rig.control.cal.measured_kg / 1000
    assert rig.control.params()["scale.material_factor"] == 1.0
    rig.line("yes", KEY_S)
    rig.expect(r"applied: material factor 1 -> ")
    factor = rig.control.params()["scale.material_factor"]
    assert abs(factor - 0.4 / measured_t) < 1e-9
    assert abs(factor - float(m.group(1))) < 1e-6 * factor
    ev = rig.control.events("param_changed")[-1]
    assert ev["detail"]["by"] == "tech:1001"
    assert ev["detail"]["changes"]["scale.material_factor"] == [1.0, factor]


def test_slow_typing_and_a_garbage_paste_do_not_hold_up_the_poll(rig):
    polls0 = rig.control.polls
    rig.line("status", key_delay_s=0.25)  # 1.75 s of typing
    rig.expect(r"collector  online")
    rig.send(random.Random(10240).randbytes(10240))
    rig.send(b"\x03")
    rig.line("help", KEY_S)
    rig.expect(r"commands \(reading is open; changes need login\):")
    rig.expect(r"gw> $")
    assert rig.control.polls - polls0 >= 15
    # A CLI that waited for a line would have stalled the loop for seconds.
    assert rig.control.max_gap_ms < 500


def test_console_stream_on_both_interpreters():
    # hal.console over a pty: no kernel echo (one copy of each byte comes back, from the
    # program), non-blocking reads, and the terminal restored on close.
    script = (
        "import sys\nsys.path.insert(0, %r)\n"
        "from hal.console import Console\n"
        "c = Console()\nbuf = bytearray(16)\nseen = b''\nidle = 0\n"
        "while not seen.endswith(b'q'):\n"
        "    n = c.readinto(buf, 50)\n"
        "    if n:\n        seen += bytes(buf[:n])\n"
        "        c.write(b'<' + bytes(buf[:n]) + b'>')\n"
        "    else:\n        idle += 1\n"
        "c.close()\nc.write(b'idle=%%d' %% min(idle, 1))\n" % ROOT
    )
    for exe in (sys.executable, MICROPYTHON):
        term, path = PtyTerm.open(raw=False)
        slave = os.open(path, os.O_RDWR)
        p = subprocess.Popen([exe, "-c", script], stdin=slave, stdout=slave, stderr=slave)
        try:
            import time
            time.sleep(0.3)
            term.send(b"ab")
            term.expect(r"<ab>|<a><b>")
            term.send(b"\rq")
            term.expect(r"q>")
            term.expect(r"idle=1")
            assert p.wait(10) == 0
            assert "ab<" not in term.screen  # the terminal did not echo
        finally:
            os.close(slave)
            term.close()
            if p.poll() is None:
                p.kill()


_MP_RIG = r"""
import sys, json
sys.path.insert(0, %(root)r)
from gateway.cli import auth
from gateway.cli.session import Cli
from gateway.loop import Loop
from hal.clock import Clock
from hal.board import open_uart
from tests.core.fakecontrol import FakeControl

clock = Clock()
control = FakeControl(clock)
control._params["scale.belt_length_m"] = 10.0
accounts = auth.parse_accounts(json.dumps({"accounts": [
    auth.make_account("1001", %(pin)r, "Zhang", iterations=2000)]}))
cli = Cli(control, open_uart(%(path)r, 115200), auth.Auth(accounts, clock), clock)
loop = Loop(clock)
loop.add(control, 100)
loop.add(cli, 20)

class Stop:
    name = "stop"
    def run(self, now_ms):
        if control.events("logout"):
            loop.stop()

loop.add(Stop(), 100)
cli.start()
loop.run(30000)
print(json.dumps({"zero": control.params()["scale.zero_counts"],
                  "max_gap_ms": control.max_gap_ms,
                  "codes": [r["code"] for r in control.events()]}))
"""


def test_the_cli_on_micropython_through_a_pty():
    term, path = PtyTerm.open()
    script = _MP_RIG % {"root": ROOT, "pin": PIN, "path": path}
    p = subprocess.Popen([MICROPYTHON, "-c", script], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        term.expect(r"gw> $")
        _login(term)
        term.line("cal zero 2", KEY_S)
        term.expect(r"\r\[####################\] 2\.00/2 rev")
        term.expect(r"  zero 1000 -> 1100 counts \(\+100\)\r\n.*\r\nconfirm\? \(yes/no\) $")
        term.line("yes", KEY_S)
        term.expect(r"applied: zero 1000 -> 1100 counts \(\+100\)\r\ngw:1001> $")
        term.line("logout", KEY_S)
        out, _ = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
        term.close()
    res = json.loads(out.strip().splitlines()[-1])
    assert res["zero"] == 1100
    assert res["codes"] == ["login", "cal_started", "cal_zero", "param_changed", "logout"]
    assert res["max_gap_ms"] < 500
