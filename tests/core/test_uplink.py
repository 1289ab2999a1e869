# The uplink's state machine against a scripted center over an in-memory connection:
# no sockets, so it runs on MicroPython too. The real TCP cases are in tests/test_uplink.py.
from gateway.center.commands import Commands
from gateway.center.uplink import Uplink
from hal.virtualclock import VirtualClock
from protocols import center_link as cl
from tests.core.uplink_fakes import DEV, KEY, Connector, FakeApp, MemLog, MemSlots, Peer, fill_prod


def _setup(n=0, commands=None, **kw):
    clock = VirtualClock()
    log = MemLog()
    fill_prod(log, n)
    conn = Connector(clock)
    alarms = []
    up = Uplink(conn, DEV, KEY, log, commands, clock, fw="fw-9", alarm=lambda *a: alarms.append(a),
                **kw)
    up.start()
    return up, clock, log, conn, alarms


def _step(up, clock, ms=10, times=1):
    for _ in range(times):
        clock.advance_ms(ms)
        up.run(clock.ticks_ms())


def _online(up, clock, conn, nxt=1):
    _step(up, clock)  # connect
    _step(up, clock)  # connected: HELLO
    peer = Peer(conn.pipes[-1])
    hello = peer.frames()
    assert hello[0][0] == cl.HELLO
    peer.welcome(nxt)
    _step(up, clock)
    assert up.state == "online"
    return peer, hello[0][1]


def test_hello_then_window_of_eight_frames():
    up, clock, log, conn, _ = _setup(600, batch=64)  # small frames: a small heap on MicroPython
    peer, hello = _online(up, clock, conn)
    assert hello["head"] == 600 and hello["oldest"] == 1 and hello["fw"] == "fw-9"
    assert len(hello["nonce"]) == 32 and hello["time"] == 1767225600
    got = peer.frames()
    assert [t for t, _ in got] == [cl.RECORDS] * 8
    assert got[0][1]["records"][0]["seq"] == 1 and got[7][1]["records"][-1]["seq"] == 512
    assert got[0][1]["records"] == log.read(1, 64)
    _step(up, clock, times=3)
    assert peer.frames() == []  # window full: nothing more until an ACK
    peer.send(cl.ACK, {"next": 65})
    _step(up, clock)
    got = peer.frames()
    assert len(got) == 1 and got[0][1]["records"][0]["seq"] == 513
    assert up.breakpoint == 65 and log.acked == 65
    st = up.stats()
    assert len(got[0][1]["records"]) == 64
    assert st["in_flight"] == 8 and st["sent"] == 576 and st["backlog"] == 536


def test_frames_hold_at_most_256_records():
    up, clock, log, conn, _ = _setup(300)
    peer, _ = _online(up, clock, conn)
    assert [len(m["records"]) for _, m in peer.frames()] == [256, 44]


def test_acks_may_cover_several_frames_and_resume_the_breakpoint():
    up, clock, log, conn, _ = _setup(600)
    peer, _ = _online(up, clock, conn)
    assert len(peer.frames()) == 3
    peer.send(cl.ACK, {"next": 513})
    _step(up, clock)
    assert up.stats()["in_flight"] == 1 and up.breakpoint == 513
    peer.send(cl.ACK, {"next": 601})
    _step(up, clock)
    assert up.stats()["in_flight"] == 0 and up.breakpoint == 601 and up.stats()["backlog"] == 0


def test_ack_out_of_range_drops_and_tells_the_center():
    up, clock, log, conn, _ = _setup(10)
    peer, _ = _online(up, clock, conn)
    peer.frames()
    peer.send(cl.ACK, {"next": 12})  # beyond anything sent
    _step(up, clock)
    assert up.state == "backoff" and "bad_ack" in up.last_error and conn.pipes[0].closed
    err = peer.frames()
    assert err[0][0] == cl.ERROR and err[0][1]["code"] == "bad_ack"
    assert up.breakpoint == 1  # WELCOME's next only


