# The record log: seq, reads, start-up recovery, damage, retention, full and failing flash.
from gateway.store.recordlog import SEG_HDR, RecordError, RecordLog
from hal.fs import Flash
from tests.core.faultfs import EIO, ENOSPC, FaultFlash
from tests.core.storework import expected, make_record, same
from tests.core.util import raises, rmtree, tmpdir


class Alarms:
    def __init__(self):
        self.log = []

    def __call__(self, code, active, detail):
        self.log.append((code, active, detail))

    def codes(self):
        return [c for c, a, _ in self.log if a]


def _open(flash, alarms=None, **kw):
    kw.setdefault("segment_bytes", 1024)
    kw.setdefault("budget_bytes", 64 << 10)
    log = RecordLog(flash, alarm=alarms, **kw)
    log.open()
    return log


def _fill(log, n, ack_lag=None):
    """Append n records; with ack_lag, the center acknowledges all but the last ack_lag."""
    for _ in range(n):
        seq = log.head + 1
        rtype, t, fields = make_record(seq)
        assert log.append(rtype, t, fields) == seq
        if ack_lag is not None and seq > ack_lag:
            log.set_acked(seq + 1 - ack_lag)


def _check_all(log, first=None, last=None):
    first = log.oldest if first is None else first
    last = log.head if last is None else last
    got = []
    seq = first
    while True:
        part = log.read(seq, 7)
        if not part:
            break
        got.extend(part)
        seq = part[-1]["seq"] + 1
    assert [r["seq"] for r in got] == list(range(first, last + 1)), [r["seq"] for r in got]
    for r in got:
        assert same(r, expected(r["seq"])), r
    return got


def _segments(flash):
    return sorted(n for n in flash.listdir() if n.endswith(".seg"))


def test_seq_from_1_and_records_come_back_exactly():
    ff = FaultFlash()
    log = _open(ff)
    assert log.head == 0 and log.oldest == 1 and log.read(1, 10) == []
    _fill(log, 30)
    assert log.head == 30 and log.oldest == 1 and log.durable == 30
    _check_all(log, 1, 30)
    assert [r["seq"] for r in log.read(28, 10)] == [28, 29, 30]
    assert log.read(31, 10) == []
    assert [r["seq"] for r in log.read(-5, 2)] == [1, 2]
    assert log.read(1, 0) == []


def test_seq_continues_across_restarts_and_is_never_reused():
    ff = FaultFlash()
    log = _open(ff)
    _fill(log, 12)
    log.close()
    for round_ in range(3):
        ff = ff.restart("synced")
        log = _open(ff)
        assert log.head == 12 + 5 * round_
        _fill(log, 5)
        log.close()
    _check_all(_open(ff.restart("synced")), 1, 27)


def test_a_real_directory_on_both_interpreters():
    d = tmpdir("rlog")
    try:
        log = _open(Flash(d))
        _fill(log, 40)
        log.close()
        log = _open(Flash(d))
        assert log.report["head"] == 40 and log.report["torn_bytes"] == 0
        _check_all(log, 1, 40)
    finally:
        rmtree(d)


def test_segments_roll_at_their_size_and_start_up_reads_only_the_newest():
    ff = FaultFlash()
    log = _open(ff)
    _fill(log, 60)
    log.close()
    segs = _segments(ff)
    assert len(segs) >= 4
    for name in segs:
        assert ff.size(name) <= 1024
    opened = []
    ff = ff.restart("synced")
    real_open = ff.open

    def counting_open(name, mode):
        opened.append(name)
        return real_open(name, mode)

    ff.open = counting_open
    log = _open(ff)
    assert opened == [segs[-1]], opened
    assert log.head == 60 and log.oldest == 1
    assert log.report["tail_records"] < 60


