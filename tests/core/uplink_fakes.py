# Test doubles with the real APIs the uplink and commands use: the record log
# (head, oldest, read, set_acked), the state slots (load, save), the app's command
# handlers, and a connection whose other end (the center) is the test. Usable on both
# interpreters.
import json
from binascii import hexlify, unhexlify

from gateway import config
from gateway.center.commands import Busy, CommandError
from hal.net import NetError
from protocols import center_link as cl

KEY = bytes(range(32))
DEV = 11


class Pipe:
    """A connection whose other end is the test."""

    def __init__(self):
        self.to_center = []  # chunks, as the gateway sent them
        self.to_gw = b""
        self.connected = True
        self.room = None  # bytes the "kernel" takes per send (None: all)
        self.peer_closed = False
        self.closed = False

    def ready(self):
        return self.connected

    def send(self, data):
        n = len(data) if self.room is None else min(self.room, len(data))
        if n:
            self.to_center.append(bytes(data[:n]))
        return n

    def recv_into(self, buf):
        if not self.to_gw:
            if self.peer_closed:
                raise NetError("closed by peer")
            return 0
        n = min(len(buf), len(self.to_gw))
        buf[:n] = self.to_gw[:n]
        self.to_gw = self.to_gw[n:]
        return n

    def close(self):
        self.closed = True


class Peer:
    """The center's end, scripted by the test."""

    def __init__(self, pipe, key=KEY, device_id=None):
        self.pipe = pipe
        self.session = cl.Session(cl.Keys(key), DEV if device_id is None else device_id,
                                  cl.CENTER)
        self.reader = cl.FrameReader()

    def frames(self):
        chunks, self.pipe.to_center = self.pipe.to_center, []
        out = []
        frames = []
        for data in chunks:
            frames += self.reader.feed(data)
        for f in frames:
            msg = self.session.open(f)
            if f.type == cl.HELLO:
                self.session.nonce_g = unhexlify(msg["nonce"])
            out.append((f.type, msg))
        return out

    def send(self, ftype, obj):
        self.pipe.to_gw += self.session.seal(ftype, obj)

    def welcome(self, nxt):
        nonce_c = bytes([0x3C]) * 16
        self.send(cl.WELCOME, {"nonce": hexlify(nonce_c).decode(), "next": nxt,
                               "time": 1767225600})
        self.session.nonce_c = nonce_c


# What hal.net says when a connect fails, by kind.
_NET_ERRORS = {
    "dns": "resolve center.invalid: -2",
    "refused": "connect 10.0.0.9:7700: ECONNREFUSED (errno 111)",
    "unreachable": "connect 10.0.0.9:7700: EHOSTUNREACH (errno 113)",
}


class Connector:
    def __init__(self, clock):
        self.clock = clock
        self.pipes = []
        self.fail = False  # True, or "dns", "refused", "unreachable": how hal.net fails
        self.at = []

    def __call__(self):
        self.at.append(self.clock.ticks_ms())
        if self.fail:
            raise NetError(_NET_ERRORS.get(self.fail, _NET_ERRORS["unreachable"]))
        p = Pipe()
        self.pipes.append(p)
        return p




