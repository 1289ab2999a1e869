# The CLI of the real gateway (python -m gateway run, cli.port on a pty) against the
# collector emulator (belt model, RTU over TCP, sped up) and the center emulator, typed
# at the pty the way a technician types: a refused out-of-limit zero, a forced one, a
# zero within the limit, a material test that changes material_factor, a lockout, and
# the event records arriving at the center.
import json
import os
import subprocess
import sys
import time

import pytest

from gateway.cli import auth
from tests.core.util import holds_secret
from tests.harness.e2esite import SPEED, Site
from tests.harness.ptyterm import PtyTerm

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_ID = 4711
PIN = "2468"
KEY_S = 0.02


@pytest.fixture
def rig(tmp_path):
    site = Site(tmp_path)
    site.start()
    term, path = PtyTerm.open()
    key = os.urandom(32).hex()
    key_file = str(tmp_path / "device.key")
    with open(key_file, "w") as f:
        f.write(key)
    os.chmod(key_file, 0o600)  # a key file others may read is refused
    with open(os.path.join(site.keys, "%d.key" % DEVICE_ID), "w") as f:
        f.write(key)
    data = tmp_path / "data"
    data.mkdir()
    (data / "accounts.json").write_text(json.dumps(
        {"accounts": [auth.make_account("1001", PIN, "Zhang")]}))
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps(site.config(DEVICE_ID, path, str(data), key_file)))
    gw = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(cfg_path)],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    term.site = site
    term.gw = gw
    try:
        term.expect(r"device 4711; help lists the commands\r\ngw> $", 30)
        yield term
    finally:
        gw.terminate()
        out, _ = gw.communicate(timeout=30)
        site.stop()
        term.close()
        term.gw_output = out
    if os.environ.get("SHOW_SCREEN"):
        print(term.screen.replace("\r\n", "\n").replace("\r", "<CR>"))
    assert "Traceback" not in out, out[-3000:]


def _login(t):
    t.line("login 1001", KEY_S)
    t.expect("PIN: ")
    t.line(PIN, KEY_S)
    t.expect(r"logged in as 1001 \(Zhang\)\r\ngw:1001> $", 10)


def _events(site, code):
    return [r for r in site.center.records(DEVICE_ID)
            if r.get("type") == "event" and r.get("code") == code]


def _wait(cond, timeout_s):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.2)
    return False