def test_torn_tail_is_cut_off_and_the_log_goes_on():
    ff = FaultFlash()
    log = _open(ff)
    _fill(log, 10)
    log.close()
    tail = _segments(ff)[-1]
    image = ff.image()
    good = len(image[tail])
    # A write of the next record that the power cut after 9 of its bytes.
    image[tail] = image[tail] + b"\xa5\x30\x00\x11\x22\x33\x44\x0b\x00"
    ff = FaultFlash(image)
    log = _open(ff)
    assert log.report["torn_bytes"] == 9 and log.report["corrupt_skipped"] == 0
    assert log.head == 10 and log.corrupt_found == 0
    _fill(log, 5)
    log.close()
    ff = ff.restart("synced")
    log = _open(ff)
    assert log.head == 15 and log.report["torn_bytes"] == 0
    _check_all(log, 1, 15)
    assert ff.size(tail) == good + 9  # never rewritten: the next segment says where it ends


def test_damaged_record_in_an_old_segment_is_reported_skipped_and_the_rest_read():
    ff = FaultFlash()
    alarms = Alarms()
    log = _open(ff, alarms)
    _fill(log, 40)
    first_seg = _segments(ff)[0]
    # Flip a bit in the payload of the third record of the oldest segment.
    off = SEG_HDR
    data = ff.image()[first_seg]
    for _ in range(2):
        off += 7 + (data[off + 1] | data[off + 2] << 8)
    ff.flip(first_seg, off + 9, 3)
    got = []
    seq = 1
    while seq <= 40:
        part = log.read(seq, 10)
        got.extend(part)
        seq = part[-1]["seq"] + 1 if part else 41
    seqs = [r["seq"] for r in got]
    assert seqs == [s for s in range(1, 41) if s != 3], seqs
    assert log.corrupt_found == 1 and alarms.codes() == ["storage_corrupt"]
    assert "seq 3..3" in alarms.log[0][2], alarms.log
    log.read(1, 50)  # the same damage read again is not counted again
    assert log.corrupt_found == 1


def test_damage_in_the_newest_segment_is_found_at_start_up():
    ff = FaultFlash()
    log = _open(ff)
    _fill(log, 8)
    log.close()
    tail = _segments(ff)[-1]
    ff.flip(tail, SEG_HDR + 20, 0)  # inside the first record of the tail
    alarms = Alarms()
    log = _open(ff, alarms)
    assert log.report["corrupt_skipped"] == 1 and alarms.codes() == ["storage_corrupt"]
    assert log.head == 8
    _fill(log, 2)
    seqs = [r["seq"] for r in log.read(1, 20)]
    assert len(seqs) == 9 and seqs[-3:] == [8, 9, 10]


def test_damage_found_at_start_up_is_told_once_the_log_is_whole():
    # The app's alarm engine writes the storage_corrupt record into this same log as
    # soon as it is told. Told in the middle of recovery, that record took seq 1 and a
    # new segment r0000000001.seg over the first one: records 1..18 gone.
    ff = FaultFlash()
    log = _open(ff)
    _fill(log, 30)
    log.close()
    assert len(_segments(ff)) == 2
    ff.flip(_segments(ff)[-1], SEG_HDR + 20, 0)  # the newest segment's first record
    told = []

    def alarm(code, active, detail):
        told.append(code)
        log.append("alarm", 1767225600, {"code": code, "state": "raise", "detail": detail})

    log = RecordLog(ff, alarm=alarm, segment_bytes=1024, budget_bytes=64 << 10)
    report = log.open()
    assert told == ["storage_corrupt"]
    assert report["head"] == 30 and report["corrupt_skipped"] == 1
    assert log.head == 31
    seqs = [r["seq"] for r in log.read(1, 100)]
    assert seqs == [s for s in range(1, 32) if s != 19], seqs
    assert log.read(31, 1)[0]["type"] == "alarm"


