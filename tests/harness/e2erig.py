# End-to-end rig: the collector emulator (belt model, real time, RTU over TCP or a pty),
# the center emulator, and the real gateway: gateway.app.Gateway in this process on a
# thread of its own (real clock), or `python|micropython -m gateway run` as a subprocess.
# Shared by tests/test_e2e_alarms.py and tests/test_e2e_commands.py. CPython only.
#
#   rig = Rig(tmp_path, params={...}).start()      # gateway in-process; start(MICROPYTHON)
#   rig.emu.faults.drop = 1.0                        # the collector stops answering
#   t = rig.wait_alarm("collector_link_lost", "raise", since=t0)
#   rig.call(lambda gw: gw.alarms.active())          # in-process: on the loop's thread
#   rig.stop()
#
# Observation: the center's stored records (what the contract promises), the emulator's
# coils (DO1 is coil 0), and the tap: every record with the time.monotonic() it was
# written (in-process, from the record log) or reached the center (a subprocess).
import errno
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback

from emulator.belt import Belt
from emulator.center import Center
from emulator.collector import CollectorEmulator
from emulator.scale_runs import Manual
from gateway import config
from gateway.cli import auth
from gateway.health import alarms
from gateway.health.alarms import DO1_CLASSES, EVENT, spec
from hal.fs import Flash

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")
PIN = "2468"
TECH = "1001"
# The belt as an installer set it up; speed and span match the belt model, and the zero
# is its own (Rig.config: what a zero calibration on the empty belt finds).
SCALE = {"belt_length_m": 187.3, "weigh_length_m": 1.25, "pulses_per_m": 101.7,
         "span_kg_per_count": 0.001, "design_tph": 1000.0}


class Timeout(AssertionError):
    pass


def wait_until(cond, timeout_s, what="condition", step_s=0.05):
    """cond()'s first true value, or Timeout."""
    end = time.monotonic() + timeout_s
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise Timeout("%s not within %.0f s" % (what, timeout_s))
        time.sleep(step_s)


class _Inbox:
    """A loop job that runs the test thread's calls on the gateway's own thread, so the
    test never reads the gateway's state while the loop changes it."""

    name = "test_inbox"

    def __init__(self, gw):
        self.gw = gw
        self._calls = []
        self._lock = threading.Lock()

    def call(self, fn, timeout_s=10):
        done = threading.Event()
        box = {}
        with self._lock:
            self._calls.append((fn, box, done))
        if not done.wait(timeout_s):
            raise Timeout("the gateway's loop did not run the call")
        if "error" in box:
            raise box["error"]
        return box["value"]

    def run(self, now_ms):
        with self._lock:
            calls, self._calls = self._calls, []
        for fn, box, done in calls:
            try:
                box["value"] = fn(self.gw)
            except Exception as e:  # handed to the caller
                box["error"] = e
            done.set()


class FillableFlash(Flash):
    """hal.fs.Flash whose file system a test can make nearly full (free_kib: what
    free_bytes() reports) or full (full: every write fails with ENOSPC)."""

    def __init__(self, root):
        Flash.__init__(self, root)
        self.free_kib = None
        self.full = False

    def free_bytes(self):
        if self.free_kib is not None:
            return self.free_kib * 1024
        return Flash.free_bytes(self)

    def open(self, name, mode):
        f = Flash.open(self, name, mode)
        return f if mode in ("r", "rb") else _FillableFile(f, self)


class _FillableFile:
    def __init__(self, f, flash):
        self._f = f
        self._flash = flash

    def write(self, data):
        if self._flash.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


