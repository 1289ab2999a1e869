# The collector driver against a fake slave on a virtual line: the schedule, samples,
# captures, identity, outputs, restarts, a silent collector, and a seeded fuzz of the line.
# Runs under pytest and on MicroPython.
from drivers.collector import Collector
from hal.virtualclock import VirtualClock
from protocols import modbus_rtu as rtu
from tests.core import modbus_slave
from tests.core.fakeline import FakeLine, RegisterSlave, Rng
from tests.core.util import heap_lock


class Rig:
    def __init__(self, baud=115200, slave_fn=None, **kw):
        self.clock = VirtualClock(ticks_start=(1 << 30) - 3000)  # ticks wrap during the test
        self.slave = RegisterSlave(clock=self.clock)
        self.line = FakeLine(self.clock, slave_fn or self.slave)
        self.coll = Collector(self.line, self.clock, baud=baud, **kw)
        self.samples = []
        self.n_samples = 0
        self.last_seq = None
        self.captures = []
        self.events = []
        self.coll.on_sample = self._sample
        self.coll.on_capture = self._capture
        self.coll.on_identity = lambda ident: self.events.append(("identity", ident))
        self.coll.on_restart = lambda uptime: self.events.append(("restart", uptime))

    def _sample(self, s):
        # Checked as it comes; only the latest are kept (MicroPython's heap is small).
        for i in range(4):
            assert s.cells[i] == RegisterSlave.cell(s.block_seq, i), (s.block_seq, i)
        assert s.block_seq != self.last_seq
        self.last_seq = s.block_seq
        self.n_samples += 1
        self.samples.append(
            (s.ticks_ms, s.block_seq, list(s.cells), s.pulses, s.status, s.wave_seq)
        )
        if len(self.samples) > 400:
            self.samples.pop(0)

    def _capture(self, wave, rate):
        assert _capture_ok(wave)
        self.captures.append((list(wave), rate))
        if len(self.captures) > 4:
            self.captures.pop(0)

    def spin(self, ms, step=5):
        c = self.clock
        end = c.ticks_add(c.ticks_ms(), ms)
        while c.ticks_diff(end, c.ticks_ms()) > 0:
            self.coll.run(c.ticks_ms())
            c.advance_ms(step)


def _consistent(samples):
    last = None
    for _, seq, cells, _, _, _ in samples:
        for i in range(4):
            assert cells[i] == RegisterSlave.cell(seq, i), (seq, i)
        if last is not None:
            assert seq != last
        last = seq


def _capture_ok(wave):
    # Every sample from one capture: the wave_seq that produced sample 0 produced them all.
    for ws in range(65536):
        w = RegisterSlave.wave_value
        if w(ws, 0) == wave[0] and w(ws, 1) == wave[1]:
            break
    return all(wave[k] == RegisterSlave.wave_value(ws, k) for k in range(256))


def test_polls_identity_and_capture_at_115200():
    r = Rig(baud=115200)
    r.spin(10000)
    assert 95 <= r.n_samples <= 101  # 10 Hz, nothing displaced at this baud
    _consistent(r.samples)
    ident = [e[1] for e in r.events if e[0] == "identity"]
    assert ident and ident[0]["serial"] == 0x015F90A1 and ident[0]["fw_version"] == 203
    assert ident[0]["sensors"][0] == 0x10001001 and len(ident[0]["sensors"]) == 7
    assert ident[0]["vendor_id"] == 0x4B4A and ident[0]["model"] == 0x0105
    assert r.captures and all(_capture_ok(w) for w, rate in r.captures)
    assert r.captures[0][1] == 1000
    assert r.coll.link.state == "ok" and r.coll.online
    assert r.coll.skipped_polls == 0
    # Poll times keep their 100 ms phase.
    gaps = [r.clock.ticks_diff(b[0], a[0]) for a, b in zip(r.samples, r.samples[1:])]
    assert max(gaps) <= 110 and min(gaps) >= 90


def test_slow_bus_keeps_polling_and_fits_the_capture_in():
    r = Rig(baud=9600)
    assert r.coll.bus_load_pct() == 78
    r.spin(30000)
    _consistent(r.samples)
    assert r.n_samples >= 250  # about 10 Hz less the polls the capture takes
    assert len(r.captures) >= 2 and all(_capture_ok(w) for w, _ in r.captures)
    gaps = [r.clock.ticks_diff(b[0], a[0]) for a, b in zip(r.samples, r.samples[1:])]
    assert max(gaps) <= 450  # a capture chunk never holds the poll off for long


def test_outputs_and_restart():
    r = Rig()
    r.spin(500)
    assert r.coll.outputs == [False, False]
    r.coll.write_output(1, True)
    r.spin(200)
    assert r.slave.coils == [True, False] and r.coll.outputs == [True, False]
    acks = []

    def restart_seen(uptime):
        acks.append((uptime, r.slave.status & 0x100))

    r.coll.on_restart = restart_seen
    r.slave.restart()
    r.spin(1000)
    assert acks == [(0, 0x100)]  # reported once, before the acknowledgement
    assert r.slave.status & 0x100 == 0
    assert (6, 1200, 0xA5A5) in r.slave.writes
    assert r.slave.coils == [True, False]  # DO1 put back after the restart cleared it
    seqs = [s[1] for s in r.samples]
    assert seqs[-1] < 20 and max(seqs) > 1000  # block_seq restarted and was accepted
    raised = False
    try:
        r.coll.write_output(3, True)
    except ValueError:
        raised = True
    assert raised


