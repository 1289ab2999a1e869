# The emulated site (collector + center on loopback) and `make run`: the site plus a
# gateway process showing what it sees. Everything it writes goes under .run/.
import argparse
import binascii
import json
import os
import shutil
import subprocess
import sys
import time

from emulator.belt import PROFILES, Belt
from emulator.center import Center
from emulator.collector import CollectorEmulator, Faults
from emulator.meters import SITE_TERMINALS, site_bus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_ID = 1001


def add_site_args(p):
    p.add_argument("--dir", default=os.path.join(ROOT, ".run"), help="working directory")
    p.add_argument("--collector", default="127.0.0.1:5020", metavar="HOST:PORT",
                   help="RTU over TCP listen address (port 0: any)")
    p.add_argument("--pty", action="store_true", help="serve the collector on a pty instead")
    p.add_argument("--center", default="127.0.0.1:7700", metavar="HOST:PORT")
    p.add_argument("--meters", default="127.0.0.1:5021", metavar="HOST:PORT",
                   help="the power terminals' bus (DL/T 645 over TCP); 'none' for none")
    p.add_argument("--profile", default="surges", choices=sorted(PROFILES))
    p.add_argument("--speed", type=float, default=1.0, help="belt seconds per real second")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seconds", type=float, help="stop after this many seconds")


def _hostport(text):
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


class Site:
    """The collector and the center, in this process (background threads)."""

    def __init__(self, args):
        self.args = args
        self.dir = args.dir
        self.keys_dir = os.path.join(self.dir, "keys")
        os.makedirs(self.keys_dir, exist_ok=True)
        self.belt = Belt(seed=args.seed, profile=PROFILES[args.profile]())
        self.collector = CollectorEmulator(self.belt, speed=args.speed, seed=args.seed,
                                           faults=Faults())
        host, port = _hostport(args.center)
        self.center = Center(os.path.join(self.dir, "center.db"), self.keys_dir, host, port,
                             verbose=False)
        self.collector_url = None
        self.meters = None if getattr(args, "meters", "none") == "none" else site_bus(self.belt)
        self.meters_url = None

    def start(self):
        if self.args.pty:
            self.collector_url = self.collector.start_pty()
        else:
            self.collector_url = "socket://%s:%d" % self.collector.start_tcp(
                *_hostport(self.args.collector))
        self.center.start_thread()
        if self.meters is not None:
            self.meters_url = "socket://%s:%d" % self.meters.start_tcp(
                *_hostport(self.args.meters))

    def wait(self, seconds):
        end = None if seconds is None else time.monotonic() + seconds
        while end is None or time.monotonic() < end:
            time.sleep(0.2)

    def stop(self):
        if self.meters is not None:
            self.meters.stop()
        self.collector.stop()
        for dev, st in sorted(self.center.summary().items()):
            print("center: device %d: %d records, next seq %d, gaps %s, duplicates ignored %d, "
                  "production %.3f t" % (dev, st["records"], st["next"], st["gaps"] or "none",
                                         st["duplicates"], st["prod_mass_kg"] / 1000), flush=True)
        print("emulator: true mass that crossed the frame %.3f t" % (
            self.collector.true_mass_kg / 1000), flush=True)
        self.center.stop()


def provision(site, device_id=DEVICE_ID):
    """A device key (kept on both sides, never printed) and a configuration."""
    key_file = os.path.join(site.dir, "device.key")
    center_key = os.path.join(site.keys_dir, "%d.key" % device_id)
    if not os.path.exists(key_file):
        with open(key_file, "w") as f:
            f.write(binascii.hexlify(os.urandom(32)).decode())
        os.chmod(key_file, 0o600)
    with open(key_file) as f, open(center_key, "w") as g:
        g.write(f.read())
    cfg = {
        "device_id": device_id,
        "key_file": key_file,
        "data_dir": os.path.join(site.dir, "data"),
        "collector": {"port": site.collector_url, "baud": 115200},
        "center": {"host": site.center.host, "port": site.center.port},
        "scale": {},
    }
    if site.meters_url:
        cfg["meters"] = {"port": site.meters_url, "terminals": SITE_TERMINALS}
    path = os.path.join(site.dir, "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return path


def main(argv):
    p = argparse.ArgumentParser(prog="python -m emulator demo",
                                description="the emulated site and a gateway (make run)")
    add_site_args(p)
    p.add_argument("--micropython", action="store_true", help="run the gateway on MicroPython")
    p.add_argument("--lines", action="store_true", help="plain status lines, no panel redraw")
    p.add_argument("--keep", action="store_true",
                   help="keep the gateway's flash and the center's database from the last run")
    args = p.parse_args(argv)
    if not args.keep:
        # A fresh site: the emulated belt starts from zero each run, so the gateway does too.
        shutil.rmtree(os.path.join(args.dir, "data"), ignore_errors=True)
        for name in ("center.db", "center.db-journal"):
            if os.path.exists(os.path.join(args.dir, name)):
                os.remove(os.path.join(args.dir, name))
    site = Site(args)
    site.start()
    cfg = provision(site)
    _commission(site, cfg)
    exe = [os.path.join(os.path.dirname(sys.executable), "micropython")] if args.micropython \
        else [sys.executable]
    screen = sys.stdout.isatty() and not args.lines
    cmd = exe + ["-m", "gateway", "run", "--config", cfg, "--screen" if screen else "--monitor"]
    if args.seconds:
        cmd += ["--seconds", str(args.seconds)]
    print("collector %s, center %s:%d, gateway: %s" % (
        site.collector_url, site.center.host, site.center.port, " ".join(cmd[1:])), flush=True)
    gw = subprocess.Popen(cmd, cwd=ROOT)
    try:
        rc = gw.wait()
    except KeyboardInterrupt:
        rc = gw.wait()  # it got the same Ctrl-C and stops cleanly
    site.stop()
    return rc


def _commission(site, cfg_path):
    """Calibrate the scale for this belt the way a technician would (speed by belt
    marks, zero, span with test weights, a material test), on the belt model in
    simulated time, so the demo starts with a commissioned gateway."""
    from emulator.scale_runs import commission

    rig, _ = commission(seed=site.args.seed)
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["scale"].update({k[6:]: v for k, v in rig.flat.items() if k.startswith("scale.")
                         and k[6:] in _CALIBRATED})
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=1)


_CALIBRATED = ("pulses_per_m", "zero_counts", "span_kg_per_count", "material_factor",
               "weigh_length_m", "belt_length_m")
