# A whole gateway (gateway.app.Gateway) on a virtual clock, its collector a register
# slave on a fake RS485 line and its center the test, over in-memory connections: the
# rig for the attacks of tests/core/test_security.py, on both interpreters. Whatever the
# center does, check() asks what must hold: the collector kept being polled at 10 Hz,
# nothing was applied (parameters, outputs, clock) and no record was lost or duplicated
# (an honest center then receives every record once, in order).
from gateway import config
from gateway.app import Gateway
from hal.board import Hardware
from hal.fs import Flash
from hal.virtualclock import VirtualClock
from protocols import center_link as cl
from tests.core.fakeline import FakeLine, RegisterSlave
from tests.core.uplink_fakes import KEY, Connector, Peer
from tests.core.util import rmtree, tmpdir

DEV = 31
_STEP_MS = 10
_CHANGES = ("param_changed", "output_set", "time_set", "alarm_ack")


class HostileRig:
    def __init__(self, data_dir=None):
        self.clock = VirtualClock()
        self.dir = data_dir or tmpdir("hostile")
        self.slave = RegisterSlave(clock=self.clock)
        self.line = FakeLine(self.clock, self.slave)
        self.conn = Connector(self.clock)
        self.cfg = config.validate({
            "device_id": DEV, "key_file": "-", "data_dir": self.dir,
            "collector": {"port": "-"},
            "center": {"host": "127.0.0.1", "port": 1, "backoff_max_s": 2},
            "production": {"interval_s": 60},
        })
        self.gw = None
        self.peer = None
        self._pipes_seen = 0  # connections a peer has been attached to
        self._polls_base = 0  # polls of gateways before the last cut
        self.received = []  # every record an honest peer received, in order
        self.start()

    def start(self):
        self.gw = Gateway(self.cfg, KEY, Hardware(self.clock, Flash(self.dir), self.line,
                                                  self.conn))
        self.gw.start()
        self.params0 = dict(self.gw.params)
        self.do2 = self.slave.coils[1]  # DO2: only a command drives it (DO1 is the alarms')

    def cut(self):
        """A power cut: nothing is closed or saved; a new gateway starts on the same flash."""
        self.gw.log.close()  # the file handle only: what was written is what is there
        self._polls_base += self.gw.collector.polls
        self._pipes_seen = len(self.conn.pipes)  # the dead gateway's connections
        self.start()

    def close(self):
        self.gw.uplink.stop()
        self.gw.log.close()
        rmtree(self.dir)

    def polls(self):
        return self._polls_base + self.gw.collector.polls

    def run_s(self, seconds, until=None):
        """Run the loop for a virtual time (or until until() is true); returns whether
        until() became true."""
        clock = self.clock
        end = clock.ticks_add(clock.ticks_ms(), int(seconds * 1000))
        loop = self.gw.loop
        while clock.ticks_diff(end, clock.ticks_ms()) > 0:
            loop.step()
            clock.advance_ms(_STEP_MS)
            if until is not None and until():
                return True
        return False

    def pipe(self):
        return self.conn.pipes[-1] if self.conn.pipes else None

    def hello(self, timeout_s=10):
        """Wait for the HELLO of the next connection no peer was attached to yet;
        (peer, hello) with a peer on it."""
        got = []

        def arrived():
            if len(self.conn.pipes) <= self._pipes_seen:
                return False
            if self.peer is None or self.peer.pipe is not self.conn.pipes[-1]:
                self.peer = Peer(self.conn.pipes[-1], KEY, DEV)
            got.extend(self.peer.frames())
            return bool(got)

        if not (arrived() or self.run_s(timeout_s, arrived)):
            raise AssertionError("no HELLO in %d s" % timeout_s)
        assert got[0][0] == cl.HELLO, got
        self._pipes_seen = len(self.conn.pipes)
        return self.peer, got[0][1]

    def online(self, nxt=None):
        """HELLO, then an honest WELCOME (next = the peer's count so far + 1)."""
        peer, hello = self.hello()
        peer.welcome(nxt if nxt is not None else len(self.received) + 1)
        self.run_s(0.1)
        assert self.gw.uplink.state == "online", self.gw.uplink.last_error
        return peer, hello

    def honest(self, peer, frames):
        """What an honest center does with frames: keep records in order, ACK them,
        PONG a PING. Returns the other frames."""
        other = []
        for t, msg in frames:
            if t == cl.RECORDS:
                for r in msg["records"]:
                    if r["seq"] == len(self.received) + 1:
                        self.received.append(r)
                peer.send(cl.ACK, {"next": len(self.received) + 1})
            elif t == cl.PING:
                peer.send(cl.PONG, {})
            elif t != cl.PONG:
                other.append((t, msg))
        return other

    def upload_all(self, seconds=30):
        """As an honest center: online, take every record up to the head. Returns the
        frames other than RECORDS/PING/PONG that came meanwhile."""
        if self.gw.uplink.state != "online":
            self.online()
        other = []

        def done():
            other.extend(self.honest(self.peer, self.peer.frames()))
            return len(self.received) >= self.gw.log.head

        if not self.run_s(seconds, done):
            raise AssertionError("upload incomplete: %d of %d (%s)" % (
                len(self.received), self.gw.log.head, self.gw.uplink.last_error))
        return other

    def mark(self):
        """Where an attack begins, for check()."""
        return self.polls(), self.clock.ticks_ms(), self.gw.log.head

    def check(self, mark):
        """What must hold after an attack that began at mark: polling went on at 10 Hz,
        nothing was applied, and every record reaches an honest center once."""
        polls, t0, head = mark
        seconds = self.clock.ticks_diff(self.clock.ticks_ms(), t0) / 1000
        polled = self.polls() - polls
        assert polled >= 9 * seconds - 2, "%d polls in %.1f s" % (polled, seconds)
        failed = [n for n, s in self.gw.loop.stats().items() if s["errors"]]
        assert failed == [], failed
        assert self.gw.params == self.params0
        assert self.slave.coils[1] == self.do2
        self.upload_all()
        seqs = [r["seq"] for r in self.received]
        assert seqs == list(range(1, self.gw.log.head + 1))
        changed = [r for r in self.received[head:]
                   if r["type"] == "event" and r["code"] in _CHANGES]
        assert changed == [], changed