def test_ping_when_idle_pong_when_pinged_and_silence_drops():
    up, clock, log, conn, _ = _setup(0, ping_s=10, silence_s=30)
    peer, _ = _online(up, clock, conn)
    # Nothing to send after WELCOME: one PING at once proves the new connection is live.
    assert [t for t, _ in peer.frames()] == [cl.PING]
    _step(up, clock, ms=1000, times=9)
    assert peer.frames() == []
    _step(up, clock, ms=1000, times=1)
    assert [t for t, _ in peer.frames()] == [cl.PING]
    peer.send(cl.PING, {})
    _step(up, clock)
    assert [t for t, _ in peer.frames()] == [cl.PONG]
    _step(up, clock, ms=1000, times=30)  # our PINGs go out, nothing comes back
    assert up.state == "online"
    _step(up, clock, ms=1000, times=1)
    assert up.state == "backoff" and up.last_error.startswith("silence")


def test_no_ack_while_pongs_flow_still_drops():
    up, clock, log, conn, _ = _setup(10, ping_s=2, silence_s=6)
    peer, _ = _online(up, clock, conn)
    for _ in range(7):
        _step(up, clock, ms=1000)
        for t, _ in peer.frames():
            if t == cl.PING:
                peer.send(cl.PONG, {})
    assert up.state == "backoff" and "no ACK" in up.last_error


def test_center_that_reads_nothing_is_dropped():
    up, clock, log, conn, _ = _setup(600, silence_s=5, batch=64)  # a full window, a small heap
    peer, _ = _online(up, clock, conn)
    conn.pipes[0].room = 0  # the kernel buffer is full and stays full
    for _ in range(6):
        _step(up, clock, ms=1000)
        peer.send(cl.PING, {})  # the center keeps talking, but never reads
    assert up.state == "backoff"
    assert "stalled" in up.last_error or "no ACK" in up.last_error


def test_error_from_center_and_frames_out_of_place():
    up, clock, log, conn, _ = _setup(0)
    peer, _ = _online(up, clock, conn)
    peer.send(cl.ERROR, {"code": "maintenance", "message": "back soon"})
    _step(up, clock)
    assert up.state == "backoff" and "maintenance" in up.last_error
    # A second connection where the center sends an ACK before WELCOME.
    _step(up, clock, ms=2000, times=2)
    peer = Peer(conn.pipes[-1])
    peer.frames()
    peer.send(cl.ACK, {"next": 1})
    _step(up, clock)
    assert up.state == "backoff" and "before WELCOME" in up.last_error


def test_malformed_welcome_drops():
    for bad in ({"next": 1}, {"nonce": "zz" * 16, "next": 1}, {"nonce": "00" * 16, "next": 0},
                {"nonce": "00" * 16, "next": True}):
        up, clock, log, conn, _ = _setup(0)
        _step(up, clock, times=2)
        peer = Peer(conn.pipes[-1])
        peer.frames()
        peer.send(cl.WELCOME, bad)
        _step(up, clock)
        assert up.state == "backoff" and "bad_welcome" in up.last_error, bad


def test_backoff_doubles_with_jitter_to_the_ceiling_and_resets_on_ack():
    up, clock, log, conn, _ = _setup(5, backoff_max_s=60)
    conn.fail = True
    for _ in range(20000):
        _step(up, clock, ms=50)
        if len(conn.at) == 12:
            break
    gaps = [clock.ticks_diff(b, a) for a, b in zip(conn.at, conn.at[1:])]
    ceilings = [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000, 60000, 60000]
    for g, c in zip(gaps, ceilings):
        assert c // 2 <= g <= c + 50, (g, c)
    assert up.reconnects == 12
    conn.fail = False
    _step(up, clock, ms=1000, times=61)
    peer = Peer(conn.pipes[-1])
    peer.frames()
    peer.welcome(1)
    _step(up, clock)
    peer.frames()
    peer.send(cl.ACK, {"next": 6})
    _step(up, clock)
    conn.pipes[-1].peer_closed = True
    _step(up, clock)
    n = len(conn.at)
    _step(up, clock, ms=100, times=11)
    assert len(conn.at) == n + 1  # back to 1 s (with jitter) after a working connection


