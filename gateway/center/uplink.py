# The uplink job: uploads the record log to the center station from the breakpoint and
# carries the center's commands (../shared/specs/center-station.md, docs/uplink.md).
#
#   idle --start()--> backoff --due--> connecting --TCP up, HELLO--> hello
#   hello --WELCOME--> online;  any error, silence or reset --> backoff (1 s doubling to
#   backoff_max_s, with jitter) --> connecting ...
#
# Every step is non-blocking: run() reads what has arrived, writes what the kernel takes,
# seals at most what fits in the window, and returns. A center that accepts and then
# reads nothing, or answers one byte a minute, only leaves bytes waiting in a bounded
# buffer until the silence rule ends the connection.
import json

from gateway import ondemand
from hal import crypto
from hal.compat import const
from protocols import center_link as cl

_RX_BUDGET = const(65536)  # bytes read per run at most
_MAX_CONTROL = const(8)  # RESULT/PONG/PING frames waiting; reading stops while full
_BACKOFF_FIRST_MS = const(1000)
_MIN_BATCH = const(1)  # a fragmented small heap may hold one record's frame only
_LINKCHECK = const("gateway.center.linkcheck")  # the rare steps, loaded when needed


# A center that ends this many connections in a row between our HELLO and its WELCOME
# (or answers with a WELCOME that does not verify) does not take our key: no retry can
# fix that, so center_auth_failed is raised then, not after upload_down's half hour.
_AUTH_FAILS_ALARM = const(3)


class _LinkDown(Exception):
    """The connection must end (our side's finding); the message says why."""