class Site:
    """The collector emulator (belt already running, real time) and the center; with
    meters, the two power terminals too, the belt drive's power from what lies on the
    carry (emulator/drive.py)."""

    def __init__(self, tmp, seed=2, feed_tph=400.0, pty=False, meters=False, carry_m=None,
                 belt_kw=None):
        self.tmp = str(tmp)
        self.keys = os.path.join(self.tmp, "keys")
        os.makedirs(self.keys, exist_ok=True)
        self.feed = Manual(feed_tph, 2.5)
        self.belt = Belt(seed=seed, profile=self.feed, **(belt_kw or {}))
        # Up to speed and loaded before the gateway looks: the material laid while the
        # belt was speeding up (denser) has passed the frame by then.
        self.belt.advance(30.0)
        self.emu = CollectorEmulator(self.belt, speed=1.0, seed=seed)
        self.meters = None
        if meters:
            from emulator.drive import CarryPhysics
            from emulator.meters import site_bus

            carry_m = carry_m or SCALE["belt_length_m"] / 2
            self.meters = site_bus(self.belt, physics=CarryPhysics(carry_m))
        self.meters_url = None
        self.pty = pty
        self.db = os.path.join(self.tmp, "center.db")
        self.center = Center(self.db, self.keys, "127.0.0.1", 0)
        self.collector_url = None

    def start(self):
        if self.pty:
            # The gateway opens a fixed path (as /dev/ttyUSB0); plug() points it at a pty.
            self.collector_url = os.path.join(self.tmp, "ttyCOLLECTOR")
            self.plug()
        else:
            self.collector_url = "socket://%s:%d" % self.emu.start_tcp("127.0.0.1", 0)
        if self.meters is not None:
            self.meters_url = "socket://%s:%d" % self.meters.start_tcp("127.0.0.1", 0)
        self.center.start_thread()
        return self

    def plug(self):
        """(Re)plug the USB serial adapter: a new pty behind the same path."""
        path = self.emu.start_pty()
        tmp = self.collector_url + ".new"
        os.symlink(path, tmp)
        os.replace(tmp, self.collector_url)

    def unplug(self):
        """Unplug it: the pty goes and the path with it."""
        os.remove(self.collector_url)
        self.emu.unplug_pty()

    def stop_center(self):
        self.center.stop()

    def start_center(self):
        """The center back on the same port with the same database."""
        self.center = Center(self.db, self.keys, "127.0.0.1", self.center.port)
        self.center.start_thread()

    def stop(self):
        if self.meters is not None:
            self.meters.stop()
        self.emu.stop()
        self.center.stop()


def _write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)  # a key file others may read is refused