def test_the_last_failure_is_kept_by_kind_with_its_time():
    up, clock, log, conn, _ = _setup(0)
    for kind in ("dns", "refused", "unreachable"):
        conn.fail = kind
        _step(up, clock, ms=2500)
        assert up.failure == kind, (kind, up.last_error)
        assert up.failure_t == int(clock.time())
    st = up.stats()
    assert (st["failure"], st["failure_t"]) == ("unreachable", int(clock.time()))
    conn.fail = False
    while up.state != "hello":  # the backoff's jitter decides when
        _step(up, clock, ms=100)
    peer = Peer(conn.pipes[-1])
    peer.frames()
    peer.welcome(1)
    _step(up, clock)
    assert up.state == "online" and up.failure == "unreachable"  # kept, for the panel
    clock.advance_ms(40000)
    up.run(clock.ticks_ms())
    assert up.failure == "timeout" and "silence" in up.last_error


def test_a_failure_is_named_from_its_reason():
    from gateway.center.linkcheck import kind

    for reason, in_hello, want in (
            ("resolve no-such-host.invalid: -2", False, "dns"),
            ("connect 127.0.0.1:9: ECONNREFUSED (errno 111)", False, "refused"),
            ("connect: EHOSTUNREACH (errno 113)", False, "unreachable"),
            ("connect: error (errno 101)", False, "unreachable"),
            ("recv: ETIMEDOUT (errno 110)", False, "timeout"),
            ("connect: no answer in 30 s", False, "timeout"),
            ("closed by peer", False, "closed"),
            ("closed by peer", True, "auth"),
            ("recv: ECONNRESET (errno 104)", True, "auth"),
            ("center frame refused: bad_tag: tag does not verify", True, "auth"),
            ("center frame refused: bad_tag: tag does not verify", False, "protocol"),
            ("center error maintenance: back soon", False, "protocol"),
            ("silence: no frame from the center for 30 s", False, "timeout"),
            ("out of memory handling a frame from the center", False, "memory"),
            ("retention overtook the breakpoint at 5", False, "local"),
            ("send: EPIPE (errno 32)", False, "network")):
        assert kind(reason, in_hello) == want, (reason, in_hello)


def test_connect_that_never_completes_times_out():
    up, clock, log, conn, _ = _setup(0, silence_s=5)
    _step(up, clock)
    conn.pipes[0].connected = False
    _step(up, clock, ms=1000, times=6)
    assert up.state == "backoff" and "connect" in up.last_error and conn.pipes[0].closed


def test_a_log_no_center_welcomed_adopts_a_larger_next():
    # A new or wiped flash (breakpoint 0): the center's next is adopted, so that no seq
    # the center holds is used again, and the records it will not get are named.
    events = []
    logs = []

    def emit(rtype, fields):  # the app's emit: into the log
        events.append(fields)
        return logs[0].append(rtype, 1767300000, fields)

    up, clock, log, conn, alarms = _setup(10, emit=emit)
    logs.append(log)
    peer, _ = _online(up, clock, conn, nxt=20)
    assert up.breakpoint == 20 and log.head == 20  # 11..19 never used; 20 is the event
    assert events == [{"code": "seq_adopted", "detail": {"next": 20, "unsent": [1, 10]}}]
    recs = peer.frames()[0][1]["records"]
    assert [r["seq"] for r in recs] == [20] and recs[0]["code"] == "seq_adopted"
    fill_prod(log, 5, t0=1767300000)
    _step(up, clock)
    recs = peer.frames()[0][1]["records"]
    assert [r["seq"] for r in recs] == [21, 22, 23, 24, 25]
    assert [a for a in alarms if a[1]] == []