def test_damaged_last_record_keeps_its_seq_spent():
    ff = FaultFlash()
    log = _open(ff)
    _fill(log, 5)
    log.close()
    tail = _segments(ff)[-1]
    ff.flip(tail, ff.size(tail) - 1, 5)  # the CRC-covered end of record 5, stored whole
    alarms = Alarms()
    log = _open(ff, alarms)
    assert log.head == 5 and alarms.codes() == ["storage_corrupt"]
    assert log.append("diag", 1, {"detail": {}}) == 6
    assert [r["seq"] for r in log.read(1, 10)] == [1, 2, 3, 4, 6]


def test_damaged_segment_header():
    ff = FaultFlash()
    log = _open(ff)
    _fill(log, 40)
    log.close()
    segs = _segments(ff)
    ff.flip(segs[1], 5, 1)  # an old segment's header
    ff.flip(segs[-1], 6, 1)  # the newest one's
    alarms = Alarms()
    log = _open(ff, alarms)
    assert log.head == 40
    _fill(log, 1)  # goes to a new segment: the damaged newest one is left as it is
    _check_all(log, 1, 41)
    assert "storage_corrupt" in alarms.codes()


def test_reads_of_one_record_each_and_records_larger_than_the_read_size():
    ff = FaultFlash()
    log = _open(ff, segment_bytes=8192)
    _fill(log, 5)
    big = {"code": "x", "detail": "d" * 1500}  # larger than a one-record read
    assert log.append("event", 1767225600, big) == 6
    _fill(log, 4)
    assert log.durable == 10  # every read below comes from the segment file
    for seq in range(1, 11):
        got = log.read(seq, 1)
        assert [r["seq"] for r in got] == [seq]
        if seq == 6:
            assert got[0]["detail"] == big["detail"]
        else:
            assert same(got[0], expected(seq))


def test_read_time():
    from gateway.store.history import read_time

    ff = FaultFlash()
    log = _open(ff)
    _fill(log, 80)
    t = expected(20)["t"]
    got = read_time(log, t, t + 600, 100)  # records 20..29 by time
    assert [r["seq"] for r in got] == list(range(20, 30))
    assert [r["seq"] for r in read_time(log, t, t + 6000, 4)] == [20, 21, 22, 23]
    assert read_time(log, 0, 1, 10) == []
    assert len(read_time(log, 0, 1e12, 1000)) == 80


def test_retention_drops_acknowledged_segments_silently():
    ff = FaultFlash()
    alarms = Alarms()
    log = _open(ff, alarms, segment_bytes=1024, budget_bytes=4096)
    _fill(log, 200, ack_lag=3)
    s = log.stats()
    assert s["bytes_used"] <= 4096 and s["segments"] <= 4 and s["dropped_segments"] > 0
    assert log.oldest > 1 and log.head == 200 and alarms.log == []
    _check_all(log)


def test_retention_overrun_names_the_unacknowledged_seqs_lost():
    ff = FaultFlash()
    alarms = Alarms()
    log = _open(ff, alarms, segment_bytes=1024, budget_bytes=4096)
    log.set_acked(5)
    _fill(log, 200)
    assert "retention_overrun" in alarms.codes()
    code, active, detail = alarms.log[0]
    assert code == "retention_overrun" and detail.startswith("seq 5..")
    _check_all(log)


def test_full_flash_keeps_records_in_ram_and_writes_them_later():
    ff = FaultFlash(capacity=6000)
    alarms = Alarms()
    log = _open(ff, alarms, segment_bytes=1024, budget_bytes=64 << 10, ram_buffer=50)
    while log.pending == 0:
        _fill(log, 1)
    full_at = log.head
    _fill(log, 10)
    assert log.pending == 11 and log.durable == full_at - 1
    assert alarms.codes() == ["storage_full"]
    assert log.stats()["write_errors"] >= 1
    _check_all(log, 1, log.head)  # RAM records are read too (the center may take them)
    ff.capacity = 100000  # space again
    assert log.flush_pending()
    assert log.pending == 0 and log.durable == log.head
    assert alarms.log[-1][:2] == ("storage_full", False)
    head = log.head
    log.close()
    log = _open(ff.restart("synced"))
    assert log.head == head and log.corrupt_found == 0
    _check_all(log, 1, head)