class Uplink:
    name = "uplink"

    def __init__(self, connect, device_id, key, log, commands, clock, fw="", ping_s=10,
                 silence_s=30, backoff_max_s=60, max_in_flight=8, batch=256, alarm=None,
                 emit=None, on_breakpoint=None, budget_ms=20):
        if not 1 <= batch <= 256 or not 1 <= max_in_flight <= 8:
            raise ValueError("batch must be 1..256 and max_in_flight 1..8 (the spec's limits)")
        self._connect_fn = connect
        self.device_id = device_id
        self._keys = cl.Keys(key)
        self._log = log
        self._commands = commands
        self._clock = clock
        self.fw = fw
        self._ping_ms = ping_s * 1000
        self._silence_ms = silence_s * 1000
        self._backoff_max_ms = backoff_max_s * 1000
        self._max_in_flight = max_in_flight
        self._batch = batch
        # Records per frame in use: halves while reading and sealing one frame takes more
        # than budget_ms (a slow board), grows back while it takes under a quarter of it.
        # Sealing further frames in the same run also stops after budget_ms.
        self._batch_now = batch
        self._batch_max = batch  # lowered for good when the heap could not hold a frame
        self._budget_ms = budget_ms
        self._alarm = alarm
        self._emit = emit
        self._on_breakpoint = on_breakpoint

        self.state = "idle"
        self._acked = 0  # the breakpoint: the center durably holds every seq below it
        self._gap = None  # (first, last) seqs lost to retention, reported once
        self._gap_active = False
        self._backoff_ms = _BACKOFF_FIRST_MS
        self._retry_at = None
        self._auth_fails = 0  # connections in a row the center ended before WELCOME
        self._reset_link()
        # stats
        self.sent = 0
        self.stand_ins = 0
        self.reconnects = 0
        self.last_error = None
        # The last failure: its kind ("dns", "refused", "unreachable", "timeout", "closed",
        # "auth", "protocol", "network", "memory", "local": our own log), last_error says
        # the detail, failure_t
        # when (unix s). They stay after the link is up again, for status and the panel.
        self.failure = None
        self.failure_t = None
        self.center_offset_s = None

    def _reset_link(self):
        self._conn = None
        self._session = None
        self._reader = None
        self._tx = None  # the frame being written, and how much of it went
        self._tx_off = 0
        self._tx_moved = 0  # when the kernel last took bytes of it
        self._control = []  # (type, plaintext object) waiting to be sealed and sent
        self._result_waiting = False  # a COMMAND's RESULT not yet sealed: read no more
        self._records_turn = False  # the next frame is RECORDS if any is ready
        self._in_flight = []  # end seq (exclusive) of each RECORDS frame not yet ACKed
        self._send_next = 0
        self._ack_floor = 0
        self._since = 0
        self._last_rx = 0
        self._last_tx = 0
        self._ack_wait_since = 0

    # ---- persistence -------------------------------------------------------------------
    def snapshot(self):
        return {"acked": self._acked, "gap": list(self._gap) if self._gap else None}

    def restore(self, state):
        """Take back a snapshot. The log is told the breakpoint again (set_acked takes the
        same value twice) so retention knows it after a restart. A seq out of the spec's
        range (damage, or an older firmware's flash) is ignored: it would move the log's
        head past what a record can carry."""
        acked = state.get("acked")
        if cl.seq_ok(acked) and acked > self._acked:
            self._acked = acked
            self._log.set_acked(acked)
        gap = state.get("gap")
        if isinstance(gap, list) and len(gap) == 2 and cl.seq_ok(gap[0]) and cl.seq_ok(gap[1]):
            self._gap = (gap[0], gap[1])

    @property
    def breakpoint(self):
        return self._acked

    # ---- job ---------------------------------------------------------------------------
    def start(self):
        if self.state == "idle":
            self.state = "backoff"
            self._retry_at = None  # connect at the next run

    def stop(self):
        if self._conn is not None:
            self._conn.close()
        self._reset_link()
        self.state = "idle"

    def stats(self):
        log = self._log
        return {
            "state": self.state,
            "connected": self.state == "online",
            "sent": self.sent,
            "acked": self._acked,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "failure": self.failure,
            "failure_t": self.failure_t,
            "backlog": max(0, log.head + 1 - max(self._acked, log.oldest)),
            "in_flight": len(self._in_flight),
            "stand_ins": self.stand_ins,
            "batch": self._batch_now,
            "center_offset_s": self.center_offset_s,
        }

    def run(self, now_ms):
        st = self.state
        if st == "idle":
            return
        if st == "backoff":
            if self._retry_at is None or self._clock.ticks_diff(now_ms, self._retry_at) >= 0:
                self._open(now_ms)
            return
        try:
            if st == "connecting":
                if not self._conn.ready():
                    if self._clock.ticks_diff(now_ms, self._since) > self._silence_ms:
                        raise _LinkDown("connect: no answer in %d s"
                                        % (self._silence_ms // 1000))
                    return
                self._send_hello(now_ms)
            self._receive(now_ms)
            if self.state == "online":
                self._queue_outbox()
            self._pump_tx(now_ms)
            self._check_timers(now_ms)
        except cl.FrameError as e:
            self._fail(now_ms, "center frame refused: %s" % e, e.code)
        except OSError as e:  # hal.net.NetError and any socket error: the link is gone
            self._fail(now_ms, str(e) or repr(e))
        except _LinkDown as e:
            self._fail(now_ms, str(e))
        except MemoryError:  # a large frame from the center on a small heap: end this link
            self._fail(now_ms, "out of memory handling a frame from the center")

    # ---- connection --------------------------------------------------------------------
    def _open(self, now):
        self._reset_link()
        try:
            self._conn = self._connect_fn()
        except OSError as e:
            self._fail(now, str(e) or repr(e))
            return
        self.state = "connecting"
        self._since = now

    def _fail(self, now, reason, code=None):
        try:
            kind = ondemand.call(_LINKCHECK, "kind", reason, self.state == "hello")
        except MemoryError:
            kind = "memory"
        if kind == "auth":
            self._auth_fails += 1
            if self._auth_fails >= _AUTH_FAILS_ALARM and self._alarm is not None:
                self._alarm("center_auth_failed", True, reason)
        conn = self._conn
        if conn is not None:
            if code is not None and self.state == "online" and self._tx is None:
                # Tell the center why, if the socket takes it at once; then close regardless.
                try:
                    conn.send(self._session.seal(cl.ERROR, {"code": code, "message": reason}))
                except OSError:
                    pass
            conn.close()
        self._reset_link()
        self.state = "backoff"
        self.reconnects += 1
        self.last_error = reason
        self.failure = kind
        self.failure_t = int(self._clock.time())
        base = self._backoff_ms
        jitter = (base // 2) * (crypto.random_bytes(1)[0]) // 256
        self._retry_at = self._clock.ticks_add(now, base // 2 + jitter)
        self._backoff_ms = min(base * 2, self._backoff_max_ms)

    def _send_hello(self, now):
        log = self._log
        self._session, self._tx = ondemand.call(_LINKCHECK, "hello", self._keys, self.device_id,
                                                self.fw, log.head, log.oldest,
                                                int(self._clock.time()))
        self._reader = cl.FrameReader()
        self._tx_off = 0
        self.state = "hello"
        self._since = self._last_rx = self._last_tx = self._tx_moved = now

    # ---- receiving ---------------------------------------------------------------------
    def _receive(self, now):
        budget = _RX_BUDGET
        reader = self._reader
        # A COMMAND's RESULT is sealed before the next COMMAND is read (what is not read
        # waits in the kernel): one command's RESULT on the heap at a time, and RECORDS
        # frames go out between RESULTs however many commands the center queues.
        while budget > 0 and len(self._control) < _MAX_CONTROL and not self._result_waiting:
            buf = reader.buffer()
            if len(buf) > budget:
                buf = buf[:budget]
            n = self._conn.recv_into(buf)
            if not n:
                return
            budget -= n
            frame = reader.advance(n)
            if frame is not None:
                self._on_frame(frame, now)

    def _on_frame(self, frame, now):
        msg = self._session.open(frame)  # tag, counter, device id: or FrameError
        self._last_rx = now
        t = frame.type
        if t == cl.ERROR:
            raise _LinkDown("center error %s: %s" % (msg.get("code"),
                                                                msg.get("message")))
        if self.state == "hello":
            if t != cl.WELCOME:
                raise cl.FrameError("unexpected", "%s before WELCOME" % _name(t))
            self._on_welcome(msg, now)
        elif t == cl.ACK:
            self._on_ack(msg, now)
        elif t == cl.COMMAND:
            self._on_command(msg)
        elif t == cl.PING:
            if (cl.PONG, {}) not in self._control:
                self._control.append((cl.PONG, {}))
        elif t != cl.PONG:
            raise cl.FrameError("unexpected", "%s from the center" % _name(t))

    def _on_welcome(self, msg, now):
        log = self._log
        nonce_c, nxt, t, refused, events, lost = ondemand.call(
            _LINKCHECK, "check_welcome", msg, log.head, log.oldest, self._acked, self._gap)
        self._session.nonce_c = nonce_c
        self.state = "online"  # from here on an ERROR frame can tell the center why
        self._since = now
        alarm = self._alarm or _no_alarm
        alarm("center_protocol_error", refused is not None, refused or "")
        if refused:
            raise cl.FrameError("bad_next", refused)  # the breakpoint stays as it is
        self._auth_fails = 0
        alarm("center_auth_failed", False, "")
        if t is not None:
            self.center_offset_s = t - self._clock.time()
        if nxt > self._acked:
            self._set_acked(nxt)  # beyond the head (a new flash adopts it): the head moves on
        if self._emit is not None:
            for fields in events:
                self._emit("event", fields)
        if lost:
            if not self._gap_active:
                alarm("upload_gap", True, "records %d..%d were overwritten before upload" % lost)
            self._gap = lost
            self._gap_active = True
        self._ack_floor = nxt
        self._send_next = start = max(nxt, log.oldest)
        self._queue_outbox()
        if start > log.head and not self._control:
            # Nothing to send: a PING proves at once that this connection is ours (the
            # center keeps our previous one until a frame of this one verifies).
            self._control.append((cl.PING, {}))

    def _queue_outbox(self):
        """Queue the final RESULTs of commands that were applied after their first answer."""
        commands = self._commands
        if commands is None or not commands.unsent:
            return
        for res in commands.outbox():
            if len(self._control) >= _MAX_CONTROL:
                return
            self._control.append((cl.RESULT, res))
            commands.mark_sent(res["id"])

    def _on_ack(self, msg, now):
        nxt = msg.get("next")
        if not cl.seq_ok(nxt) or nxt < self._ack_floor or nxt > self._send_next:
            raise cl.FrameError("bad_ack", "ACK next %r outside %d..%d"
                                % (nxt, self._ack_floor, self._send_next))
        self._ack_floor = nxt
        flight = self._in_flight
        while flight and flight[0] <= nxt:
            flight.pop(0)
        self._ack_wait_since = now
        self._backoff_ms = _BACKOFF_FIRST_MS  # the link is doing its work
        if nxt > self._acked:
            self._set_acked(nxt)
        if self._gap_active and nxt > self._gap[1] + 1:
            self._gap_active = False
            if self._alarm is not None:
                self._alarm("upload_gap", False, "upload resumed after the gap")

    def _set_acked(self, nxt):
        self._acked = nxt
        self._log.set_acked(nxt)
        if self._on_breakpoint is not None:
            self._on_breakpoint(nxt)

    def _on_command(self, msg):
        if self._commands is None:
            res = {"id": msg.get("id"), "ok": False, "error": "commands are not available"}
        else:
            try:
                res = self._commands.submit(msg)
            except MemoryError:
                # No room to load the command code: not taken in, the same id may come again.
                res = {"id": msg.get("id"), "ok": False,
                       "error": "out of memory: not taken in; send it again"}
        self._control.append((cl.RESULT, res))
        self._result_waiting = True

    # ---- sending -----------------------------------------------------------------------
    def _pump_tx(self, now):
        clock = self._clock
        started = clock.ticks_ms()
        sealed = False
        while True:
            if self._tx is not None:
                tx = self._tx
                n = self._conn.send(memoryview(tx)[self._tx_off :])
                if n:
                    self._tx_off += n
                    self._tx_moved = now
                if self._tx_off < len(tx):
                    return  # the kernel's buffer is full; the rest goes next run
                self._tx = None
            if self.state != "online":
                return
            # RECORDS and control frames take turns: commands never starve the upload.
            if (self._records_turn or not self._control) and not (
                    sealed and clock.ticks_diff(clock.ticks_ms(), started) >= self._budget_ms):
                if self._seal_records(now):
                    sealed = True
                    self._records_turn = False
                    self._tx_off = 0
                    self._last_tx = self._tx_moved = now
                    continue
            if not self._control:
                return
            ftype, obj = self._control.pop(0)
            self._tx = self._seal_control(ftype, obj)
            self._records_turn = True
            self._tx_off = 0
            self._last_tx = self._tx_moved = now

    def _seal_control(self, ftype, obj):
        if ftype != cl.RESULT:
            return self._session.seal(ftype, obj)
        self._result_waiting = False
        try:
            return self._session.seal(ftype, obj)
        except MemoryError:  # a large RESULT: the center hears why and may ask again
            return self._session.seal(ftype, {"id": obj.get("id"), "ok": False, "error":
                                              "out of memory sending the result; ask again"})

    def _seal_records(self, now):
        """Put the next RECORDS frame in _tx; False if the window is full or nothing waits."""
        if len(self._in_flight) >= self._max_in_flight:
            return False
        log = self._log
        seq = self._send_next
        if seq > log.head:
            return False
        if seq < log.oldest:
            raise _LinkDown("retention overtook the breakpoint at %d" % seq)
        clock = self._clock
        t0 = clock.ticks_ms()
        try:
            recs = self._contiguous(log.read(seq, self._batch_now), seq, log.head)
            plaintext, n = _records_plaintext(recs)
            if n == 0:
                raise _LinkDown("record %d is too large for one frame" % seq)
            self._tx = self._session.seal(cl.RECORDS, plaintext)
        except MemoryError:
            # A board's heap could not hold the frame: smaller frames from now on.
            recs = plaintext = None
            self.last_error = "out of memory sealing %d records" % self._batch_now
            if self._batch_now > _MIN_BATCH:
                self._batch_now = self._batch_max = max(self._batch_now // 2, _MIN_BATCH)
                print("uplink: %s; at most %d a frame from now on" % (self.last_error,
                                                                     self._batch_now))
            return False
        took = clock.ticks_diff(clock.ticks_ms(), t0)
        if took > self._budget_ms and self._batch_now > _MIN_BATCH:
            self._batch_now = max(self._batch_now // 2, _MIN_BATCH)
        elif (took * 4 < self._budget_ms and len(recs) == self._batch_now
              and self._batch_now < self._batch_max):
            self._batch_now = min(self._batch_now * 2, self._batch_max)
        if not self._in_flight:
            self._ack_wait_since = now
        self._send_next = seq + n
        self._in_flight.append(self._send_next)
        self.sent += n
        return True

    def _contiguous(self, recs, seq, head):
        """The records from seq on, with a stand-in for each seq the log skipped (damaged
        on flash: the log reports storage_corrupt): a frame must be contiguous, and the
        center should see the loss rather than wait for a record that will never come."""
        if recs and recs[0].get("seq", seq) < seq:
            raise _LinkDown("log returned seq %r for %d" % (recs[0].get("seq"), seq))
        last = recs[-1]["seq"] if recs else min(head, seq + self._batch_now - 1)
        if len(recs) == last - seq + 1:
            return recs
        recs, made = ondemand.call(_LINKCHECK, "stand_ins", recs, seq, last, self._batch_now,
                                   int(self._clock.time()))
        self.stand_ins += made
        return recs

    def _check_timers(self, now):
        if self.state not in ("hello", "online"):
            return
        diff = self._clock.ticks_diff
        if diff(now, self._last_rx) > self._silence_ms:
            raise _LinkDown("silence: no frame from the center for %d s"
                            % (self._silence_ms // 1000))
        if self._tx is not None and diff(now, self._tx_moved) > self._silence_ms:
            raise _LinkDown("center reads nothing: send stalled for %d s"
                            % (self._silence_ms // 1000))
        if self.state != "online":
            return
        if self._in_flight and diff(now, self._ack_wait_since) > self._silence_ms:
            raise _LinkDown("no ACK for %d s" % (self._silence_ms // 1000))
        if diff(now, self._since) >= self._silence_ms:
            self._backoff_ms = _BACKOFF_FIRST_MS  # connection has held: start over at 1 s
        if self._tx is None and not self._control and diff(now, self._last_tx) >= self._ping_ms:
            self._control.append((cl.PING, {}))
            self._pump_tx(now)


def _records_plaintext(recs):
    """(plaintext, count) for as many records as fit in one frame."""
    parts = [json.dumps(r) for r in recs]
    n = len(parts)
    while n:
        text = ('{"records": [' + ", ".join(parts[:n]) + "]}").encode()
        if len(text) <= cl.MAX_PLAINTEXT:
            return text, n
        n //= 2
    return b"", 0


def _no_alarm(code, active, detail):
    pass


def _name(ftype):
    return cl.NAMES.get(ftype, "type %d" % ftype)
