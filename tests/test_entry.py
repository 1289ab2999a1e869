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


def test_every_config_key_is_documented():
    # Rows are `name` under a heading that gives the section, e.g. "## Collector link (`collector.`)".
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