class Rig:
    """A site and one gateway. params: run-time and config keys (flat, dotted) given in
    the configuration file; cli: a technician terminal on a pty (tests.harness.ptyterm)."""

    def __init__(self, tmp, device_id=4711, params=None, cli=False, pty=False, seed=2,
                 feed_tph=400.0, name="rig", meters=False, carry_m=None, belt_kw=None):
        self.name = name
        self.tmp = os.path.join(str(tmp), name)
        os.makedirs(self.tmp)
        self.device_id = device_id
        self.site = Site(self.tmp, seed=seed, feed_tph=feed_tph, pty=pty, meters=meters,
                         carry_m=carry_m, belt_kw=belt_kw)
        self.emu = self.site.emu
        self.belt = self.site.belt
        self.params = dict(params or {})
        self.want_cli = cli
        self.term = None
        self.gw = None
        self.proc = None
        self.tap = []  # (monotonic, seq, type, fields) of every record the gateway wrote
        self._thread = None
        self._inbox = None
        self.exe = None
        self.outputs = []  # a subprocess gateway's output, one per run
        self._poller = None
        self._stopping = False
        self.data_dir = os.path.join(self.tmp, "data")
        os.makedirs(self.data_dir)
        self.key = os.urandom(32)
        self.key_file = os.path.join(self.tmp, "device.key")

    # --- set-up

    @property
    def center(self):
        return self.site.center

    def config(self):
        s = self.site
        # A busy test machine (many rigs in one interpreter, other work beside) can delay
        # an answer past the default 100 ms: 300 ms, so that only an injected fault reads
        # as a bad line. A rig about timeouts sets its own.
        flat = {"device_id": self.device_id, "key_file": self.key_file,
                "data_dir": self.data_dir,
                "collector.port": s.collector_url, "collector.baud": 115200,
                "collector.timeout_ms": 300, "collector.identity_s": 10,
                "center.host": "127.0.0.1", "center.port": s.center.port,
                "center.backoff_max_s": 2}
        for key, value in SCALE.items():
            flat["scale." + key] = value
        flat["scale.zero_counts"] = int(round(s.belt.zero_counts()))
        if self.term is not None:
            flat["cli.port"] = self.cli_path
        if s.meters is not None:
            from emulator.meters import SITE_TERMINALS

            flat["meters.port"] = s.meters_url
            flat["meters.terminals"] = SITE_TERMINALS
        flat.update(self.params)
        return config.nest(flat)

    def _provision(self):
        _write(self.key_file, self.key.hex())
        _write(os.path.join(self.site.keys, "%d.key" % self.device_id), self.key.hex())
        _write(os.path.join(self.data_dir, "accounts.json"), json.dumps(
            {"accounts": [auth.make_account(TECH, PIN, "Zhang", iterations=64)]}))
        if self.want_cli:
            from tests.harness.ptyterm import PtyTerm

            self.term, self.cli_path = PtyTerm.open()

    def start(self, exe=None):
        """Start the site and the gateway: in this process (exe None), or as
        `exe -m gateway run` (sys.executable or MICROPYTHON)."""
        self.site.start()
        self._provision()
        self.exe = exe
        if exe:
            self.start_process()
        else:
            self.start_gateway()
        return self

    def restart(self):
        """Stop the gateway cleanly and start it again on the same flash."""
        if self.exe:
            self.stop_process()
            self.start_process()
        else:
            self.stop_gateway()
            self.start_gateway()

    def start_gateway(self):
        """The gateway in this process, on a thread of its own, on the real clock."""
        from gateway.app import Gateway
        from hal import Hardware
        from hal.board import open_uart
        from hal.clock import Clock
        from hal.net import TcpConnector

        cfg = config.validate(self.config())
        hw = Hardware(
            clock=Clock(),
            flash=FillableFlash(cfg["data_dir"]),
            collector_uart=open_uart(cfg["collector.port"], cfg["collector.baud"]),
            center_connect=TcpConnector(cfg["center.host"], cfg["center.port"]),
            cli_uart=open_uart(cfg["cli.port"], 115200) if cfg["cli.port"] else None,
            meter_uart=open_uart(cfg["meters.port"], cfg["meters.baud"], cfg["meters.parity"])
            if cfg["meters.port"] else None,
        )
        gw = Gateway(cfg, self.key, hw)
        append = gw.log.append
        tap = self.tap

        def tapped(rtype, t, fields):
            seq = append(rtype, t, fields)
            tap.append((time.monotonic(), seq, rtype, json.loads(json.dumps(fields))))
            return seq

        gw.log.append = tapped
        gw.start()
        self._inbox = _Inbox(gw)
        gw.loop.add(self._inbox, 20, 11)
        self.gw = gw
        self._thread = threading.Thread(target=gw.loop.run, name=self.name, daemon=True)
        self._thread.start()
        return gw

    def stop_gateway(self):
        """Stop the in-process gateway as `run` does when it ends (checkpoint, close)."""
        gw, self.gw = self.gw, None
        gw.loop.stop()
        self._thread.join(10)
        gw.stop()

    def start_process(self):
        cfg_path = os.path.join(self.tmp, "config.json")
        _write(cfg_path, json.dumps(self.config()))
        self.proc = subprocess.Popen([self.exe, "-m", "gateway", "run", "--config", cfg_path],
                                     cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        if self._poller is None:
            # The subprocess's records as the center gets them: the tap, noted on arrival.
            self._poller = threading.Thread(target=self._poll_center, daemon=True)
            self._poller.start()

    def _poll_center(self):
        seen = 0
        while not self._stopping:
            time.sleep(0.2)
            if self.center._thread is None:
                continue  # stopped; start_center() makes another
            try:
                recs = self.center.records(self.device_id)
            except Exception:  # the center is being stopped or started again
                continue
            now = time.monotonic()
            for r in recs[seen:]:
                fields = {k: v for k, v in r.items() if k not in ("seq", "t", "type")}
                self.tap.append((now, r["seq"], r["type"], fields))
            seen = len(recs)

    def stop_process(self):
        """Ctrl-C: the gateway stops as a technician stops it (checkpoint, close)."""
        p, self.proc = self.proc, None
        p.send_signal(signal.SIGINT)
        try:
            out, _ = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        self.outputs.append(out)
        return out

    def stop(self):
        if self._stopping:
            return
        self._stopping = True
        try:
            if self.gw is not None:
                self.stop_gateway()
            if self.proc is not None:
                self.stop_process()
        finally:
            self.site.stop()
            if self.term is not None:
                self.term.close()

    # --- the gateway (in-process)

    def call(self, fn, timeout_s=10):
        """fn(gateway) run on the gateway's loop thread; its value."""
        return self._inbox.call(fn, timeout_s)

    def login(self):
        t = self.term
        t.line("login %s" % TECH)
        t.expect("PIN: ")
        t.line(PIN)
        t.expect(r"logged in as %s \(Zhang\)\r\ngw:%s> $" % (TECH, TECH), 20)

    # --- what happened

    def tapped(self, rtype=None, code=None, state=None, since=None):
        """Records the gateway wrote (a subprocess's: as they reach the center):
        [(monotonic, seq, fields)]."""
        out = []
        for mono, seq, rt, f in list(self.tap):
            if rtype is not None and rt != rtype:
                continue
            if code is not None and f.get("code") != code:
                continue
            if state is not None and f.get("state") != state:
                continue
            if since is not None and mono < since:
                continue
            out.append((mono, seq, f))
        return out

    def wait_alarm(self, code, state, since, timeout_s):
        """When the gateway wrote the first `alarm` record of code/state after `since`."""
        got = wait_until(lambda: self.tapped("alarm", code, state, since), timeout_s,
                         "%s: alarm %s %s" % (self.name, code, state))
        return got[0][0]

    def records(self, rtype=None, code=None):
        """The records the center stores for this device."""
        out = []
        for r in self.center.records(self.device_id):
            if rtype is not None and r.get("type") != rtype:
                continue
            if code is not None and r.get("code") != code:
                continue
            out.append(r)
        return out

    def wait_uploaded(self, timeout_s=20):
        """Until the center holds every record written so far (a subprocess: until
        nothing more arrives for 2 s)."""
        if self.gw is None:
            last = [None, time.monotonic()]

            def quiet():
                n = self.center.summary(self.device_id)["next"]
                if n != last[0]:
                    last[:] = [n, time.monotonic()]
                return time.monotonic() - last[1] > 2

            wait_until(quiet, timeout_s, "%s: uploads settle" % self.name, 0.2)
            return

        def done():
            head = self.call(lambda gw: gw.log.head)
            st = self.center.summary(self.device_id)
            return st is not None and st["next"] > head

        try:
            wait_until(done, timeout_s, "%s: every record at the center" % self.name)
        except Timeout as e:
            def state(gw):
                return {"head": gw.log.head, "durable": gw.log.durable,
                        "uplink": gw.uplink.stats(), "last_error": gw.uplink.last_error}
            raise Timeout("%s; gateway %s; center %s" % (
                e, self.call(state), self.center.summary(self.device_id)))

    def active(self):
        """Codes of the active alarms (a subprocess's: from its records)."""
        if self.gw is not None:
            return self.call(lambda gw: [a["code"] for a in gw.alarms.active()])
        on = set()
        for _, _, f in self.tapped("alarm"):
            if f["state"] == "raise":
                on.add(f["code"])
            else:
                on.discard(f["code"])
        return sorted(on)

    def link_up(self):
        if self.gw is not None:
            return self.call(lambda gw: gw.collector.link.state != "lost")
        return "collector_link_lost" not in self.active()

    def do1(self):
        return self.emu.coils[0]

    def do1_state(self):
        """(DO1 as the active alarms ask for it, the link up) in one look."""
        if self.gw is None:
            return self.do1_expected(), self.link_up()

        def look(gw):
            classes = gw.params["alarms.do1_classes"]
            on = any(spec(a["code"])[0] in classes for a in gw.alarms.active())
            return on, gw.collector.link.state != "lost"

        return self.call(look)

    def do1_expected(self):
        """DO1 as docs/alarms.md says: on while any active alarm's class drives it."""
        if self.gw is not None:
            classes = self.call(lambda gw: gw.params["alarms.do1_classes"])
        else:
            classes = self.params.get("alarms.do1_classes", DO1_CLASSES)
        return any(spec(code)[0] in classes for code in self.active())

    def wait_do1(self, on, timeout_s=3):
        wait_until(lambda: self.do1() == on, timeout_s,
                   "%s: DO1 %s" % (self.name, "on" if on else "off"))
        return on


class Do1Watch:
    """Samples DO1 (coil 0) against what the active alarms ask for, every 200 ms, on a
    thread. violations() lists the times DO1 disagreed for longer than settle_s with the
    link up: it cannot be written while the link is lost, and a collector restart turns
    it off until the gateway drives it again."""

    def __init__(self, rig, settle_s=2.0):
        self.rig = rig
        self.settle_s = settle_s
        self.samples = []  # (monotonic, coil, expected, link_up)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        rig = self.rig
        while not self._stop.wait(0.2):
            if rig.gw is None and rig.proc is None:
                continue
            try:
                exp, up = rig.do1_state()
            except Timeout:
                continue
            self.samples.append((time.monotonic(), rig.do1(), exp, up))

    def stop(self):
        self._stop.set()
        self._thread.join(5)

    def violations(self):
        """[(seconds from the first sample, coil, expected)] where a disagreement began
        that lasted more than settle_s."""
        bad = []
        began = None
        t0 = self.samples[0][0] if self.samples else 0
        for t, coil, exp, up in self.samples:
            if not up or coil == exp:
                began = None
                continue
            if began is None:
                began = t
            elif t - began > self.settle_s and (not bad or bad[-1][0] != round(began - t0, 1)):
                bad.append((round(began - t0, 1), coil, exp))
        return bad


# --- the campaign: many rigs, each playing its script, all at once


class Run:
    """One rig's scenarios, one after another, and what each showed."""

    def __init__(self, rig):
        self.rig = rig
        self.rows = {}  # row id -> facts
        self.once_rows = []  # one-shot rows waiting for their hold to pass
        self.error = None
        self.facts = {}  # what a script noted for its tests
        self.ended = 0.0
        self.stored = []
        self.summary = None

    def _row(self, rid, code, cause, kind):
        row = {"code": code, "cause": cause, "kind": kind}
        self.rows["%s/%s" % (self.rig.name, rid)] = row
        return row

    def _do1_settled(self):
        """DO1 once it has had time to follow the active alarms."""
        rig = self.rig
        want = rig.do1_expected()
        try:
            rig.wait_do1(want, 3)
        except Timeout:
            pass  # recorded as it is; the row's test says what was expected
        return rig.do1()

    def _raise(self, rid, code, cause, kind, do, raise_s, since):
        """A new row; do() its cause (made at since, if given) and wait for the raise.
        Returns (row, the cause's time, the raise's time)."""
        row = self._row(rid, code, cause, kind)
        t0 = time.monotonic() if since is None else since
        do(self.rig)
        tr = self.rig.wait_alarm(code, "raise", t0, raise_s + _SLACK_S)
        row["raised_after"] = tr - t0
        return row, t0, tr

    def cond(self, rid, code, cause, do, undo, raise_s, clear_s, lost=False, since=None):
        """A condition alarm: do() raises it within raise_s, undo() clears it within
        clear_s. lost: the cause cuts the link, so DO1 can be driven only once it is back.
        since: the cause was made earlier, at this time.monotonic()."""
        rig = self.rig
        row, t0, tr = self._raise(rid, code, cause, "cond", do, raise_s, since)
        if not lost:
            row["do1_raised"] = self._do1_settled()
        t1 = time.monotonic()
        undo(rig)
        if lost:
            # The link is back: DO1 now shows the fault until the alarm clears.
            if rig.gw is not None:
                wait_until(rig.link_up, 10, "%s: link back" % rig.name)
            else:
                time.sleep(3)  # the driver's back-off is 2 s at most
            row["do1_raised"] = self._do1_settled()
        tc = rig.wait_alarm(code, "clear", t1, clear_s + _SLACK_S)
        row["cleared_after"] = tc - t1
        row["do1_cleared"] = self._do1_settled()
        row["raises"] = [s for _, s, _ in rig.tapped("alarm", code, "raise", t0)]
        row["clears"] = [s for _, s, _ in rig.tapped("alarm", code, "clear", t0)]
        return row

    def once(self, rid, code, cause, do, raise_s, since=None):
        """A one-shot alarm: do() raises it within raise_s; it clears when its hold ends."""
        rig = self.rig
        row, t0, tr = self._raise(rid, code, cause, "once", do, raise_s, since)
        row["raised_at"] = tr
        row["do1_raised"] = self._do1_settled()
        row["raises"] = [s for _, s, _ in rig.tapped("alarm", code, "raise", t0)][:1]
        self.once_rows.append(row)
        return row

    def age_holds(self):
        """As if 10 minutes had passed: every active one-shot's hold ends (the engine's
        next run writes their clear records). In-process only."""
        rig = self.rig
        if rig.gw is None:
            return
        waiting = [row for row in self.once_rows if "cleared_after" not in row]
        t0 = time.monotonic()
        rig.call(_age_holds)
        for row in waiting:
            tc = rig.wait_alarm(row["code"], "clear", t0, 3)
            row["cleared_after"] = "hold"
            row["do1_cleared"] = self._do1_settled()
            row["raises"] = [s for m, s, _ in rig.tapped("alarm", row["code"], "raise")
                             if row["raised_at"] - 0.01 <= m <= tc]
            row["clears"] = [s for m, s, _ in rig.tapped("alarm", row["code"], "clear")
                             if row["raised_at"] <= m <= tc + 0.01]

    def blip(self, rid, code, cause, do, watch_s):
        """A cause shorter than the code's raise delay: no alarm."""
        rig = self.rig
        row = self._row(rid, code, cause, "blip")
        t0 = time.monotonic()
        do(rig)
        time.sleep(watch_s)
        row["raises"] = [s for _, s, _ in rig.tapped("alarm", code, "raise", t0)]


def _age_holds(gw):
    # A state is a list indexed by gateway/health/alarms.py's consts (plain names on CPython).
    for code, st in gw.alarms._states.items():
        _, _, kind, _, hold_ms, _ = spec(code)
        if kind == EVENT and st[alarms._ACTIVE]:
            st[alarms._HOLD_TICKS] = gw.clock.ticks_add(st[alarms._HOLD_TICKS], -hold_ms)


_LOOP = ("loop_overrun",)  # see tests/test_e2e_alarms.py
# A script's raise_s and clear_s are what an unloaded machine shows; a row counts as
# missed only after this much more (a loaded CI machine slows the rigs' threads). The
# lower bounds, not before the documented delays, are asserted exactly by the tests.
_SLACK_S = 10


def campaign(rigs, tmp):
    """Start a rig for each of rigs {name: (script, Rig keyword arguments; "exe": the
    gateway as a subprocess)}, play every script(Run) at once, then gather what the
    center stored. A generator for a pytest fixture: yields {name: Run}, then stops all."""
    runs = {}
    watches = {}
    try:
        for i, (name, (script, kw)) in enumerate(rigs.items()):
            kw = dict(kw)
            exe = kw.pop("exe", None)
            run = runs[name] = Run(Rig(tmp, device_id=5000 + i, name=name, seed=10 + i, **kw))
            run.script = script
            run.exe = exe

        def start(run):
            try:
                run.rig.start(run.exe)
            except Exception:
                run.error = "the rig did not start:\n" + traceback.format_exc()

        # The gateways here share one interpreter, and each one's gc.collect() (at its
        # start and stop) would scan every rig's emulators too: a board's scans its own
        # heap. Frozen, what exists now is left out of the collections (GIL-held pauses
        # that stalled every gateway at once).
        gc.collect()
        gc.freeze()
        _each(runs.values(), start, 60)
        time.sleep(4)  # the first samples and identity read
        for name, run in runs.items():
            run.baseline = [f["code"] for _, _, f in run.rig.tapped("alarm")
                            if f["code"] not in _LOOP]
            watches[name] = Do1Watch(run.rig).start()

        def play(run):
            # The script, then what the center got; then the rig stops, so that the
            # scripts still playing have the machine to themselves.
            try:
                if run.error is None:
                    run.script(run)
                    run.age_holds()
            except Exception:
                run.error = traceback.format_exc()
            run.ended = time.monotonic()
            watch = watches[run.rig.name]
            watch.stop()
            run.do1_violations = watch.violations()
            try:
                run.rig.wait_uploaded(30)
                run.stored = run.rig.records()
                run.summary = run.rig.center.summary(run.rig.device_id)
            except Exception:
                run.error = (run.error or "") + traceback.format_exc()
            run.rig.stop()

        t0 = time.monotonic()
        _each(runs.values(), play, 360)
        elapsed = max(run.ended for run in runs.values()) - t0 if runs else 0
        yield runs
        _print_table(runs, elapsed, t0)
    finally:
        _each(runs.values(), lambda run: run.rig.stop(), 60)
        gc.unfreeze()
        for run in runs.values():
            for out in run.rig.outputs:
                if "Traceback" in out:
                    print("%s: gateway output:\n%s" % (run.rig.name, out[-3000:]))


def _each(items, fn, timeout_s):
    """fn(item) for every item at once, each on a thread of its own."""
    threads = [threading.Thread(target=fn, args=(item,), daemon=True) for item in items]
    for t in threads:
        t.start()
    end = time.monotonic() + timeout_s
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))


