# The uplink, the commands and the center emulator, against each other over loopback TCP.
import json
import os
import random
import socket
import subprocess
import sys
import time

import pytest

from emulator.center import Center
from gateway.center.commands import Commands
from gateway.center.uplink import Uplink
from gateway.loop import Loop
from gateway.store.recordlog import RecordLog
from hal.clock import Clock
from hal.net import NetError, TcpConnector
from hal.virtualclock import VirtualClock
from protocols import center_link as cl
from tests.core.faultfs import FaultFlash
from tests.core.uplink_fakes import FakeApp, MemLog, MemSlots, fill_prod

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = bytes(range(32))
DEV = 7


@pytest.fixture
def center(tmp_path):
    c = Center(str(tmp_path / "center.db"), {DEV: KEY, DEV + 1: KEY}).start_thread()
    yield c
    c.stop()


def _uplink(center, log, clock, key=KEY, commands=None, connect=None, **kw):
    up = Uplink(connect or TcpConnector("127.0.0.1", center.port), DEV, key, log, commands,
                clock, fw="test-1", **kw)
    up.start()
    return up


def _drive(up, clock, until, timeout_s=20, virt_ms=10, jobs=()):
    """Run the uplink (and jobs) in real time, advancing a VirtualClock by virt_ms per step,
    until until() holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if isinstance(clock, VirtualClock):
            clock.advance_ms(virt_ms)
        now = clock.ticks_ms()
        up.run(now)
        for j in jobs:
            j.run(now)
        if until():
            return
        time.sleep(0.002)
    raise AssertionError("timed out; uplink %r" % (up.stats(),))


def _assert_exactly_once(center, log, first=1):
    recs = center.records(DEV)
    want = log.read(first, log.head)
    assert [r["seq"] for r in recs] == list(range(first, log.head + 1))  # in order, once
    assert recs == want  # unaltered
    s = center.summary(DEV)
    assert s["next"] == log.head + 1 and s["duplicates"] == 0


def test_upload_and_breakpoint(center):
    log = MemLog()
    total = fill_prod(log, 1000)
    clock = VirtualClock()
    bps = []
    up = _uplink(center, log, clock, on_breakpoint=bps.append)
    assert up.stats()["backlog"] == 1000
    _drive(up, clock, lambda: up.breakpoint == 1001)
    _assert_exactly_once(center, log)
    assert log.acked == 1001 and bps[-1] == 1001 and bps == sorted(bps)
    s = center.summary(DEV)
    assert s["prod_mass_kg"] == total and s["total_kg"] == total and s["fw"] == "test-1"
    st = up.stats()
    assert st["connected"] and st["sent"] == 1000 and st["backlog"] == 0
    # Records written later go up on the same connection.
    fill_prod(log, 10, t0=1767300000)
    _drive(up, clock, lambda: up.breakpoint == 1011)
    _assert_exactly_once(center, log)
    assert up.snapshot()["acked"] == 1011


def test_restart_resumes_from_welcome_not_from_scratch(center):
    log = MemLog()
    fill_prod(log, 300)
    clock = VirtualClock()
    up = _uplink(center, log, clock)
    _drive(up, clock, lambda: up.breakpoint == 301)
    snap = up.snapshot()
    up.stop()
    fill_prod(log, 50, t0=1767300000)
    log2 = log  # the same flash after a restart
    up2 = Uplink(TcpConnector("127.0.0.1", center.port), DEV, KEY, log2, None, clock)
    up2.restore(snap)
    assert up2.breakpoint == 301
    up2.start()
    _drive(up2, clock, lambda: up2.breakpoint == 351)
    assert up2.sent == 50
    _assert_exactly_once(center, log)


def test_reset_by_the_center_mid_upload(center):
    log = MemLog()
    fill_prod(log, 3000)
    clock = VirtualClock()
    up = _uplink(center, log, clock)
    _drive(up, clock, lambda: up.breakpoint > 1)
    center.disconnect(DEV)
    _drive(up, clock, lambda: up.breakpoint == 3001, virt_ms=100)
    # The center's close reaches us as an orderly close or as a reset (data was in flight).
    assert up.reconnects == 1
    assert "closed by peer" in up.last_error or "ECONNRESET" in up.last_error, up.last_error
    assert abs(up.stats()["center_offset_s"] - (time.time() - clock.time())) < 5
    _assert_exactly_once(center, log)


class _Switch:
    """A connector the test can cut off (the network is down) and count."""

    def __init__(self, inner, clock):
        self.inner = inner
        self.clock = clock
        self.up = True
        self.attempts = []

    def __call__(self):
        self.attempts.append(self.clock.ticks_ms())
        if not self.up:
            raise NetError("connect: network unreachable")
        return self.inner()


def _record_log(**kw):
    """The real record log (gateway/store/recordlog.py) on an in-memory flash."""
    log = RecordLog(FaultFlash(), **kw)
    log.open()
    return log


def test_30_day_outage_then_every_record_once_in_order(center):
    clock = VirtualClock()
    log = _record_log()
    switch = _Switch(TcpConnector("127.0.0.1", center.port), clock)
    alarms = []
    up = _uplink(center, log, clock, connect=switch, alarm=lambda *a: alarms.append(a))
    switch.up = False
    t0 = int(clock.time())
    days = 30
    # One production record per minute; the uplink runs every 5 s of simulated time.
    for minute in range(days * 24 * 60):
        for _ in range(12):
            clock.advance_ms(5000)
            up.run(clock.ticks_ms())
        t = t0 + (minute + 1) * 60
        log.append("prod", t, {"t0": t - 60, "t1": t, "mass_kg": 1000.5, "total_kg": minute,
                               "rate_tph": 60.03, "speed_mps": 2.5, "run_s": 60})
    assert up.state == "backoff" and up.stats()["backlog"] == days * 1440
    gaps = [b - a for a, b in zip(switch.attempts, switch.attempts[1:])]
    assert max(gaps) <= 60000 + 5000  # never more than the ceiling (plus one run)
    assert min(gaps[-100:]) >= 30000  # jitter keeps it within half the ceiling
    assert len(set(gaps[-100:])) > 5  # and it is jitter, not a fixed period
    assert up.reconnects == len(switch.attempts)
    switch.up = True
    started = time.monotonic()
    _drive(up, clock, lambda: up.breakpoint == log.head + 1, timeout_s=60, virt_ms=50)
    drain_s = time.monotonic() - started
    _assert_exactly_once(center, log)
    assert center.summary(DEV)["gaps"] == [] and [a for a in alarms if a[1]] == []
    assert drain_s < 60


def test_record_log_damage_and_retention_reach_the_center_as_such(center):
    alarms = []
    flash = FaultFlash()
    log = RecordLog(flash, budget_bytes=3 * 4096, segment_bytes=4096,
                    alarm=lambda *a: alarms.append(a))
    log.open()
    total = fill_prod(log, 1200)
    assert log.oldest > 1 and alarms[0][0] == "retention_overrun"  # never uploaded
    first = log.oldest
    seg = sorted(n for n in flash.listdir() if n.endswith(".seg"))[0]
    flash.flip(seg, 28 + 10, 3)  # inside the oldest segment's first record
    clock = VirtualClock()
    up_alarms = []
    up = _uplink(center, log, clock,
                 alarm=lambda *a: up_alarms.append(a) if a[0] == "upload_gap" else None)
    _drive(up, clock, lambda: up.breakpoint == 1201)
    recs = center.records(DEV)
    assert [r["seq"] for r in recs] == list(range(first, 1201))
    assert recs[0]["code"] == "record_unreadable" and recs[0]["type"] == "event"
    assert recs[1:] == log.read(first + 1, 2000)
    assert center.summary(DEV)["gaps"] == [[1, first - 1]]
    assert up_alarms[0][:2] == ("upload_gap", True) and up_alarms[-1][:2] == ("upload_gap", False)
    assert any(a[0] == "storage_corrupt" for a in alarms)
    assert total > center.summary(DEV)["prod_mass_kg"] > 0


class _CutAfter:
    """Connections whose socket is cut after `limit` bytes were sent (the first one only)."""

    def __init__(self, inner, limit):
        self.inner = inner
        self.limit = limit
        self.cut = False

    def __call__(self):
        conn = self.inner()
        if self.cut:
            return conn
        outer = self

        class Conn:
            sent = 0

            def ready(self):
                return conn.ready()

            def send(self, data):
                room = outer.limit - self.sent
                n = conn.send(data[:room])
                self.sent += n
                if self.sent >= outer.limit:
                    outer.cut = True
                    conn.close()
                    raise NetError("cable cut")
                return n

            def recv_into(self, buf):
                return conn.recv_into(buf)

            def close(self):
                conn.close()

        return Conn()


def test_connection_cut_mid_frame(center):
    log = MemLog()
    fill_prod(log, 600)
    clock = VirtualClock()
    cutter = _CutAfter(TcpConnector("127.0.0.1", center.port), 20000)  # inside RECORDS #1
    up = _uplink(center, log, clock, connect=cutter)
    _drive(up, clock, lambda: up.breakpoint == 601, virt_ms=100)
    assert cutter.cut and up.reconnects == 1 and up.last_error == "cable cut"
    assert any("mid-frame" in text for _, _, text in center.events)
    _assert_exactly_once(center, log)


def test_ack_lost_by_reset_after_commit(center):
    log = MemLog()
    fill_prod(log, 100)
    clock = VirtualClock()
    center.fault("close_after_commit")
    up = _uplink(center, log, clock)
    _drive(up, clock, lambda: up.breakpoint == 101, virt_ms=100)
    assert up.reconnects == 1
    _assert_exactly_once(center, log)


def test_ack_withheld_gateway_gives_up_and_reconnects(center):
    log = MemLog()
    fill_prod(log, 100)
    clock = VirtualClock()
    center.fault("drop_ack")
    up = _uplink(center, log, clock, ping_s=1, silence_s=5)  # PONGs keep the link alive
    _drive(up, clock, lambda: up.breakpoint == 101, virt_ms=100)
    assert up.reconnects == 1 and "no ACK" in up.last_error
    assert up.sent == 100  # WELCOME said the center had them: nothing sent twice
    _assert_exactly_once(center, log)


def test_center_restart_loses_uncommitted_batch_gateway_resends(center):
    log = MemLog()
    fill_prod(log, 700)  # three frames
    clock = VirtualClock()
    center.fault("crash_before_commit")
    up = _uplink(center, log, clock)
    _drive(up, clock, lambda: up.breakpoint == 701, virt_ms=100)
    assert any(text == "restarted" for _, _, text in center.events)
    assert up.sent > 700  # the lost batch (and any in flight) went again
    _assert_exactly_once(center, log)


def test_wrong_key_is_refused(center):
    log = MemLog()
    fill_prod(log, 10)
    clock = VirtualClock()
    up = _uplink(center, log, clock, key=bytes(32))
    _drive(up, clock, lambda: up.reconnects >= 2, virt_ms=100)
    assert up.breakpoint == 0 and up.state in ("backoff", "connecting", "hello")
    assert "closed by peer" in up.last_error
    assert center.summary() == {}
    assert any("bad_tag" in text for _, _, text in center.events)


def test_upload_gap_when_retention_overtook_the_breakpoint(center):
    log = MemLog()
    fill_prod(log, 500)
    log.reclaim(100)  # seqs 1..100 gone before the center had them
    clock = VirtualClock()
    alarms, events = [], []
    up = _uplink(center, log, clock,
                 alarm=lambda *a: alarms.append(a) if a[0] == "upload_gap" else None,
                 emit=lambda rtype, fields: events.append((rtype, fields)))
    _drive(up, clock, lambda: up.breakpoint == 501)
    assert alarms[0][0] == "upload_gap" and alarms[0][1] is True and "1..100" in alarms[0][2]
    assert alarms[-1][:2] == ("upload_gap", False)
    assert events == [("event", {"code": "upload_gap", "detail": {"first": 1, "last": 100}})]
    assert center.summary(DEV)["gaps"] == [[1, 100]]
    _assert_exactly_once(center, log, first=101)


# ---- commands through the center ----------------------------------------------------------

def _commanded(center, clock, app=None, slots=None, log=None):
    app = app or FakeApp(clock)
    slots = slots or MemSlots()
    cmds = Commands(slots, app.handlers(), clock)
    cmds.start()
    log = log or MemLog()
    up = _uplink(center, log, clock, commands=cmds)
    return up, cmds, app, slots


def _done(center, ids):
    return lambda: all(center.results(DEV).get(i, {}).get("state") == "done" for i in ids)


def test_commands_end_to_end(center):
    clock = VirtualClock()
    up, cmds, app, slots = _commanded(center, clock)
    ids = [center.command(DEV, "status"), center.command(DEV, "get_params"),
           center.command(DEV, "set_params", {"params": {"scale.material_factor": 1.02}}),
           center.command(DEV, "set_params", {"params": {"scale.material_factor": 1.5,
                                                         "production.interval_s": 7}}),
           center.command(DEV, "time_sync", {"time": 1800000000}),
           center.command(DEV, "set_output", {"do": 2, "on": True}),
           center.command(DEV, "format_flash")]
    _drive(up, clock, _done(center, ids), jobs=[cmds])
    res = center.results(DEV)
    assert res[ids[0]]["result"]["result"]["rate_tph"] == 812.5
    assert res[ids[1]]["result"]["result"]["params"]["production.interval_s"] == 60
    assert res[ids[2]]["result"]["ok"] and app.persisted["scale.material_factor"] == 1.02
    bad = res[ids[3]]["result"]
    assert bad["ok"] is False and "production.interval_s" in bad["error"]
    assert app.params["scale.material_factor"] == 1.02  # nothing of the rejected set applied
    assert res[ids[4]]["result"]["ok"] and abs(clock.time() - 1800000000) < 60
    assert res[ids[5]]["result"]["ok"] and app.outputs[2] is True
    assert res[ids[6]]["result"]["ok"] is False
    assert [e[0] for e in app.events] == ["params_changed", "time_set"]
    # A command sent while online goes out at once.
    later = center.command(DEV, "status")
    _drive(up, clock, _done(center, [later]), jobs=[cmds])


def test_command_ids_idempotent_across_gateway_restart(center):
    clock = VirtualClock()
    up, cmds, app, slots = _commanded(center, clock)
    cid = center.command(DEV, "set_output", {"do": 1, "on": True})
    _drive(up, clock, _done(center, [cid]), jobs=[cmds])
    first = center.results(DEV)[cid]["result"]
    up.stop()
    # The gateway restarts (same slots on flash); the center sends the same id again.
    app2 = FakeApp(clock)
    up2, cmds2, _, _ = _commanded(center, clock, app=app2, slots=slots)
    center.command(DEV, "set_output", {"do": 1, "on": True}, cmd_id=cid)
    _drive(up2, clock, _done(center, [cid]), jobs=[cmds2])
    assert center.results(DEV)[cid]["result"] == first
    assert app2.calls == [] and app2.outputs[1] is False  # not executed twice


def test_queued_command_applied_when_possible_result_follows(center):
    clock = VirtualClock()
    app = FakeApp(clock)
    app.collector_online = False
    up, cmds, app, slots = _commanded(center, clock, app=app)
    cid = center.command(DEV, "set_output", {"do": 1, "on": True})
    _drive(up, clock, lambda: center.results(DEV)[cid]["state"] == "queued", jobs=[cmds])
    r = center.results(DEV)[cid]["result"]
    assert r["queued"] is True and app.outputs[1] is False
    assert json.loads(slots.text)["wait"][0]["st"] == "pending"  # persisted while waiting
    app.collector_online = True
    cmds.wake()
    _drive(up, clock, _done(center, [cid]), jobs=[cmds])
    r = center.results(DEV)[cid]["result"]
    assert r == {"id": cid, "ok": True, "result": {"do": 1, "on": True}}
    assert app.outputs[1] is True and app.calls.count("set_output") == 1


def test_final_result_made_offline_is_sent_on_next_connection(center):
    clock = VirtualClock()
    app = FakeApp(clock)
    app.collector_online = False
    up, cmds, app, slots = _commanded(center, clock, app=app)
    cid = center.command(DEV, "set_output", {"do": 2, "on": True})
    _drive(up, clock, lambda: center.results(DEV)[cid]["state"] == "queued", jobs=[cmds])
    up.stop()
    app.collector_online = True
    cmds.wake()
    cmds.run(clock.ticks_ms())  # applied while the link is down
    assert app.outputs[2] is True and cmds.unsent == 1
    up.start()
    _drive(up, clock, _done(center, [cid]), jobs=[cmds])
    assert cmds.unsent == 0 and app.calls.count("set_output") == 1


# ---- a bad gateway against the center -----------------------------------------------------

class RawGateway:
    """A hand-driven gateway end over a blocking socket, to send what a good one never would."""

    def __init__(self, port, key=KEY, device=DEV):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.session = cl.Session(cl.Keys(key), device, cl.GATEWAY)
        self.reader = cl.FrameReader()
        self.received = []  # frames that closed() read on the way

    def hello(self, head=0, oldest=1):
        s = self.session
        s.nonce_g = os.urandom(16)
        self.sock.sendall(s.seal(cl.HELLO, {"nonce": s.nonce_g.hex(), "fw": "raw",
                                            "head": head, "oldest": oldest, "time": 0}))
        f = self.frame()
        w = s.open(f)
        s.nonce_c = bytes.fromhex(w["nonce"])
        return w

    def frame(self):
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            got = self.reader.feed(data)
            if got:
                return got[0]

    def records(self, first, n):
        recs = [{"seq": s, "t": 1767225600 + 60 * s, "type": "prod", "mass_kg": 1.0}
                for s in range(first, first + n)]
        return self.session.seal(cl.RECORDS, {"records": recs})

    def closed(self, timeout_s=5):
        """True once the center has closed the connection (after any frames it sent)."""
        self.sock.settimeout(timeout_s)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.received += self.reader.feed(data)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def _dropped_for(center, code):
    return any(code in text for _, _, text in center.events if "dropped" in text)


def test_center_stores_and_acks_a_good_raw_gateway(center):
    g = RawGateway(center.port)
    assert g.hello()["next"] == 1
    g.sock.sendall(g.records(1, 10))
    assert g.session.open(g.frame()) == {"next": 11}
    # A resent batch (an ACK lost) is ignored, not stored twice; ACK says where it stands.
    g.sock.sendall(g.records(5, 10))
    assert g.session.open(g.frame()) == {"next": 15}
    s = center.summary(DEV)
    assert s["records"] == 14 and s["duplicates"] == 6


def test_ack_lost_then_the_batch_resent_is_stored_once(center):
    center.fault("drop_ack")
    g = RawGateway(center.port)
    g.hello()
    g.sock.sendall(g.records(1, 10))
    assert not g.closed(0.5) and g.received == []  # no ACK comes; the link stays up
    g.sock.close()
    g = RawGateway(center.port)
    assert g.hello()["next"] == 11  # the center had committed it
    g.sock.sendall(g.records(1, 15))  # a gateway that resends from its own breakpoint
    assert g.session.open(g.frame()) == {"next": 16}
    s = center.summary(DEV)
    assert s["records"] == 15 and s["duplicates"] == 10
    assert [r["seq"] for r in center.records(DEV)] == list(range(1, 16))


@pytest.mark.parametrize("kind", ["forged", "replayed", "reordered", "oversized", "garbage",
                                  "gapped", "not_contiguous", "too_many", "hello_again"])
def test_center_drops_bad_frames_and_applies_nothing(center, kind):
    first = RawGateway(center.port)
    first.hello()
    recorded = first.records(1, 5)  # sealed for the first connection, kept by an eavesdropper
    first.sock.close()
    g = RawGateway(center.port)
    g.hello()
    if kind == "forged":
        frame = bytearray(g.records(1, 5))
        frame[40] ^= 4
        g.sock.sendall(frame)
    elif kind == "replayed":
        g.sock.sendall(recorded)
    elif kind == "reordered":
        a = g.records(1, 5)
        b = g.records(6, 5)
        g.sock.sendall(b + a)
    elif kind == "oversized":
        g.sock.sendall(cl.pack_header(cl.RECORDS, DEV, 2, 262160))
    elif kind == "garbage":
        g.sock.sendall(random.Random(300).randbytes(300))
    elif kind == "gapped":
        g.sock.sendall(g.records(3, 5))
    elif kind == "not_contiguous":
        recs = [{"seq": 1, "t": 1, "type": "prod"}, {"seq": 3, "t": 2, "type": "prod"}]
        g.sock.sendall(g.session.seal(cl.RECORDS, {"records": recs}))
    elif kind == "too_many":
        g.sock.sendall(g.records(1, 257))
    elif kind == "hello_again":
        g.sock.sendall(g.session.seal(cl.HELLO, {"nonce": "00" * 16, "head": 0, "oldest": 1}))
    assert g.closed()
    assert center.record_count(DEV) == 0
    assert center.summary(DEV)["next"] == 1
    code = {"forged": "bad_tag", "replayed": "bad_tag", "reordered": "bad_counter",
            "oversized": "too_big", "garbage": "bad_magic", "gapped": "missing",
            "not_contiguous": "bad_records", "too_many": "bad_records",
            "hello_again": "unexpected"}[kind]
    _wait(lambda: _dropped_for(center, code))


def _wait(cond, timeout_s=5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met")


def test_center_refuses_unknown_device_and_wrong_key(center):
    g = RawGateway(center.port, device=99)
    with pytest.raises(ConnectionError):
        g.hello()
    g = RawGateway(center.port, key=bytes(32))
    with pytest.raises(ConnectionError):
        g.hello()
    assert center.summary() == {}


def test_center_tells_an_authenticated_gateway_why_with_error_frame(center):
    g = RawGateway(center.port)
    g.hello()
    recs = [{"seq": 1, "t": 1, "type": "prod"}, {"seq": 1, "t": 2, "type": "prod"}]
    g.sock.sendall(g.session.seal(cl.RECORDS, {"records": recs}))
    f = g.frame()
    assert f.type == cl.ERROR
    msg = g.session.open(f)
    assert msg["code"] == "bad_records" and "contiguous" in msg["message"]
    assert g.closed() and center.record_count(DEV) == 0


# ---- a bad center against the gateway, with the measurement loop running -----------------

class _PollJob:
    """Stands in for the 10 Hz collector poll: records when it ran."""

    name = "poll"

    def __init__(self):
        self.at = []

    def run(self, now_ms):
        self.at.append(now_ms)


class _Sampler:
    name = "sampler"

    def __init__(self, up):
        self.up = up
        self.max_in_flight = 0

    def run(self, now_ms):
        self.max_in_flight = max(self.max_in_flight, self.up.stats()["in_flight"])


def _run_loop(up, seconds, cmds=None, sampler=None):
    clock = up._clock
    loop = Loop(clock)
    poll = loop.add(_PollJob(), 100)
    loop.add(up, 20)
    if cmds is not None:
        loop.add(cmds, 100)
    if sampler is not None:
        loop.add(sampler, 20)
    loop.run(int(seconds * 1000))
    gaps = [clock.ticks_diff(b, a) for a, b in zip(poll.at, poll.at[1:])]
    return loop, poll, gaps


def _assert_poll_rate_kept(loop, poll, gaps, seconds):
    assert len(poll.at) >= seconds * 10 - 1
    assert max(gaps) < 200, max(gaps)  # never a whole period late
    assert loop.stats()["poll"]["overruns"] == 0


@pytest.mark.parametrize("fault", ["forge", "reorder", "oversize", "garbage", "replay"])
def test_gateway_drops_bad_center_frames_and_keeps_polling(center, fault):
    clock = Clock()
    app = FakeApp(clock)
    cmds = Commands(MemSlots(), app.handlers(), clock)
    cmds.start()
    log = MemLog()
    fill_prod(log, 50)
    center.fault(fault)
    up = _uplink(center, log, clock, commands=cmds)
    seconds = 2.5 if fault == "replay" else 1.0
    loop, poll, gaps = _run_loop(up, seconds, cmds)
    _assert_poll_rate_kept(loop, poll, gaps, seconds)
    code = {"forge": "bad_tag", "reorder": "bad_counter", "oversize": "too_big",
            "garbage": "bad_magic", "replay": "bad_tag"}[fault]
    assert up.reconnects >= 1 and code in up.last_error, up.last_error
    assert app.calls == [] and app.outputs == {1: False, 2: False}  # nothing applied
    assert cmds.executed == 0


def test_hung_center_costs_the_poll_loop_nothing(center):
    clock = Clock()
    log = MemLog()
    fill_prod(log, 100)
    center.fault("hang", seconds=10)
    up = _uplink(center, log, clock, silence_s=1)
    loop, poll, gaps = _run_loop(up, 2.0)
    _assert_poll_rate_kept(loop, poll, gaps, 2.0)
    assert up.reconnects >= 1 and "silence" in up.last_error


def test_center_that_stops_reading_after_welcome(center):
    clock = Clock()
    log = MemLog()
    fill_prod(log, 20000)  # more than the kernel buffers take
    center.fault("hang", seconds=10, after_welcome=True)
    up = _uplink(center, log, clock, silence_s=1)
    sampler = _Sampler(up)
    loop, poll, gaps = _run_loop(up, 1.5, sampler=sampler)
    _assert_poll_rate_kept(loop, poll, gaps, 1.5)
    assert up.reconnects >= 1
    assert 1 <= sampler.max_in_flight <= 8  # never more than the window unacknowledged


def test_slow_center_one_byte_at_a_time(center):
    clock = Clock()
    log = MemLog()
    fill_prod(log, 100)
    center.fault("slow", seconds=0.2)
    up = _uplink(center, log, clock, silence_s=1)
    loop, poll, gaps = _run_loop(up, 2.0)
    _assert_poll_rate_kept(loop, poll, gaps, 2.0)
    assert up.reconnects >= 1 and "silence" in up.last_error


# ---- MicroPython gateway against the CPython center ---------------------------------------

_MP_GATEWAY = r"""
import sys, json, time
sys.path.insert(0, '.')
from hal.clock import Clock
from hal.net import TcpConnector
from gateway.center.uplink import Uplink
from gateway.center.commands import Commands
from tests.core.uplink_fakes import MemSlots, FakeApp, fill_prod
from gateway.store.recordlog import RecordLog
from tests.core.faultfs import FaultFlash
clock = Clock()
log = RecordLog(FaultFlash())
log.open()
fill_prod(log, 1500)
app = FakeApp(clock)
cmds = Commands(MemSlots(), app.handlers(), clock)
cmds.start()
up = Uplink(TcpConnector('127.0.0.1', %d), %d, bytes(range(32)), log, cmds, clock, fw='mp')
up.start()
t0 = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), t0) < 20000:
    now = clock.ticks_ms()
    up.run(now)
    cmds.run(now)
    if up.breakpoint == 1501 and app.calls.count('set_params') == 1 and cmds.unsent == 0:
        break
    time.sleep_ms(2)
