# The signal collector on RS485 (../shared/specs/signal-collector.md): the one supervisor of
# that link. A loop job; each run() does at most one Modbus transaction, chosen so that the
# fast block is read every poll period and the slower work (vibration capture, identity,
# output writes, the restart acknowledgement) fits into the bus time the baud rate leaves.
import struct
from array import array

from drivers.link import LinkHealth
from hal.compat import const
from protocols import modbus_rtu as rtu

_FAST_REGS = const(25)
_FAST_FMT = const(">IiiiiIIHHHHhIHHHH")
_REG_WAVE = const(100)
_WAVE_LEN = const(256)
_REG_IDENT = const(1000)
_IDENT_REGS = const(5)
_REG_SENSORS = const(1010)
_SENSOR_REGS = const(14)
_REG_RESTART_ACK = const(1200)
_RESTART_ACK = const(0xA5A5)
_STATUS_RESTARTED = const(0x100)

# The capture in three reads of distinct lengths: a late answer to one can never pass for another.
_CHUNKS = ((0, 125), (125, 124), (249, 7))
_CAPTURE_TRIES = const(3)
_CAPTURE_RETRY_MS = const(1000)
_IDENT_RETRY_MS = const(10000)
_BUSY_RETRY_MS = const(20)
_BUSY_TRIES = const(5)
_TURNAROUND_MS = const(5)
_FIRST_CAPTURE_S = const(4)  # the collector captures every 2 s
_STALE_LIMIT = const(3)  # backwards block_seq without a restart: dropped this often, then believed

_T_POLL = const(1)
_T_ACK = const(2)
_T_DO1 = const(3)
_T_DO2 = const(4)
_T_IDENT = const(5)
_T_SENSORS = const(6)
_T_COILS = const(7)
_T_CHUNK = const(8)  # + chunk index


class Sample:
    """The latest fast block. One instance, refilled by every good poll."""

    def __init__(self):
        self.ticks_ms = 0
        self.block_seq = 0
        self.cells = [0, 0, 0, 0]
        self.pulses = 0
        self.freq_centihz = 0
        self.vib_rms_01mv = 0
        self.di = 0
        self.status = 0
        self.supply_mv = 0
        self.temp_01c = 0
        self.uptime_s = 0
        self.config_counter = 0
        self.wave_seq = 0
        self.wave_len = 0
        self.wave_rate = 0


