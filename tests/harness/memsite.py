# The real gateway from a flash.py image, run by the real micropython with a capped heap
# (-X heapsize=N), against the emulated site (collector on RTU over TCP, center), with
# the CLI port on a pty. A probe job added to the loop (gw_probe.py, copied beside the
# image, not part of it) prints the heap figures. CPython only: used by
# tests/test_memory.py and bench/memory.py.
import json
import os
import re
import subprocess
import sys
import time
from types import SimpleNamespace

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")
DEVICE_ID = 1001
_GC_BLOCK = 32  # bytes in a block of MicroPython's heap on the 64-bit unix port
PIN = "2468"

# Runs in the device directory: the gateway exactly as main.py starts it, plus one job
# that samples the heap every 20 ms and, every 5 s, collects and reports the live set.
_PROBE = """
import gc, sys, micropython
from gateway import app

PERIOD_S = 5


class Probe:
    name = "probe"

    def __init__(self):
        self.n = 0
        self.top = 0
        self.live_max = 0

    def run(self, now_ms):
        a = gc.mem_alloc()
        if a > self.top:
            self.top = a
        self.n += 1
        if self.n % (PERIOD_S * 50) == 0:
            gc.collect()
            live = gc.mem_alloc()
            if self.n > 15 * 50 and live > self.live_max:
                self.live_max = live  # after start-up and the first uploads
            if "-q" in sys.argv:
                micropython.qstr_info()
            micropython.mem_info()  # its "max free sz": the largest free block, in blocks
            # In pieces: a probe must not need a large block of the heap it measures.
            print("PROBE live=%d free=%d top=%d live_max=%d modules=" % (
                live, gc.mem_free(), self.top, self.live_max), end="")
            for k in sys.modules:
                if k.startswith(("gateway.", "protocols.", "drivers.", "hal.")):
                    print(k, end=",")
            print()


STARTED = []

if "-s" in sys.argv:  # the live heap after each step of start-up (before it: with garbage)
    def stage(name):
        if STARTED:
            return
        a = gc.mem_alloc()
        gc.collect()
        print("STAGE %s %d %d" % (name, gc.mem_alloc(), a))

    def traced(owner, attr, name):
        fn = getattr(owner, attr)

        def wrapper(*args, **kw):
            r = fn(*args, **kw)
            stage(name)
            return r

        setattr(owner, attr, wrapper)

    stage("imported")
    from gateway import ondemand

    def traced_call(attr):
        fn = getattr(ondemand, attr)

        def wrapper(module, name, *args):
            r = fn(module, name, *args)
            stage("%s:%s.%s" % (attr, module, name))
            return r

        setattr(ondemand, attr, wrapper)

    traced_call("once")
    traced_call("call")
    traced(ondemand, "forget", "forget")

_start = app.Gateway.start


def start(self):
    _start(self)
    STARTED.append(1)
    gc.collect()
    print("PROBE started live=%d" % gc.mem_alloc())
    self.loop.add(Probe(), 20, 1)


app.Gateway.start = start
from gateway.__main__ import main

main([a for a in sys.argv[1:] if a not in ("-q", "-s")])
"""