class _AlarmWriter:
    """Like the alarm engine as the app wires it: a change of an alarm writes its record
    into the log at once (a repeat of an active one writes nothing)."""

    def __init__(self, box):
        self.box = box
        self.active = set()

    def __call__(self, code, active, detail=""):
        if active == (code in self.active):
            return
        if active:
            self.active.add(code)
        else:
            self.active.discard(code)
        self.box[0].append("alarm", 1700000000,
                           {"code": code, "state": "raise" if active else "clear"})


def test_an_alarm_record_written_from_inside_a_failure_stays_in_seq_order():
    # As the app wires it, the log's alarm writes an alarm record into this same log at
    # once: it must queue behind the record whose write failed, never before it.
    ff = FaultFlash()
    box = []
    log = _open(ff, _AlarmWriter(box))
    box.append(log)
    _fill(log, 3)
    ff.fail(ENOSPC, count=1)
    # seq 4 fails; the storage_full record (5) comes from inside the failure, the flash
    # takes it, so 4 is written first, then 5, then the clear (6).
    _fill(log, 1)
    assert log.pending == 0 and log.durable == log.head == 6
    log.close()
    log = _open(ff.restart("synced"))
    got = log.read(1, 100)
    assert [r["seq"] for r in got] == [1, 2, 3, 4, 5, 6]
    states = [(r["type"], r.get("state")) for r in got[4:]]
    assert states == [("alarm", "raise"), ("alarm", "clear")]
    assert log.corrupt_found == 0


def test_losses_from_a_full_ram_buffer_keep_seq_order_with_alarm_records():
    ff = FaultFlash()
    box = []
    log = _open(ff, _AlarmWriter(box), ram_buffer=3)
    box.append(log)
    _fill(log, 2)
    ff.fail(EIO, count=1000)
    _fill(log, 6)  # with the alarm records, more than 3 wait: the oldest are lost
    waiting = [seq for seq, _, _ in log._pending]
    assert len(waiting) == 3 and waiting == sorted(waiting), waiting
    assert log.lost > 0
    ff.fail(EIO, count=0)
    assert log.flush_pending()
    log.close()
    log = _open(ff.restart("synced"))
    seqs = [r["seq"] for r in log.read(1, 100)]
    assert seqs == sorted(seqs) and seqs[:2] == [1, 2] and seqs[-1] == log.head, seqs


def test_full_flash_makes_room_from_acknowledged_segments():
    ff = FaultFlash(capacity=6000)
    alarms = Alarms()
    log = _open(ff, alarms, segment_bytes=1024, budget_bytes=64 << 10, ram_buffer=50)
    _fill(log, 300, ack_lag=3)
    assert log.pending == 0 and log.durable == 300 and log.oldest > 1
    assert "storage_full" in alarms.codes() and "retention_overrun" not in alarms.codes()
    _check_all(log)


def test_full_flash_with_ram_full_drops_the_oldest_segment():
    ff = FaultFlash(capacity=6000)
    alarms = Alarms()
    log = _open(ff, alarms, segment_bytes=1024, budget_bytes=64 << 10, ram_buffer=5)
    _fill(log, 300)
    assert log.lost == 0 and log.oldest > 1
    assert "retention_overrun" in alarms.codes()
    _check_all(log)


def test_write_errors_hold_records_and_never_duplicate_them():
    ff = FaultFlash()
    alarms = Alarms()
    log = _open(ff, alarms, ram_buffer=20)
    _fill(log, 5)
    ff.fail(EIO, count=2, partial=0.5)  # the append's write stores half a frame, then fails
    _fill(log, 2)  # the second one fails to start a new segment past the broken frame
    assert log.pending == 2 and alarms.codes() == ["storage_write_error"]
    assert [r["seq"] for r in log.read(5, 10)] == [5, 6, 7]
    _fill(log, 3)  # the flash works again: everything goes out in order
    assert log.pending == 0 and log.durable == 10
    assert alarms.log[-1][:2] == ("storage_write_error", False)
    log.close()
    log = _open(ff.restart("written"))
    assert log.head == 10 and log.corrupt_found == 0
    _check_all(log, 1, 10)