class MemLog:
    """The record log's API (gateway/store/recordlog.py) over a list. `retain` caps how many
    records are kept: the oldest go first, acknowledged or not (what a full flash budget
    does). damage(seq) makes read() skip a record, as the log skips one damaged on flash.
    set_acked beyond the head moves the head on, as the log does (no seq is reused)."""

    def __init__(self, retain=None):
        self._recs = []  # ascending seq (with a jump where set_acked moved the head)
        self._next = 1
        self.acked = 0
        self.acked_calls = 0
        self.retain = retain
        self.damaged = []

    @property
    def head(self):
        return self._next - 1

    @property
    def oldest(self):
        return self._recs[0]["seq"] if self._recs else self._next

    def append(self, rtype, t, fields=None):
        rec = {"seq": self._next, "t": t, "type": rtype}
        if fields:
            rec.update(fields)
        self._recs.append(rec)
        self._next += 1
        if self.retain is not None and len(self._recs) > self.retain:
            self.reclaim(len(self._recs) - self.retain)
        return rec["seq"]

    def emit(self, rtype, fields):
        return self.append(rtype, 0, fields)

    def reclaim(self, n):
        self._recs = self._recs[n:]

    def damage(self, seq):
        self.damaged.append(seq)

    def _index(self, seq):
        lo, hi = 0, len(self._recs)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._recs[mid]["seq"] < seq:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def read(self, from_seq, max_n=256):
        out = []
        for r in self._recs[self._index(from_seq) :]:
            if len(out) >= max_n:
                break
            if r["seq"] not in self.damaged:
                out.append(dict(r))
        return out

    def set_acked(self, next_seq):
        self.acked_calls += 1
        if next_seq > self.acked:
            self.acked = next_seq
        if next_seq > self._next:
            self._next = next_seq


def fill_prod(log, n, t0=1767225600, interval_s=60):
    """n production records at the given interval, with a growing totalizer."""
    total = 0
    for i in range(n):
        mass = 1000 + (i % 7) * 10
        total += mass
        t = t0 + i * interval_s
        log.append("prod", t, {"t0": t - interval_s, "t1": t, "mass_kg": mass,
                               "total_kg": total, "rate_tph": mass * 3600 / interval_s / 1000,
                               "speed_mps": 2.5, "run_s": interval_s})
    return total


class MemSlots:
    """Slots(flash, name) double: what load() returns is a copy of what was saved."""

    def __init__(self):
        self.text = None
        self.saves = 0

    def load(self):
        return None if self.text is None else json.loads(self.text)

    def save(self, obj):
        self.text = json.dumps(obj)
        self.saves += 1


class FakeApp:
    """The app's side of the commands, with the semantics the spec asks for:
    set_params validated as a whole, persisted before RESULT, logged as an event;
    time_sync steps the clock and logs it; set_output needs the collector online."""

    def __init__(self, clock, emit=None):
        self.clock = clock
        self.params = {"scale.material_factor": 1.0, "production.interval_s": 60}
        self.persisted = dict(self.params)
        self.events = []
        self.outputs = {1: False, 2: False}
        self.collector_online = True
        self.calls = []
        self._emit = emit

    def _event(self, code, detail):
        self.events.append((code, detail))
        if self._emit is not None:
            self._emit("event", {"code": code, "detail": detail})

    def status(self, args):
        self.calls.append("status")
        return {"rate_tph": 812.5, "running": True, "outputs": dict(
            ("do%d" % k, v) for k, v in self.outputs.items())}

    def get_params(self, args):
        self.calls.append("get_params")
        return {"params": dict(self.params)}

    def set_params(self, args):
        self.calls.append("set_params")
        try:
            changes = config.check_params(args.get("params"))
        except config.ConfigError as e:
            raise CommandError(str(e))
        old = dict((k, self.params.get(k)) for k in changes)
        self.params.update(changes)
        self.persisted = dict(self.params)  # persisted before the RESULT goes out
        self._event("params_changed", {"by": "center", "old": old, "new": changes})
        return {"changed": sorted(changes)}

    def time_sync(self, args):
        self.calls.append("time_sync")
        t = args.get("time")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t < 1e9:
            raise CommandError("time must be unix seconds")
        step = self.clock.set_time(t)
        self._event("time_set", {"by": "center", "step_s": step})
        return {"step_s": step}

    def set_output(self, args):
        do, on = args.get("do"), args.get("on")
        if do not in (1, 2) or not isinstance(on, bool):
            raise CommandError("set_output needs do 1|2 and on true|false")
        if not self.collector_online:
            raise Busy("collector offline")
        self.calls.append("set_output")
        self.outputs[do] = on
        return {"do": do, "on": on}

    def handlers(self):
        return {"status": self.status, "get_params": self.get_params,
                "set_params": self.set_params, "time_sync": self.time_sync,
                "set_output": self.set_output}