def build_image(out):
    """flash.py build into out (reused while sources are unchanged)."""
    r = subprocess.run([sys.executable, os.path.join(ROOT, "flash.py"), "build", "--out", out],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    if r.returncode:
        raise RuntimeError(r.stdout + r.stderr)
    return out


def start_site(tmp, speed=2.0, seed=3, meters=False):
    """The emulated collector (surging feed) and center in this process; with meters, the
    two power terminals too (provision() then configures them)."""
    from emulator import demo

    args = SimpleNamespace(dir=tmp, collector="127.0.0.1:0", pty=False,
                           center="127.0.0.1:0", profile="surges", speed=speed, seed=seed,
                           seconds=None, meters="127.0.0.1:0" if meters else "none")
    site = demo.Site(args)
    site.start()
    return site


def provision(site, image, tmp, cli_port, extra=None):
    """flash.py provision a virtual board in tmp/dev for site; returns its directory."""
    dev = os.path.join(tmp, "dev")
    cfg = {
        "device_id": 1, "key_file": "-", "data_dir": "-",
        "collector": {"port": site.collector_url, "baud": 115200},
        "center": {"host": site.center.host, "port": site.center.port},
        "production": {"interval_s": 10},
        "cli": {"port": cli_port, "idle_logout_s": 600},
    }
    if getattr(site, "meters_url", None):
        from emulator.meters import SITE_TERMINALS

        cfg["meters"] = {"port": site.meters_url, "terminals": SITE_TERMINALS}
    for key, value in (extra or {}).items():
        section, _, name = key.partition(".")
        cfg.setdefault(section, {})[name] = value
    site_json = os.path.join(tmp, "site.json")
    techs = os.path.join(tmp, "techs.json")
    with open(site_json, "w") as f:
        json.dump(cfg, f)
    with open(techs, "w") as f:
        json.dump([{"id": "1001", "name": "Zhang", "pin": PIN}], f)
    r = subprocess.run(
        [sys.executable, os.path.join(ROOT, "flash.py"), "provision", "--device-id",
         str(DEVICE_ID), "--config", site_json, "--keys-dir", site.keys_dir, "--target", dev,
         "--accounts", techs, "--image", image, "--registry", os.path.join(tmp, "reg.json"),
         "--pin-iterations", "64"],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    if r.returncode:
        raise RuntimeError(r.stdout + r.stderr)
    with open(os.path.join(dev, "gw_probe.py"), "w") as f:
        f.write(_PROBE)
    return dev


def start_gateway(dev, heap, seconds):
    env = {k: v for k, v in os.environ.items() if k != "MICROPYPATH"}
    cmd = [MICROPYTHON]
    if heap:
        cmd += ["-X", "heapsize=%s" % heap]
    cmd += ["gw_probe.py", "run", "--config", "config.json", "--seconds", str(seconds)]
    if os.environ.get("GW_PROBE_QSTR"):
        cmd.append("-q")
    if os.environ.get("GW_PROBE_STAGES"):
        cmd.append("-s")
    return subprocess.Popen(cmd, cwd=dev, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def figures(out):
    """The probe's figures from the gateway's output (every process of a run with cuts):
    {started: [live after each start-up], reports, live (the last), live_max (the peak
    after each process's first 15 s), free_min (the least free after a collection, same
    window), top, modules (the last report's)}."""
    lines = re.findall(
        r"PROBE live=(\d+) free=(\d+) top=(\d+) live_max=(\d+) modules=(\S*)", out)
    fig = {"started": [int(x) for x in re.findall(r"PROBE started live=(\d+)", out)],
           "reports": len(lines)}
    if lines:
        steady = [ln for ln in lines if int(ln[3])]  # live_max is 0 for the first 15 s
        fig["live"] = int(lines[-1][0])
        fig["top"] = max(int(ln[2]) for ln in lines)
        fig["live_max"] = max([int(ln[3]) for ln in lines])
        fig["free_min"] = min([int(ln[1]) for ln in steady]) if steady else None
        fig["modules"] = sorted(m for m in lines[-1][4].split(",") if m)
    # The largest free block at each report: what a big allocation (a checkpoint, an upload
    # frame) can still get in one piece.
    blocks = [int(x) for x in re.findall(r"max free sz: (\d+)", out)]
    if blocks:
        fig["max_free_block_min"] = _GC_BLOCK * min(blocks)
    return fig


_REFUSED = "error: out of memory, the CLI is not loaded"


def session(term):
    """A technician's short visit: login, status, logout (loads the CLI, then it goes).
    Returns True, or "refused" when the gateway said it has no room for the CLI."""
    term.line("login 1001")
    if term.expect("PIN: |" + _REFUSED, 20).group(0) != "PIN: ":
        return "refused"
    term.line(PIN)
    term.expect(r"logged in as 1001 \(Zhang\)", 20)
    term.line("status")
    term.expect(r"belt       ", 20)
    term.line("logout")
    term.expect("logged out", 20)
    return True


def run(tmp, image, heap, seconds, with_session=True, session_at=None, cuts=(), meters=False):
    """One run: the site, a provisioned device, the gateway for `seconds` under `heap`
    (with a technician session halfway, or at session_at s). cuts: seconds after the
    first start at which the gateway is killed (SIGKILL, a power cut) and started again
    at once for the time left. Returns a result with the output of every process, the
    probe's figures and what the center received."""
    from tests.harness.ptyterm import PtyTerm

    site = start_site(tmp, meters=meters)
    term, path = PtyTerm.open()
    p = None
    res = SimpleNamespace(out="", ok=False, records=0, prod=0, last_t=None, session=None,
                          cuts=0, alarms=[], events=[])
    events = [(t, "cut") for t in cuts]
    if with_session:
        events.append((seconds / 2 if session_at is None else session_at, "session"))
    events.sort()
    try:
        dev = provision(site, image, tmp, path)
        p = start_gateway(dev, heap, seconds)
        t0 = time.monotonic()
        for at, what in events:
            while time.monotonic() - t0 < at:
                time.sleep(0.1)
            if what == "cut":
                p.kill()
                res.out += p.communicate(timeout=30)[0] + "\n== SIGKILL ==\n"
                res.cuts += 1
                p = start_gateway(dev, heap, max(5, round(seconds - at)))
                continue
            try:
                res.session = session(term)
            except AssertionError:
                res.session = False
        try:
            p.wait(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            p.kill()
        res.out += p.communicate(timeout=30)[0]
        res.rc = p.returncode
        p = None
        recs = site.center.records(DEVICE_ID)
        res.records = len(recs)
        res.prod = len([r for r in recs if r.get("type") == "prod"])
        res.last_t = max([r.get("t", 0) for r in recs], default=None)
        res.alarms = ["%s %s" % (r.get("code"), r.get("state")) for r in recs
                      if r.get("type") == "alarm"]
        res.events = [r.get("code") for r in recs if r.get("type") == "event"]
        res.fig = figures(res.out)
        res.ok = (res.rc == 0 and "Error" not in res.out and "Traceback" not in res.out
                  and res.prod >= max(1, int(seconds // 10) - 3 - len(cuts))
                  and res.session is not False)
    finally:
        if p is not None:
            p.kill()
            res.out += p.communicate(timeout=30)[0]
        if site.meters is not None:
            site.meters.stop()
        site.collector.stop()
        site.center.stop()
        term.close()
    res.screen = term.screen
    return res


if __name__ == "__main__":
    import tempfile

    heap = sys.argv[1] if len(sys.argv) > 1 else None
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 40
    with_session = sys.argv[3:4] != ["nocli"]
    cuts = [float(t) for t in sys.argv[4].split(",") if t] if sys.argv[4:5] else ()
    meters = "meters" in sys.argv[5:6]
    image = build_image(os.path.join(tempfile.gettempdir(), "gw-mem-image"))
    with tempfile.TemporaryDirectory() as tmp:
        r = run(tmp, image, heap, seconds, with_session, cuts=cuts, meters=meters)
    print(r.out[-3000:])
    print("SCREEN", r.screen[-600:].replace("\r", ""))
    print("ok", r.ok, "rc", r.rc, "records", r.records, "prod", r.prod, "session", r.session,
          "cuts", r.cuts, {k: v for k, v in r.fig.items() if k != "modules"})
    print("alarms", r.alarms, "events", r.events)