class Collector:
    name = "collector"

    def __init__(
        self,
        uart,
        clock,
        address=1,
        baud=9600,
        poll_hz=10.0,
        timeout_ms=100,
        retries=2,
        identity_s=300,
        capture_s=10,
    ):
        self._clock = clock
        self.address = address
        self._m = rtu.Master(uart, clock, baud, timeout_ms)
        self.link = LinkHealth(clock, retries)
        self.period_ms = max(1, int(1000 / poll_hz + 0.5))
        self._identity_ms = identity_s * 1000
        self._capture_ms = capture_s * 1000
        self.sample = Sample()
        self.wave = array("h", bytes(2 * _WAVE_LEN))
        self.identity = None
        self.outputs = [False, False]  # last confirmed states of DO1, DO2
        self._want = [None, None]  # None: the app has not asked, leave the output as it is
        self._write_pending = [False, False]
        self.on_sample = None
        self.on_capture = None
        self.on_identity = None
        self.on_restart = None

        def cost(resp_len):
            return (rtu.bus_time_us(baud, 8, resp_len, _TURNAROUND_MS) + 999) // 1000

        self.poll_cost_ms = cost(rtu.response_length(rtu.READ_INPUT, _FAST_REGS))
        self._cost = {
            _T_IDENT: cost(5 + 2 * _IDENT_REGS),
            _T_SENSORS: cost(5 + 2 * _SENSOR_REGS),
            _T_COILS: cost(6),
        }
        for k in range(len(_CHUNKS)):
            self._cost[_T_CHUNK + k] = cost(5 + 2 * _CHUNKS[k][1])
        # Schedule state
        self._next_poll = None
        self._have_sample = False
        self._stale_run = 0
        self._restart_seen = False
        self._ack_pending = False
        self._urgent_hold = [None, None, None]  # ack, DO1, DO2: after failing, wait a period
        self._ident_step = 0  # 0 idle, else the task to do next
        self._ident_at = None
        self._cap_step = 0  # 0 idle, 1..3 chunk to read next, 4 waiting to confirm wave_seq
        self._cap_at = None
        self._cap_seq = 0
        self._cap_tries = 0
        self._bg_since = None
        self._displaced = False
        self._task = 0
        self._fails = 0
        self._busy = 0
        self._hold = None  # (task, until) after exception 06
        self.polls = 0
        self.samples = 0
        self.repeats = 0
        self.stale = 0
        self.skipped_polls = 0
        self.captures = 0
        self.capture_rereads = 0
        self.identities = 0
        self.restarts = 0

    # --- public

    @property
    def max_run_ms(self):
        """The longest one run() may hold the loop: the longest transaction's bus time,
        the response deadline and the stale-byte flush. The loop does not count lateness
        within this as an overrun: it is the bus, not the gateway, at work."""
        return max(self._cost.values()) + self._m.timeout_ms + self._m.flush_max_ms

    @property
    def online(self):
        return self.link.state != "lost"

    def bus_load_pct(self):
        """Share of the bus the fast poll alone takes at this baud and poll rate."""
        return 100 * self.poll_cost_ms // self.period_ms

    def write_output(self, do, on):
        """Queue a write of DO1 or DO2; `outputs` shows it once the collector confirmed it."""
        if do not in (1, 2):
            raise ValueError("no output DO%s (1 or 2)" % do)
        self._want[do - 1] = bool(on)
        self._write_pending[do - 1] = True

    def link_counters(self):
        """The bus's counters and the link's state."""
        c = self._m.counters()
        c["state"] = self.link.state
        c["consecutive_failures"] = self.link.consecutive_failures
        return c

    def counters(self):
        c = self.link_counters()
        c["polls"] = self.polls
        c["samples"] = self.samples
        c["repeats"] = self.repeats
        c["stale"] = self.stale
        c["skipped_polls"] = self.skipped_polls
        c["captures"] = self.captures
        c["capture_rereads"] = self.capture_rereads
        c["identities"] = self.identities
        c["restarts"] = self.restarts
        return c

    def start(self):
        now = self._clock.ticks_ms()
        self._next_poll = now
        self._ident_at = now
        self._cap_at = now

    def run(self, now_ms):
        if self._next_poll is None:
            self.start()
        link = self.link
        if not link.ready(now_ms):
            return
        task = self._pick(now_ms)
        if not task:
            return
        h = self._hold
        if h is not None:
            if h[0] == task and self._clock.ticks_diff(now_ms, h[1]) < 0:
                return
            self._hold = None
        if task != self._task:
            self._task = task
            self._fails = self._busy = 0
        if task == _T_POLL:
            self.polls += 1
        try:
            self._do(task)
        except rtu.DeviceBusy:
            link.answered()
            self._busy += 1
            if self._busy > _BUSY_TRIES:
                self._give_up(task, now_ms)
            else:
                self._hold = (task, self._clock.ticks_add(now_ms, _BUSY_RETRY_MS))
            return
        except rtu.ModbusException:
            # The collector refuses the request itself: asking again gives the same answer.
            link.answered()
            self._give_up(task, now_ms)
            return
        except rtu.ModbusError as e:
            link.failed(isinstance(e, (rtu.ResponseTimeout, rtu.PortError)))
            self._fails += 1
            if self._fails > link.retries:
                self._give_up(task, now_ms)
            return
        link.answered()
        self._task = 0
        if task == _T_POLL:
            self._poll_done(now_ms)

    # --- the schedule

    def _pick(self, now):
        c = self._clock
        hold = self._urgent_hold
        for k in range(3):
            if hold[k] is not None and c.ticks_diff(now, hold[k]) >= 0:
                hold[k] = None
        if self._ack_pending and hold[0] is None:
            return _T_ACK
        if self._write_pending[0] and hold[1] is None:
            return _T_DO1
        if self._write_pending[1] and hold[2] is None:
            return _T_DO2
        bg = self._background(now)
        to_poll = c.ticks_diff(self._next_poll, now)
        if to_poll <= 0:
            starved = bg and c.ticks_diff(now, self._bg_since) >= 2 * self.period_ms
            if starved and not self._displaced:
                # The bus is too slow to fit this read between polls: it takes a poll's turn.
                self._displaced = True
                self._skip_poll(now)
                return bg
            return _T_POLL
        if bg and to_poll >= self._cost[bg]:
            return bg
        return 0

    def _background(self, now):
        """The capture chunk or identity read due now, or 0."""
        c = self._clock
        task = 0
        if self._ident_step:
            task = self._ident_step
        elif c.ticks_diff(now, self._ident_at) >= 0:
            self._ident_step = task = _T_IDENT
        elif 1 <= self._cap_step <= len(_CHUNKS):
            task = _T_CHUNK + self._cap_step - 1
        elif not self._cap_step and self._capture_ready() and c.ticks_diff(now, self._cap_at) >= 0:
            self._cap_step = 1
            self._cap_seq = self.sample.wave_seq
            self._cap_tries = 0
            task = _T_CHUNK
        if not task:
            self._bg_since = None
        elif self._bg_since is None:
            self._bg_since = now
        return task

    def _capture_ready(self):
        # wave_seq 0 in the first seconds after a (re)start: no capture made yet, empty registers.
        s = self.sample
        return self._have_sample and (s.wave_seq or s.uptime_s >= _FIRST_CAPTURE_S)

    def _skip_poll(self, now):
        self._next_poll = self._clock.ticks_add(self._next_poll, self.period_ms)
        self.skipped_polls += 1
        self._catch_up(now)

    def _poll_done(self, now):
        self._displaced = False
        self._next_poll = self._clock.ticks_add(self._next_poll, self.period_ms)
        self._catch_up(self._clock.ticks_ms())

    def _catch_up(self, now):
        # Fallen a period or more behind (a slow answer, back-off): skip, keep the phase.
        c = self._clock
        late = c.ticks_diff(now, self._next_poll)
        if late >= 0:
            k = late // self.period_ms + 1
            self._next_poll = c.ticks_add(self._next_poll, k * self.period_ms)
            self.skipped_polls += k

    def _give_up(self, task, now):
        c = self._clock
        self._task = 0
        if task == _T_POLL:
            self._poll_done(now)
        elif task in (_T_ACK, _T_DO1, _T_DO2):
            self._urgent_hold[task - _T_ACK] = c.ticks_add(now, self.period_ms)
        elif task >= _T_CHUNK:
            self._cap_step = 0
            self._cap_at = c.ticks_add(now, _CAPTURE_RETRY_MS)
        else:
            self._ident_step = 0
            self._ident_at = c.ticks_add(now, _IDENT_RETRY_MS)
        self._bg_since = None

    # --- the transactions

    def _do(self, task):
        m = self._m
        a = self.address
        rx = m.rx
        if task == _T_POLL:
            off = m.read(a, rtu.READ_INPUT, 0, _FAST_REGS)
            self._take_sample(struct.unpack_from(_FAST_FMT, rx, off))
        elif task == _T_ACK:
            m.write_register(a, _REG_RESTART_ACK, _RESTART_ACK)
            self._ack_pending = False
            self._restart_seen = False
        elif task == _T_DO1 or task == _T_DO2:
            i = task - _T_DO1
            on = self._want[i]
            m.write_coil(a, i, on)
            self.outputs[i] = on
            self._write_pending[i] = self._want[i] != on
        elif task >= _T_CHUNK:
            k = task - _T_CHUNK
            first, n = _CHUNKS[k]
            off = m.read(a, rtu.READ_INPUT, _REG_WAVE + first, n)
            w = self.wave
            for i in range(n):
                w[first + i] = struct.unpack_from(">h", rx, off + 2 * i)[0]
            self._cap_step = k + 2
            self._bg_since = None
        elif task == _T_IDENT:
            off = m.read(a, rtu.READ_HOLDING, _REG_IDENT, _IDENT_REGS)
            vendor, model, serial, fw = struct.unpack_from(">HHIH", rx, off)
            self._ident = {"vendor_id": vendor, "model": model, "serial": serial, "fw_version": fw}
            self._ident_step = _T_SENSORS
        elif task == _T_SENSORS:
            off = m.read(a, rtu.READ_HOLDING, _REG_SENSORS, _SENSOR_REGS)
            self._ident["sensors"] = list(struct.unpack_from(">7I", rx, off))
            self._ident_step = _T_COILS
        elif task == _T_COILS:
            off = m.read(a, rtu.READ_COILS, 0, 2)
            bits = rx[off]
            for i in range(2):
                self.outputs[i] = bool(bits >> i & 1)
                if self._want[i] is not None and self.outputs[i] != self._want[i]:
                    self._write_pending[i] = True  # e.g. reset by a collector restart
            self._ident_step = 0
            self._ident_at = self._clock.ticks_add(self._clock.ticks_ms(), self._identity_ms)
            self._bg_since = None
            self.identity = self._ident
            self.identities += 1
            if self.on_identity is not None:
                self.on_identity(self.identity)

    def _take_sample(self, v):
        s = self.sample
        seq = v[0]
        status = v[9]
        if self._have_sample:
            d = (seq - s.block_seq) & 0xFFFFFFFF
            if d == 0:
                self.repeats += 1
                return
            if d >= 0x80000000 and not status & _STATUS_RESTARTED and v[12] >= s.uptime_s:
                # Older than what we have, and no restart: a late answer. Believe it only
                # if it keeps coming (someone else acknowledged a restart).
                if self._stale_run < _STALE_LIMIT:
                    self._stale_run += 1
                    self.stale += 1
                    return
        self._stale_run = 0
        self._have_sample = True
        s.ticks_ms = self._clock.ticks_ms()
        s.block_seq = seq
        cells = s.cells
        cells[0] = v[1]
        cells[1] = v[2]
        cells[2] = v[3]
        cells[3] = v[4]
        s.pulses = v[5]
        s.freq_centihz = v[6]
        s.vib_rms_01mv = v[7]
        s.di = v[8]
        s.status = status
        s.supply_mv = v[10]
        s.temp_01c = v[11]
        s.uptime_s = v[12]
        s.config_counter = v[13]
        s.wave_seq = v[14]
        s.wave_len = v[15]
        s.wave_rate = v[16]
        self.samples += 1
        if status & _STATUS_RESTARTED:
            if not self._restart_seen:
                self._restart_seen = True
                self._ack_pending = True
                self.restarts += 1
                # Maybe another unit: read its identity and outputs again soon.
                self._ident_at = self._clock.ticks_ms()
                if self.on_restart is not None:
                    self.on_restart(s.uptime_s)
        self._check_capture(s)
        if self.on_sample is not None:
            self.on_sample(s)

    def _check_capture(self, s):
        step = self._cap_step
        if not step:
            return
        if s.wave_seq == self._cap_seq:
            if step > len(_CHUNKS):
                self._cap_step = 0
                self._cap_at = self._clock.ticks_add(s.ticks_ms, self._capture_ms)
                self.captures += 1
                if self.on_capture is not None:
                    self.on_capture(self.wave, s.wave_rate)
            return
        # A new capture replaced the registers while we read them: start over.
        self.capture_rereads += 1
        self._cap_tries += 1
        if self._cap_tries >= _CAPTURE_TRIES or not self._capture_ready():
            self._cap_step = 0
            self._cap_at = self._clock.ticks_add(s.ticks_ms, _CAPTURE_RETRY_MS)
        else:
            self._cap_step = 1
            self._cap_seq = s.wave_seq