def _print_table(runs, elapsed, t0):
    """The rows of every run: what the report's scenario table is made from."""
    print("\nend-to-end scenarios (%.0f s for all rigs in parallel; each rig's script: %s)"
          % (elapsed, ", ".join("%s %.0f s" % (name, run.ended - t0)
                                for name, run in runs.items())))
    print("%-24s %-24s %-52s %7s %7s %s" % ("row", "code", "cause", "raised", "cleared",
                                          "DO1 raised/cleared"))
    for run in runs.values():
        for rid, row in run.rows.items():
            print("%-24s %-24s %-52s %7s %7s %s/%s" % (
                rid, row["code"], row["cause"][:52], _secs(row.get("raised_after")),
                _secs(row.get("cleared_after")), _onoff(row.get("do1_raised")),
                _onoff(row.get("do1_cleared"))))
    for name, run in runs.items():
        print("%s: other alarms %s" % (name, others(run)))


def _secs(v):
    return "%.1f s" % v if isinstance(v, float) else (v or "-")


def _onoff(v):
    return "-" if v is None else ("on" if v else "off")


def others(run, allowed=()):
    """Alarm records of codes no scenario of this rig is about: (code, state, detail)."""
    mine = set(row["code"] for row in run.rows.values())
    return [(f["code"], f["state"], f["detail"]) for _, _, f in run.rig.tapped("alarm")
            if f["code"] not in mine and f["code"] not in allowed]


