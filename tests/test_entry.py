# The entry points as an operator meets them: a bad configuration stops the gateway with
# one line naming the key and exit status 2 (on both interpreters), every key is
# documented, and `make run`'s demo runs the emulator and a gateway and shows live values.
import json
import os
import re
import subprocess
import sys

import pytest

from gateway import config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
INTERPRETERS = {"cpython": sys.executable, "micropython": os.path.join(BIN, "micropython")}


def _cfg(tmp_path, **top):
    key = tmp_path / "k.hex"
    key.write_text("ab" * 32)
    key.chmod(0o600)  # a key file others may read is refused
    obj = {
        "device_id": 5,
        "key_file": str(key),
        "data_dir": str(tmp_path / "data"),
        "collector": {"port": "socket://127.0.0.1:1"},
        "center": {"host": "127.0.0.1", "port": 1},
    }
    obj.update(top)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(obj))
    return str(path)


def _run(exe, *args):
    return subprocess.run([exe, "-m", "gateway"] + list(args), cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("interp", sorted(INTERPRETERS))
@pytest.mark.parametrize(
    "change, named",
    [
        ({"collector": {"port": "socket://127.0.0.1:1", "bauds": 9600}}, "collector.bauds"),
        ({"collector": {"port": "socket://127.0.0.1:1", "baud": 9601}}, "collector.baud"),
        ({"device_id": "five"}, "device_id"),
        ({"scale": {"pulses_per_m": 0}}, "scale.pulses_per_m"),
        ({"key_file": "/nonexistent/key"}, "key_file"),
    ],
)
def test_bad_config_exits_2_naming_the_key(tmp_path, interp, change, named):
    r = _run(INTERPRETERS[interp], "run", "--config", _cfg(tmp_path, **change))
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("config error: " + named), r.stdout


@pytest.mark.parametrize("interp", sorted(INTERPRETERS))
def test_bad_arguments_and_unreadable_file_exit_2(tmp_path, interp):
    exe = INTERPRETERS[interp]
    r = _run(exe, "run")
    assert r.returncode == 2 and "--config FILE is required" in r.stdout
    r = _run(exe, "run", "--config", str(tmp_path / "missing.json"))
    assert r.returncode == 2 and "cannot read config file" in r.stdout
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = _run(exe, "run", "--config", str(bad))
    assert r.returncode == 2 and "not valid JSON" in r.stdout


@pytest.mark.parametrize("interp", sorted(INTERPRETERS))
def test_help_prints_the_usage_and_exits_0(interp):
    for args in (["--help"], ["run", "--help"], ["run", "-h"]):
        r = _run(INTERPRETERS[interp], *args)
        assert r.returncode == 0, (args, r.stdout + r.stderr)
        assert r.stdout.startswith("usage: gateway run --config FILE") and not r.stderr, args


@pytest.mark.parametrize("interp", sorted(INTERPRETERS))
def test_a_trailing_comma_is_not_valid_json_on_either_interpreter(tmp_path, interp):
    bad = tmp_path / "bad.json"
    bad.write_text('{"device_id": 2002,}')
    r = _run(INTERPRETERS[interp], "run", "--config", str(bad))
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout.strip() == "config error: %s is not valid JSON (line 1, column 20: want a " \
                               "key in double quotes)" % bad, r.stdout


@pytest.mark.parametrize("interp", sorted(INTERPRETERS))
def test_a_data_dir_that_cannot_be_used_is_one_line_and_exit_2(tmp_path, interp):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for data_dir, said in (
        (afile, "%s is a file, not a directory" % afile),
        (afile / "data", "cannot create %s (a part of its path is a file)" % (afile / "data")),
    ):
        r = _run(INTERPRETERS[interp], "run", "--config", _cfg(tmp_path, data_dir=str(data_dir)),
                 "--seconds", "1")
        assert r.returncode == 2, r.stdout + r.stderr
        assert "Traceback" not in r.stdout + r.stderr, r.stderr
        lines = r.stdout.splitlines()
        assert lines == ["config error: data_dir: " + said], r.stdout


@pytest.mark.parametrize("interp", sorted(INTERPRETERS))
def test_a_uart_port_off_a_board_is_one_line_and_exit_2(tmp_path, interp):
    # Neither a PC nor the unix port has machine.UART: it used to be an AttributeError
    # traceback per collector run (MicroPython) or a silent "link lost" (CPython).
    for change, key in (({"collector": {"port": "uart:1"}}, "collector.port"),
                        ({"cli": {"port": "uart:0"}}, "cli.port")):
        r = _run(INTERPRETERS[interp], "run", "--config", _cfg(tmp_path, **change),
                 "--seconds", "2")
        assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
        port = change[key.split(".")[0]]["port"]
        assert r.stdout.splitlines() == [
            "config error: %s: %s needs a board; here give a serial device or "
            "socket://host:port" % (key, port)], r.stdout[-2000:]
        assert not r.stderr, r.stderr[-2000:]
    r = _run(INTERPRETERS[interp], "run", "--config",
             _cfg(tmp_path, collector={"port": "socket://127.0.0.1"}), "--seconds", "2")
    assert r.returncode == 2 and r.stdout.splitlines() == [
        "config error: collector.port: bad socket URL 'socket://127.0.0.1', want "
        "socket://host:port"], r.stdout[-2000:] + r.stderr[-2000:]


_FLAKY_JOB = """
import sys
sys.path.insert(0, %r)
from gateway.loop import Loop
from hal.virtualclock import VirtualClock

class Job:
    name = "flaky"
    runs = 0
    def run(self, now_ms):
        self.runs += 1
        if self.runs <= 25 or self.runs > 28:
            raise OSError("port gone")
        if self.runs <= 27:
            raise ValueError("bad frame")

loop = Loop(VirtualClock())
loop.add(Job(), 10)
loop.run(300)
print("errors %%d" %% loop.stats()["flaky"]["errors"])
"""


@pytest.mark.parametrize("interp", sorted(INTERPRETERS))
def test_a_job_failing_the_same_way_in_a_row_is_logged_once_with_a_count(tmp_path, interp):
    script = tmp_path / "flaky.py"
    script.write_text(_FLAKY_JOB % ROOT)
    r = subprocess.run([INTERPRETERS[interp], str(script)], capture_output=True, text=True,
                       timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    said = [ln for ln in out.splitlines() if ln.startswith(("job ", "errors "))]
    assert said == [
        "job flaky failed:",
        "job flaky: that failure 10 times in a row so far",
        "job flaky: that failure 25 times in a row",
        "job flaky failed:",
        "job flaky: that failure 2 times in a row",
        "job flaky failed:",
        "errors 30",  # every failure counted: 25 + 2 + 3
    ], out
    assert out.count("Traceback") == 3 and out.count("OSError: port gone") == 2, out


@pytest.mark.parametrize("interp", sorted(INTERPRETERS))
def test_the_console_cli_runs_when_stdin_is_not_a_terminal(tmp_path, interp):
    # A service start (stdin /dev/null) or a pipe: CPython crashed with termios.error.
    cfg = _cfg(tmp_path, cli={"port": "console"})
    cmd = [INTERPRETERS[interp], "-m", "gateway", "run", "--config", cfg, "--seconds", "3"]
    r = subprocess.run(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert "help lists the commands" in r.stdout
    r = subprocess.run(cmd, cwd=ROOT, input="help status\n", capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert "usage: status" in r.stdout, r.stdout


@pytest.mark.parametrize("interp", sorted(INTERPRETERS))
def test_a_port_that_will_not_open_is_logged_once_with_the_os_reason(tmp_path, interp):
    tty, cli = str(tmp_path / "ttyUSB9"), str(tmp_path / "ttyCLI")
    r = _run(INTERPRETERS[interp], "run", "--config",
             _cfg(tmp_path, collector={"port": tty}, cli={"port": cli}), "--seconds", "5")
    assert r.returncode == 0 and "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    said = sorted(ln for ln in r.stdout.splitlines() if "cannot open" in ln)
    reason = "[Errno 2] ENOENT" if interp == "micropython" else "No such file or directory"
    assert said == ["cannot open %s: %s; trying again" % (p, reason) for p in (cli, tty)], \
        r.stdout


def test_every_config_key_is_documented():
    # Rows are `name` under a heading that gives the section, e.g.
    # "## Collector link (`collector.`)".
    documented = set()
    prefix = ""
    with open(os.path.join(ROOT, "docs", "config.md")) as f:
        for line in f:
            if line.startswith("## "):
                m = re.search(r"\(`([a-z_]+)\.`", line)
                prefix = m.group(1) + "." if m else ""
            m = re.match(r"^\| `([a-z0-9_]+)` \|", line)
            if m:
                documented.add(prefix + m.group(1))
    keys = set(k for k, *_ in config.SCHEMA)
    assert keys - documented == set(), "not in docs/config.md: %s" % sorted(keys - documented)
    assert documented - keys == set(), "documented, not in SCHEMA: %s" % sorted(documented - keys)


@pytest.mark.e2e
def test_make_run_demo_shows_live_values_and_exits_0(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "emulator", "demo", "--seconds", "14", "--lines", "--dir",
         str(tmp_path), "--collector", "127.0.0.1:0", "--center", "127.0.0.1:0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    live = [ln for ln in r.stdout.splitlines() if ln.startswith("rate ")]
    assert len(live) >= 10, r.stdout[-2000:]
    last = live[-1]
    assert "link ok" in last and "center online" in last, last
    speed = float(re.search(r"speed +([0-9.]+) m/s", last).group(1))
    assert 2.0 < speed < 3.0  # the demo belt runs at 2.5 m/s
    assert re.search(r"center: device 1001: \d+ records", r.stdout)


@pytest.mark.parametrize("command", [["emulator"], ["emulator", "demo"]])
@pytest.mark.parametrize("flag", ["--collector", "--center"])
def test_an_address_in_use_is_one_line_naming_it_and_what_to_do(tmp_path, command, flag):
    # `make run` with its ports taken used to end in a 30-line traceback (or, for the
    # center, a RuntimeError after 10 s).
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    address = "127.0.0.1:%d" % taken.getsockname()[1]
    try:
        args = {"--collector": "127.0.0.1:0", "--center": "127.0.0.1:0", flag: address}
        r = subprocess.run(
            [sys.executable, "-m"] + command + ["--seconds", "5", "--dir", str(tmp_path)]
            + [x for kv in args.items() for x in kv],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
    finally:
        taken.close()
    assert r.returncode == 2, r.stdout + r.stderr
    what = flag[2:]
    assert r.stderr.splitlines() == [
        "emulator: %s (the %s) is in use, by another emulator or `make run`? Stop it, or give "
        "%s HOST:PORT (port 0: any free one; make run ARGS=\"%s 127.0.0.1:0\")"
        % (address, what, flag, flag)], r.stderr
    assert "gateway" not in r.stdout  # nothing started after it


def _in_a_terminal(cmd, cols, rows, timeout_s=120):
    """Run cmd on a pty of cols x rows; everything it wrote, and its exit status."""
    import fcntl
    import select
    import struct
    import termios
    import time

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    p = subprocess.Popen(cmd, cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, env=env,
                         start_new_session=True)
    os.close(slave)
    out = b""
    end = time.monotonic() + timeout_s
    try:
        while time.monotonic() < end:
            if not select.select([master], [], [], 0.2)[0]:
                if p.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # the other side closed
                break
            if not data:
                break
            out += data
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    return out.decode("utf-8", "replace").replace("\r\n", "\n"), p.wait()


@pytest.mark.parametrize("interp", sorted(INTERPRETERS))
def test_make_run_fits_an_80x24_terminal_and_explains_its_figures(tmp_path, interp):
    out, rc = _in_a_terminal(
        [sys.executable, "-m", "emulator", "demo", "--seconds", "8", "--dir", str(tmp_path),
         "--collector", "127.0.0.1:0", "--center", "127.0.0.1:0"]
        + (["--micropython"] if interp == "micropython" else []), 80, 24)
    assert rc == 0, out[-3000:]
    frames = out.split("\x1b[H\x1b[J")[1:]
    assert len(frames) >= 5, out[-3000:]
    # The panel: its 16 rows of braille dots on top of every frame.
    assert all(len(f.split("\n")) >= 16 and f[0] >= "\u2800" for f in frames), frames[-1]
    last, _, closing = frames[-1].partition("\ngateway: total ")
    for frame in frames[:-1] + [last]:
        lines = frame.rstrip("\n").split("\n")
        # 23 lines and the cursor on the 24th: nothing scrolls off the top.
        assert len(lines) <= 23 and max(len(ln) for ln in lines) <= 80, frame
    legend = "\n".join(last.split("\n")[-3:])
    assert "bottom line collector link" in legend and "A = active alarms" in legend \
        and "page n/6" in legend, legend
    closing = "gateway: total " + closing
    assert max(len(ln) for ln in closing.splitlines()) <= 80, closing
    assert re.search(r"^gateway: total [0-9.]+ t at stop, and [0-9.]+ t still in the drop-out "
                     r"window$", closing, re.M), closing
    assert re.search(r"^center: production [0-9.]+ t \(closed production intervals only",
                     closing, re.M), closing
    assert re.search(r"^emulator: true mass [0-9.]+ t over the gateway's polls \([0-9.]+ t in "
                     r"all\)$", closing, re.M), closing
    assert "why they differ:" in closing


def test_the_panel_takes_the_style_that_fits_the_terminal(monkeypatch):
    from hal.display import TerminalDisplay

    for cols, rows, style, size in ((80, 24, "braille", (64, 16)), (140, 45, "half", (128, 32)),
                                    (140, 30, "braille", (64, 16))):
        monkeypatch.setenv("COLUMNS", str(cols))
        monkeypatch.setenv("LINES", str(rows))
        d = TerminalDisplay(style="fit", spare_rows=6)
        lines = d.lines()
        assert d.style == style and (len(lines[0]), len(lines)) == size, (cols, rows)


def test_the_example_configurations_are_valid():
    # config/pc.json runs a gateway on a PC; config/site.json is what flash.py provision
    # takes (it adds device_id, key_file and data_dir).
    with open(os.path.join(ROOT, "config", "pc.json")) as f:
        pc = config.validate(json.load(f))
    assert pc["collector.port"] == "/dev/ttyUSB0" and pc["cli.port"] == "console"
    with open(os.path.join(ROOT, "config", "site.json")) as f:
        site = json.load(f)
    assert "device_id" not in site
    site.update(device_id=7, key_file="device.key", data_dir="data")
    board = config.validate(site)
    assert board["collector.port"] == "uart:1" and board["production.interval_s"] == 60