def test_a_next_beyond_the_head_of_a_welcomed_log_is_refused():
    # A log a center has welcomed before holds every seq the center can know of: a next
    # beyond its head + 1 would skip the unsent backlog.
    for nxt in (11 + 1000, 2**31, 2**32 + 5):
        up, clock, log, conn, alarms = _setup(10)
        up.restore({"acked": 4})
        _step(up, clock, times=2)
        peer = Peer(conn.pipes[-1])
        peer.frames()
        peer.welcome(nxt)
        _step(up, clock)
        assert up.state == "backoff" and "bad_next" in up.last_error, nxt
        assert up.failure == "protocol" and conn.pipes[-1].closed
        err = peer.frames()
        assert [(t, m["code"]) for t, m in err] == [(cl.ERROR, "bad_next")], err
        assert up.breakpoint == 4 and log.acked == 4 and log.head == 10  # kept
        assert [a[:2] for a in alarms if a[1]] == [("center_protocol_error", True)], alarms
        assert up.stats()["backlog"] == 7
    # The next good WELCOME clears the alarm.
    _step(up, clock, ms=2000, times=2)
    peer = Peer(conn.pipes[-1])
    peer.frames()
    peer.welcome(4)
    _step(up, clock)
    assert up.state == "online"
    assert [a[:2] for a in alarms if a[0] == "center_protocol_error"][-1] == (
        "center_protocol_error", False)
    assert [m["records"][0]["seq"] for t, m in peer.frames() if t == cl.RECORDS] == [4]


def test_records_the_log_cannot_read_go_as_stand_ins():
    up, clock, log, conn, _ = _setup(600)
    for seq in (1, 2, 300, 513, 600):
        log.damage(seq)
    peer, _ = _online(up, clock, conn)
    recs = [r for _, m in peer.frames() for r in m["records"]]
    assert [r["seq"] for r in recs] == list(range(1, 601))  # contiguous, nothing skipped
    lost = [r for r in recs if r.get("code") == "record_unreadable"]
    assert [r["seq"] for r in lost] == [1, 2, 300, 513, 600]
    assert all(r["type"] == "event" and isinstance(r["detail"], dict) for r in lost)
    assert lost[0]["t"] == log.read(3, 1)[0]["t"]  # stamped with the next record's time
    good = [r for r in recs if r.get("code") != "record_unreadable"]
    assert good == [r for r in log.read(1, 600)]
    assert up.stats()["stand_ins"] == 5


def test_gap_alarm_raised_once_and_cleared_after_ack():
    events = []
    up, clock, log, conn, all_alarms = _setup(50, emit=lambda t, f: events.append(f))
    alarms = all_alarms
    log.reclaim(20)
    peer, hello = _online(up, clock, conn, nxt=5)
    assert hello["oldest"] == 21
    recs = peer.frames()[0][1]["records"]
    assert recs[0]["seq"] == 21
    alarms = [a for a in alarms if a[0] == "upload_gap"]
    assert alarms == [("upload_gap", True, "records 5..20 were overwritten before upload")]
    assert events == [{"code": "upload_gap", "detail": {"first": 5, "last": 20}}]
    peer.send(cl.ACK, {"next": 51})
    _step(up, clock)
    assert [a[:2] for a in all_alarms if a[0] == "upload_gap"][-1] == ("upload_gap", False)
    assert up.breakpoint == 51