def test_ram_buffer_is_bounded_and_losses_are_alarmed():
    ff = FaultFlash()
    alarms = Alarms()
    log = _open(ff, alarms, ram_buffer=4)
    _fill(log, 3)
    ff.fail(EIO, count=1000)
    _fill(log, 10)
    assert log.pending == 4 and log.lost == 6
    assert alarms.codes().count("storage_records_lost") == 6
    ff.fail(EIO, count=0)
    assert log.flush_pending()
    assert [r["seq"] for r in log.read(1, 20)] == [1, 2, 3, 10, 11, 12, 13]


def test_center_ahead_of_the_flash_moves_seq_on():
    log = _open(FaultFlash())
    _fill(log, 3)
    log.set_acked(100)  # the center holds up to 99: a flash that lost records
    assert log.head == 99
    assert log.append("diag", 1, {"detail": {}}) == 100
    log.set_acked(50)  # an older acknowledgement changes nothing
    assert log.head == 100 and log.stats()["acked"] == 100


def test_bad_records_are_refused_and_spend_no_seq():
    log = _open(FaultFlash())
    _fill(log, 2)
    raises(RecordError, log.append, "diag", 1, {"seq": 1})
    raises(RecordError, log.append, "diag", 1, {"detail": "x" * 9000})
    raises(RecordError, log.append, "prod", "yesterday", {})
    assert log.head == 2
    _fill(log, 1)
    _check_all(log, 1, 3)


def test_stray_temporary_segment_is_removed_at_start_up():
    ff = FaultFlash()
    log = _open(ff)
    _fill(log, 3)
    log.close()
    image = ff.image()
    image["r.tmp"] = b"GWRL half a segment"
    image["params.a"] = b"not ours"
    ff = FaultFlash(image)
    log = _open(ff)
    assert "r.tmp" not in ff.listdir() and "params.a" in ff.listdir()
    assert log.head == 3


def test_stats():
    ff = FaultFlash()
    log = _open(ff)
    _fill(log, 10)
    s = log.stats()
    for k in ("bytes_used", "segments", "records", "corrupt_found", "pending", "write_errors"):
        assert k in s
    assert s["records"] == 10 and s["segments"] == 1 and s["free_bytes"] > 0
    assert s["bytes_used"] == sum(ff.size(n) for n in _segments(ff))


def test_bad_construction():
    raises(ValueError, RecordLog, FaultFlash(), budget_bytes=1000, segment_bytes=512)
    raises(ValueError, RecordLog, FaultFlash(), ram_buffer=0)
    assert ENOSPC == 28


class _NoRoomFor:
    """gateway.ondemand with no room on the heap for one module's code."""

    def __init__(self, real, module):
        self.real = real
        self.module = module

    def call(self, module, fn, *args):
        if module == self.module:
            raise MemoryError("memory allocation failed, allocating 2048 bytes")
        return self.real.call(module, fn, *args)


def test_a_record_whose_new_segment_finds_no_room_for_its_code_waits_in_ram():
    from gateway.store import recordlog

    ff = FaultFlash()
    alarms = Alarms()
    log = _open(ff, alarms)
    _fill(log, 3)  # the first segment born
    real = recordlog.ondemand
    recordlog.ondemand = _NoRoomFor(real, "gateway.store.rollover")
    try:
        for _ in range(100):  # until one needs a new segment (1 KB each)
            _fill(log, 1)
            if log.pending:
                break
        assert log.pending == 1 and "storage_write_error" in alarms.codes()
        _fill(log, 2)  # behind it, in order
    finally:
        recordlog.ondemand = real
    assert log.pending == 3 and log.flush_pending() and log.pending == 0
    _check_all(log, 1, log.head)
    log.close()
    _check_all(_open(ff.restart("synced")), 1, log.head)