def test_zero_calibrations_and_a_material_test_on_the_real_gateway(rig):
    t = rig
    for _ in range(20):  # the belt is seen running a few seconds after start
        t.line("status", KEY_S)
        m = t.expect(r"belt       (\w+)")
        if m.group(1) == "running":
            break
        time.sleep(1)
    assert m.group(1) == "running"
    t.line("set scale.zero_counts 5", KEY_S)
    t.expect(r"needs a technician login")
    _login(t)

    # The first zero moves it by the frame's dead load, which reads as load on the belt:
    # said at once; then beyond the limit, refused.
    t.line("cal zero 3", KEY_S)
    t.expect(r"zero calibration running")
    t.expect(r"load on the belt: [0-9.]+ % of design; zero needs the belt running empty")
    t.expect(r"cancel it\? \(yes/no\) $")
    t.line("no", KEY_S)
    t.expect(r"\r\[#*\.*\] \d\.\d\d/3 rev")
    t.expect(r"zero moved \+[0-9.]+ % of design load \(limit 2 %\)\r\n", 60)
    t.expect(r"outside the limit of 2 %: .*\r\napply\? \(yes/no/force\) $")
    t.line("yes", KEY_S)
    t.expect(r"refused: zero change .* beyond the limit.*\r\ntype force to apply it anyway, or no"
             r"\r\napply\? \(yes/no/force\) $")
    t.line("force", KEY_S)
    m = t.expect(r"applied: zero 0 -> (\d+) counts \(\+\d+\)\r\ngw:1001> $")
    zero = int(m.group(1))
    assert zero > 1000

    # A second zero, within the limit: shown against the value in force, applied on yes.
    t.line("cal zero 3", KEY_S)
    m = t.expect(r"  zero %d -> (\d+) counts \(([-+]\d+)\)" % zero, 60)
    t.expect(r"confirm\? \(yes/no\) $")
    t.line("yes", KEY_S)
    t.expect(r"applied: zero %d -> %s counts" % (zero, m.group(1)))

    # A material test: a batch over the belt, then its weighed mass.
    t.line("cal material", KEY_S)
    t.expect(r"type end when the batch has passed, and its weighed mass in t")
    true0 = t.site.collector.true_mass_kg
    t.site.feed.feed_tph = 800.0
    # At least 3 revolutions of loaded travel (75 m: 6.7 t at 800 t/h) make a batch.
    t.expect(r"measured (9|\d\d)\.\d\d\d t", 60)
    t.site.feed.feed_tph = 0.0
    time.sleep(40 / SPEED)  # the batch reaches the frame and passes it
    assert _wait(lambda: t.site.collector.true_mass_kg - true0 > 0 and
                 t.site.belt.material_on_frame_kg() == 0, 30)
    batch_t = (t.site.collector.true_mass_kg - true0) / 1000
    t.line("%.3f" % (batch_t * 1.03), KEY_S)  # the weighbridge says 3 % more
    t.expect(r"the scale read [-+][0-9.]+ % against the weighbridge\r\n", 30)
    m = t.expect(r"material factor 1 -> ([0-9.]+) \(([-+][0-9.]+) %\)")
    factor = float(m.group(1))
    assert 0.8 < factor < 1.3
    t.expect(r"confirm\? \(yes/no\) $")
    t.line("yes", KEY_S)
    t.expect(r"applied: material factor 1 -> ")

    t.line("show calibration", KEY_S)
    t.expect(r"scale\.material_factor = %s" % m.group(1)[:6])
    t.line("log 10", KEY_S)
    t.expect(r"tech:1001  material test applied: the scale read [-+][0-9.]+ % against the "
             r"weighbridge")
    t.expect(r"tech:1001  set scale\.material_factor 1 -> ")
    t.line("logout", KEY_S)
    t.expect(r"logged out\r\ngw> $")

    # Every change reached the center as an event naming the technician.
    assert _wait(lambda: len(_events(t.site, "param_changed")) >= 3
                 and _events(t.site, "logout"), 30)
    changed = _events(t.site, "param_changed")
    assert all(e["detail"]["by"] == "tech:1001" for e in changed)
    keys = [k for e in changed for k in e["detail"]["changes"]]
    assert keys == ["scale.zero_counts", "scale.zero_counts", "scale.material_factor"]
    assert _events(t.site, "cal_refused") and _events(t.site, "cal_material")
    assert _events(t.site, "login")[0]["detail"] == {"who": "tech:1001"}


def test_lockout_and_reading_on_the_real_gateway(rig):
    t = rig
    for i in range(1, 5):
        t.line("login 1001", KEY_S)
        t.expect("PIN: ")
        t.line("0000", KEY_S)
        t.expect(r"wrong id or PIN \(%d of 5 tries\)" % i, 10)
    # Typed ahead while the PIN is checked: taken once the answer is out.
    t.line("login 1001", KEY_S)
    t.expect("PIN: ")
    t.send("0000\rstatus\r")
    t.expect(r"wrong id or PIN; login locked for 300 s\r\ngw> status\r\n", 10)
    t.expect(r"belt       ")
    t.line("login 1001", KEY_S)
    t.expect(r"error: login locked for \d+ s after 5 failures")
    for cmd, pattern in (("show identity", r"device id         4711"),
                         ("show params cli.", r"  cli\.port = "),
                         ("alarms", r"gw> $"),
                         ("diag", r"overall     "),
                         ("coef", r"coef 1, effective since"),
                         ("records seq 1..3", r"#1 \d{4}-\d\d-\d\d [0-9:]+ \+08:00  gateway "
                                              r"started, firmware"),
                         ("time", r"\(unix \d+, UTC\+8\.0 h\)")):
        t.line(cmd, KEY_S)
        t.expect(pattern, 10)
    assert _wait(lambda: _events(t.site, "login_locked"), 30)
    assert not holds_secret("0000", t.site.center.records(DEVICE_ID))