def test_slow_board_shrinks_the_batch_to_the_budget():
    up, clock, log, conn, _ = _setup(700, budget_ms=20)
    read = log.read

    def slow_read(seq, n):  # 0.5 ms of flash and CPU per record
        clock.advance_ms(n // 2)
        return read(seq, n)

    log.read = slow_read
    peer, _ = _online(up, clock, conn)
    per_run = [[len(m["records"]) for _, m in peer.frames()]]
    for _ in range(5):
        _step(up, clock)
        per_run.append([len(m["records"]) for _, m in peer.frames()])
    sizes = [n for run in per_run for n in run]
    # Halves until one frame fits the budget, then stays: 32 records take 16 ms here.
    assert sizes == [256, 128, 64, 32, 32, 32, 32, 32], per_run
    assert max(len(run) for run in per_run) <= 2  # sealing stops once a run spent 20 ms
    assert up.stats()["batch"] == 32


def _online_on_a_small_heap(n, largest):
    """Online with a log of n records, on a heap that cannot seal a plaintext of more than
    `largest` bytes (MemoryError, as a board's would)."""
    up, clock, log, conn, _ = _setup(n)
    _step(up, clock, times=2)  # connected, HELLO sent: the session exists
    seal = up._session.seal

    def small_heap(ftype, obj):
        if len(obj) > largest:
            raise MemoryError("memory allocation failed")
        return seal(ftype, obj)

    up._session.seal = small_heap
    peer = Peer(conn.pipes[-1])
    peer.frames()
    peer.welcome(1)
    return up, clock, peer


def test_out_of_memory_while_sealing_shrinks_the_batch():
    up, clock, peer = _online_on_a_small_heap(600, 12000)  # no frames over 12 kB
    _step(up, clock, times=4)
    recs = [m["records"] for _, m in peer.frames()]
    assert [len(r) for r in recs] == [64] * 8  # 256 and 128 did not fit; nothing skipped
    assert [r["seq"] for batch in recs for r in batch] == list(range(1, 513))
    assert "out of memory" in up.last_error and up.state == "online"


def test_a_heap_that_holds_one_record_still_uploads_every_record():
    first = MemLog()
    fill_prod(first, 1)
    one = len(cl.encode({"records": first.read(1, 1)}))
    # No free block larger than a one-record frame.
    up, clock, peer = _online_on_a_small_heap(20, one + 16)
    _step(up, clock, times=10)
    recs = [m["records"] for _, m in peer.frames()]
    assert [len(r) for r in recs] == [1] * 8  # halved down to one record a frame
    peer.send(cl.ACK, {"next": 9})
    _step(up, clock, times=3)
    recs += [m["records"] for _, m in peer.frames()]
    assert [r["seq"] for batch in recs for r in batch] == list(range(1, 17))
    assert up.stats()["batch"] == 1 and up.state == "online"


def test_command_gets_result_and_bad_frames_apply_nothing():
    clock = VirtualClock()
    app = FakeApp(clock)
    cmds = Commands(MemSlots(), app.handlers(), clock)
    cmds.start()
    up, clock, log, conn, _ = _setup(0, commands=cmds)
    peer, _ = _online(up, clock, conn)
    assert [t for t, _ in peer.frames()] == [cl.PING]
    peer.send(cl.COMMAND, {"id": 3, "op": "set_output", "args": {"do": 1, "on": True}})
    _step(up, clock)
    got = peer.frames()
    assert got == [(cl.RESULT, {"id": 3, "ok": True, "result": {"do": 1, "on": True}})]
    # A COMMAND with a broken tag: the connection ends and nothing is applied.
    frame = bytearray(peer.session.seal(cl.COMMAND, {"id": 4, "op": "set_output",
                                                     "args": {"do": 2, "on": True}}))
    frame[20] ^= 1
    conn.pipes[-1].to_gw += bytes(frame)
    _step(up, clock)
    assert up.state == "backoff" and "bad_tag" in up.last_error
    assert app.outputs[2] is False and app.calls == ["set_output"]


def test_snapshot_restore():
    up, clock, log, conn, _ = _setup(100)
    up2 = Uplink(conn, DEV, KEY, log, None, clock)
    up2.restore({"acked": 40, "gap": None})
    assert up2.breakpoint == 40 and log.acked == 40
    assert up2.snapshot() == {"acked": 40, "gap": None}
    up2.restore({"acked": 30})  # never backwards
    assert up2.breakpoint == 40