def test_busy_capture_is_retried_after_20_ms():
    r = Rig()
    r.spin(300)
    times = []
    orig = r.slave.answer

    def busy_wave(req):
        if req[1] == 4 and (req[2] << 8 | req[3]) >= 100 and len(times) < 3:
            times.append(r.clock.ticks_ms())
            b = bytearray(8)
            return [(5, bytes(b[: modbus_slave.build_exception(b, 1, 4, 6)]))]
        frame = orig(req)
        return [(5, frame)] if frame else []

    r.line.slave = busy_wave
    n = len(r.captures)
    r.coll._cap_at = r.clock.ticks_ms()  # a capture now
    r.spin(2000)
    assert len(times) == 3 and all(b - a >= 20 for a, b in zip(times, times[1:]))
    assert len(r.captures) > n and _capture_ok(r.captures[-1][0])
    assert r.coll.counters()["busy"] == 3


def test_capture_is_reread_when_wave_seq_changes():
    r = Rig(baud=9600)
    r.spin(300)
    orig = r.slave.answer
    chunks = []

    def new_wave_after_first_chunk(req):
        frame = orig(req)
        if req[1] == 4 and (req[2] << 8 | req[3]) >= 100:
            chunks.append(req[3])
            if len(chunks) == 1:
                r.slave._wave0 += 1  # a new capture lands between our chunks
        return [(5, frame)] if frame else []

    r.line.slave = new_wave_after_first_chunk
    r.coll._cap_at = r.clock.ticks_ms()
    n = len(r.captures)
    r.spin(3000)
    assert r.coll.capture_rereads == 1 and len(chunks) > 3
    assert len(r.captures) == n + 1 and _capture_ok(r.captures[-1][0])


def test_silent_collector_backs_off_and_recovers():
    r = Rig()
    r.spin(1000)
    addr = r.slave.address
    r.slave.address = 99
    r.spin(20000)
    c = r.coll.counters()
    assert r.coll.link.state == "lost" and not r.coll.online
    assert 15 <= c["requests"] - 10 <= 60  # still asking, but not 3 times every 100 ms
    r.slave.address = addr
    n = len(r.samples)
    polls = r.coll.polls
    while len(r.samples) == n:
        r.spin(10)
    assert r.coll.polls - polls <= 3
    r.spin(3000)
    assert r.coll.link.state == "ok"


def test_absent_port_is_survived():
    r = Rig()
    r.line.broken = True
    r.spin(3000)
    assert r.coll.link.state == "lost" and r.coll.counters()["uart_errors"] >= 3
    r.line.broken = False
    r.spin(3000)
    assert r.samples and r.coll.online


# --- fuzz: the line does everything a noisy RS485 bus does


def _mutate(rng, frame, b):
    """A list of (delay_ms, bytes) for one response, with 0 to 3 faults applied."""
    pieces = [(5, frame)] if frame else []
    for _ in range(rng.below(4)):
        kind = rng.below(12)
        if not pieces:
            pieces = [(5, rng.bytes(rng.below(300)))]
            continue
        d, f = pieces[-1]
        f = bytearray(f)
        if kind == 0 and f:  # bit errors
            for _ in range(1 + rng.below(3)):
                f[rng.below(len(f))] ^= 1 << rng.below(8)
            pieces[-1] = (d, bytes(f))
        elif kind == 1:  # truncated
            pieces[-1] = (d, bytes(f[: rng.below(len(f) + 1)]))
        elif kind == 2:  # garbage before
            pieces.insert(0, (max(0, d - 1 - rng.below(4)), rng.bytes(1 + rng.below(20))))
        elif kind == 3:  # garbage after
            pieces.append((d + rng.below(30), rng.bytes(1 + rng.below(20))))
        elif kind == 4:  # dropped
            pieces = []
        elif kind == 5 and len(f) > 4:  # another slave answers, with a valid CRC
            data = bytes(f[3:-2]) if f[1] <= 4 else bytes(f[2:6])
            n = modbus_slave.build_response(b, 2 + rng.below(200), f[1], data)
            pieces[-1] = (d, bytes(b[:n]))
        elif kind == 6 and len(f) > 4:  # a forged frame from our address with a wrong CRC
            f[-1] ^= 0x5A
            pieces[-1] = (d, bytes(f))
        elif kind == 7:  # USB batches: the frame in pieces 0..20 ms apart
            cut = rng.below(len(f) + 1)
            pieces[-1] = (d, bytes(f[:cut]))
            pieces.append((d + rng.below(21), bytes(f[cut:])))
        elif kind == 8:  # late: after the deadline
            pieces[-1] = (d + 150 + rng.below(300), bytes(f))
        elif kind == 9:  # a long burst before the frame
            pieces.insert(0, (max(0, d - 1), rng.bytes(200 + rng.below(800))))
        elif kind == 10:  # the frame twice
            pieces.append((d + 1, bytes(f)))
        elif kind == 11 and len(f) > 1:  # busy
            n = modbus_slave.build_exception(b, 1, f[1] & 0x7F, 6)
            pieces[-1] = (d, bytes(b[:n]))
    return pieces