t1 = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), t1) < 300:  # let the RESULT go out
    up.run(clock.ticks_ms())
    time.sleep_ms(5)
print(json.dumps(up.stats()))
print(json.dumps(app.params))
"""


def test_micropython_gateway_uploads_to_cpython_center(center):
    cid = center.command(DEV + 1, "set_params", {"params": {"scale.material_factor": 1.25}})
    mp = os.path.join(os.path.dirname(sys.executable), "micropython")
    r = subprocess.run([mp, "-c", _MP_GATEWAY % (center.port, DEV + 1)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    stats, params = json.loads(lines[-2]), json.loads(lines[-1])
    assert stats["acked"] == 1501 and stats["reconnects"] == 0
    assert params["scale.material_factor"] == 1.25
    recs = center.records(DEV + 1)
    assert [x["seq"] for x in recs] == list(range(1, 1501))
    log = MemLog()
    fill_prod(log, 1500)
    assert recs == log.read(1, 1500)
    _wait(lambda: center.results(DEV + 1)[cid]["state"] == "done")


# ---- the emulator as a program -------------------------------------------------------------

def test_center_program_with_key_directory_commands_and_summary(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / ("%d.key" % DEV)).write_text(KEY.hex() + "\n")
    (keys / "8.key").write_text("not hex\n")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator.center", "--listen", "127.0.0.1:%d" % port,
         "--db", str(tmp_path / "c.db"), "--keys", str(keys), "--summary-s", "0.3",
         "--command", "%d:set_output:{\"do\": 2, \"on\": true}" % DEV],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        clock = VirtualClock()
        app = FakeApp(clock)
        cmds = Commands(MemSlots(), app.handlers(), clock)
        cmds.start()
        log = MemLog()
        total_kg = fill_prod(log, 100)
        up = Uplink(TcpConnector("127.0.0.1", port), DEV, KEY, log, cmds, clock)
        up.start()
        _drive(up, clock, lambda: up.breakpoint == 101 and app.outputs[2], virt_ms=100,
               jobs=[cmds])
        time.sleep(0.8)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    assert "queued command 1 for device 7: set_output" in out
    assert "device 7: next 101, 100 records, 0 duplicates ignored, gaps none" in out
    assert "production %.3f t (totalizer %.1f kg)" % (total_kg / 1000, total_kg) in out
    from emulator.center import load_key
    assert load_key(str(keys), DEV) == KEY
    assert load_key(str(keys), 8) is None and load_key(str(keys), 9) is None


def test_small_board_refuses_a_legal_frame_it_cannot_hold():
    script = (
        "import sys\nsys.path.insert(0, '.')\n"
        "from protocols import center_link as cl\n"
        "try:\n"
        "    cl.FrameReader().feed(cl.pack_header(5, 1, 2, 262144))\n"
        "    print('allocated')\n"
        "except cl.FrameError as e:\n"
        "    print(e.code)\n")
    mp = os.path.join(os.path.dirname(sys.executable), "micropython")
    r = subprocess.run([mp, "-X", "heapsize=100000", "-c", script], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "too_big", r.stdout + r.stderr