def test_fuzz_master_never_takes_a_bad_frame():
    rng = Rng(20240601)
    clock = VirtualClock()
    slave = RegisterSlave(clock=clock)
    b = bytearray(rtu.MAX_ADU)
    noisy = [True]

    def answer(req):
        frame = slave.answer(req)
        return _mutate(rng, frame, b) if noisy[0] else [(5, frame)]

    m = rtu.Master(FakeLine(clock, answer), clock, baud=115200, timeout_ms=50)
    took = failed = 0
    for case in range(3000):
        clock.advance_ms(rng.below(120))
        try:
            off = m.read(1, rtu.READ_INPUT, 0, 25)
        except rtu.ModbusError:
            failed += 1
            continue
        took += 1
        assert m.rx[off - 3] == 1 and m.rx[off - 2] == 4
        seq = int.from_bytes(bytes(m.rx[off : off + 4]), "big")
        cell = int.from_bytes(bytes(m.rx[off + 4 : off + 8]), "big")
        if cell >= 1 << 31:
            cell -= 1 << 32
        assert cell == RegisterSlave.cell(seq, 0), case
    assert took > 500 and failed > 500
    noisy[0] = False
    clock.advance_ms(1000)
    m.read(1, rtu.READ_INPUT, 0, 25)  # clean line: the first request succeeds


def test_fuzz_driver_never_raises_never_lies_and_recovers():
    rng = Rng(7)
    b = bytearray(rtu.MAX_ADU)
    noisy = [True]
    r = Rig(baud=115200, slave_fn=None, capture_s=2)
    slave = r.slave

    def answer(req):
        frame = slave.answer(req)
        return _mutate(rng, frame, b) if noisy[0] else ([(5, frame)] if frame else [])

    r.line.slave = answer
    for burst in range(80):
        noisy[0] = True
        r.spin(2000 + rng.below(2000), step=1 + rng.below(10))
        noisy[0] = False
        n = r.n_samples
        polls = r.coll.polls
        while r.n_samples == n:
            r.spin(5)
        assert r.coll.polls - polls <= 3, burst
    assert r.n_samples > 700 and r.coll.counters()["requests"] > 2500
    assert r.captures
    c = r.coll.counters()
    assert c["crc_errors"] and c["wrong_address"] and c["timeouts"] and c["busy"]


class _Replaying:
    """The fake line until `frame` is set; then every request is answered with that
    frame, copied byte by byte: nothing allocated on the line's side."""

    def __init__(self, line):
        self.line = line
        self.frame = None
        self.pos = 0

    def write(self, data):
        if self.frame is None:
            return self.line.write(data)
        self.pos = 0
        return len(data)

    def readinto(self, buf, timeout_ms):
        f = self.frame
        if f is None:
            return self.line.readinto(buf, timeout_ms)
        n = 0
        while self.pos < len(f) and n < len(buf):
            buf[n] = f[self.pos]
            n += 1
            self.pos += 1
        return n

    def discard_input(self):
        return 0 if self.frame is not None else self.line.discard_input()


def test_one_poll_step_does_not_allocate():
    # The 10 Hz bus step, from run() to the Sample handed on: any allocation under
    # heap_lock raises MemoryError. The measurement's side is proven in test_measurement.py
    # and the diagnosis' in test_diag.py.
    lock, unlock = heap_lock()
    clock = VirtualClock()
    slave = RegisterSlave(clock=clock)
    line = _Replaying(FakeLine(clock, slave))
    coll = Collector(line, clock, baud=115200, identity_s=3600, capture_s=3600)
    got = [0]

    def on_sample(s):
        got[0] += 1

    coll.on_sample = on_sample
    end = clock.ticks_add(clock.ticks_ms(), 5000)  # identity and the first capture done
    while clock.ticks_diff(end, clock.ticks_ms()) > 0:
        coll.run(clock.ticks_ms())
        clock.advance_ms(5)
    req = bytearray(8)
    rtu.build_read(req, 1, rtu.READ_INPUT, 0, 25)
    for locked in (False, True):
        line.frame = None
        polls = coll.polls
        while coll.polls == polls:  # a poll on the fake line: the next is a period away
            clock.advance_ms(5)
            coll.run(clock.ticks_ms())
        clock.advance_ms(coll.period_ms)  # that one is due now, with a new block
        line.frame = b"".join(chunk for _, chunk in slave(bytes(req)))
        before = got[0]
        now = clock.ticks_ms()
        if locked:
            lock()
        try:
            coll.run(now)
        finally:
            if locked:
                unlock()
        assert got[0] == before + 1
