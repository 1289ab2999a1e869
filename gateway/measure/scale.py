# Belt-scale arithmetic: load from the four cell counts, belt travel from the pulse
# counter, and the integer totalizer. Pure arithmetic, fed one collector Sample per poll;
# no I/O, no clock. The formulas and the error budget are in docs/measurement.md.
#
# Mass is integrated over belt travel, never speed x time: each new block adds
#   load (counts) x travel (pulses) x K,   K = span * material / (weigh_length * pulses_per_m)
# in integer units of 2**-S gram; whole grams carry into total_g, the remainder stays
# in _frac, so nothing is rounded away and nothing is accumulated in a float.
from gateway import ondemand
from hal.compat import const, ticks_diff

_U32 = const(0xFFFFFFFF)
_HALF_U32 = const(0x80000000)
_RESTARTED = const(0x100)
_LOAD_FAULT = const(0x4F)  # cells 1-4 and ADC: the sum of counts means nothing
_LIN_Q = const(30)  # linearization factors in Q30
_BLOCK_HZ = const(10)  # the collector publishes 10 blocks a second
# The jump limit is physics: 8 m/s (the sensor's range) of the largest plausible pulses
# per metre (gateway/measure/apply.py), so a sensor commissioned with the wrong
# pulses_per_m is still counted (and shows as an implausible speed), not taken for a
# counter jump on every poll.
_SPEED_SENSOR = const(0x10)
# Counter consistency. The collector's blocks, its uptime and the gateway's own clock must
# tell the same time: seq +10 a second, uptime +1 (truncated: +-2 s of slack). Against the
# gateway's clock only a coarse bound (32x, a time-lapse emulator runs at 20x): a unit far
# ahead or behind is caught here, a subtler one by its serial (hold for identity).
_UPTIME_SLACK = const(20)  # blocks
_CLOCK_X = const(32)
_AGREE_POLLS = const(5)  # consistent polls after a discontinuity before mass counts again
# A poll that follows more than _GAP_BLOCKS unseen blocks carries an estimate (the load
# interpolated over the gap), flagged as such; beyond 6 checkpoint
# periods (store.checkpoint_s; gateway/measure/apply.py) nothing is counted.
_GAP_BLOCKS = const(20)
# Travel while the speed sensor gives no pulses is estimated for 10 minutes at most.
_SPEED_ESTIMATE_BLOCKS = const(6000)
# Hold reasons (bits of Scale.hold): mass is decided by the gate but kept apart until
# every reason is gone. Private consts leave no name on the heap; measurement.py,
# incidents.py and resume.py use the same values.
_H_IDENTITY = const(1)  # a restart or discontinuity: is it still our collector?
_H_COUNTERS = const(2)  # the counters disagree: wait until they agree for _AGREE_POLLS
_H_SWAP = const(4)  # the collector's serial is not the registered one: discard
# Gate entry kinds
_WEIGHED = const(0)
_UNWEIGHED = const(1)
_ESTIMATED = const(2)
# _hd, what is held: from which gate entry, 2**-S g, pulses, the estimated share, polls
# that agreed since a discontinuity
_HD_FROM = const(0)
_HD_G = const(1)
_HD_P = const(2)
_HD_EST = const(3)
_HD_AGREE = const(4)
# _ls, the speed sensor lost: blocks since the pulses stopped, net counts x blocks over
# them until the verdict, the least and largest net, pulses estimated so far, blocks of
# the stretch to estimate at once (the verdict's poll)
_LS_N = const(0)
_LS_SUM = const(1)
_LS_LO = const(2)
_LS_HI = const(3)
_LS_P = const(4)
_LS_CHUNK = const(5)
_LS_V256 = const(6)  # the last good speed, pulses per block x 256
_LS_MOTION = const(7)  # a change of load that tells a moving belt, counts (from the parameters)
# gap: the last gap's pulses, estimate (g) and whether it was bridged; the bridge's bound
# (blocks, from the parameters); blocks to skip at the next poll (inside an adopted record)
_GAP_DP = const(0)
_GAP_G = const(1)
_GAP_BRIDGED = const(2)
_GAP_MAX_N = const(3)
_GAP_SKIP = const(4)
_GAP_N = const(5)  # blocks of the gap the poll just taken followed (0: none)
# The drop-out gate looks at a window centred on each poll: up to _GATE_BLOCKS blocks or
# half the window length of belt on each side. Ring capacity covers both halves.
_GATE_BLOCKS = const(30)
_CAP = const(64)
_MASK = const(63)


class ScaleError(ValueError):
    pass


def u32_diff(new, old):
    """new - old for a u32 counter that wraps."""
    return (new - old) & _U32


class Scale:
    """Load, speed, rate and the lifetime totalizer of one belt scale.

    After each on_sample() that returns True: n (blocks since the last poll), dp
    (pulses, or estimated ones), net (counts above zero), cp (counts x pulses,
    gap-weighted), ok (weighed), on_frame (the load, travel or not, reaches the drop-out),
    gap (of a gap it bridged or not: pulses, estimate, bridged, ..., blocks), restarted,
    jumped (a discontinuity).
    Lifetime: total_g, est_g (estimated grams in it), travel_p, loaded_p, unweighed_p,
    unweighed_n (blocks running with neither load nor travel known), calibrating_p.
    """

    def __init__(self, flat):
        self.total_g = 0  # lifetime totalizer, grams
        self.freq_centihz = 0  # speed sensor frequency of the last poll
        self._frac = 0  # below one gram, in 2**-S g
        self._deficit = 0  # negative increments inside an open gate, repaid first
        self.az_counts = 0  # auto-zero correction on top of scale.zero_counts
        self.travel_p = 0  # belt travel since start, pulses (speed calibration reads it)
        self.loaded_p = 0  # travel totalized with a load above the drop-out, pulses
        self.unweighed_p = 0  # travel while the load could not be measured
        self.jumps = 0  # pulse-counter discontinuities not accounted for
        self.inhibit = False  # set by a zero or span calibration: nothing is totalized
        # Test weights or a chain on the frame (a span calibration): nothing is totalized
        # from the span's start until the technician declares them removed.
        self.test_load = False
        self.calibrating_p = 0  # lifetime: travel not totalized for a calibration, pulses
        self.verified_zero = None  # a zero calibration just verified (taken by the app)
        self.est_g = 0  # lifetime: grams of the totalizer that were estimated, not weighed
        self.unweighed_n = 0  # lifetime: blocks the belt ran with neither load nor travel known
        # Holding (counter discontinuity, identity to verify): decided mass kept apart.
        # 0: no identity source wired; 1: wired (the app's collector); 2: read it now
        self.verify_identity = 0
        self.hold = 0
        self._hd = [0, 0, 0, 0, 0]
        # A gap in the poll just taken: blocks; then pulses, estimate (grams), bridged.
        self.gap = [0, 0, False, 0, 0, 0]
        # After a restore: wall time since the checkpoint (-1 unknown), until the first poll.
        self.outage_ms = None
        # Speed sensor lost: no pulses while the motor runs (DI1) and the load under the
        # frame changes (the belt moves). Travel is then estimated from the last speed.
        self.speed_lost = False
        self._ls = [0, 0, 0, 0, 0, 0, 0, 0]
        self.on_frame = False  # the load on the frame (not travel-weighted) reaches the drop-out
        # Called (cp, d, cpw, dw, bad) for each poll the gate decides: its counts x pulses
        # and pulses, the same summed over the window centred on it, whether it was bad.
        self.entry_sink = None
        self._have = False
        self._seq = 0
        self._pulses = 0
        self._uptime = 0
        self.sample_ticks = 0  # ticks_ms of the last sample taken (None: not on this run's clock)
        self._r8 = 0
        self._net_prev = 0
        self._prev_ok = False
        self.n = 0
        self.dp = 0
        self.net = 0
        self.cp = 0
        self.ok = False
        self.restarted = False
        self.jumped = False
        self.restart_gap_ms = None  # after a collector restart: ms it was not counting
        self.loaded = False  # this poll's load is above the drop-out
        self._rate_u = 0  # rate now, 2**-S g per block (0 below the drop-out)
        self._rate_d = 0  # the same, damped for display
        # The drop-out gate: a ring of per-poll entries, indices counting up forever.
        self._g_inc = [0] * _CAP
        self._g_cp = [0] * _CAP
        self._g_d = [0] * _CAP
        self._g_n = [0] * _CAP
        self._g_bad = [0] * _CAP
        self._head = self._mid = self._tail = 0
        self._f_cp = self._f_d = self._f_n = 0  # pending: mid .. head-1
        self._b_cp = self._b_d = self._b_n = 0  # decided, still in the window: tail .. mid-1
        self.apply_params(flat)

    # --- parameters: loaded for the call (start-up, a parameter change)
    def apply_params(self, flat):
        """Take a new parameter set (the flat config dict)."""
        ondemand.call("gateway.measure.apply", "scale", self, flat)

    def set_autozero(self, counts):
        self.az_counts = int(counts)
        self._update_zero()

    def _update_zero(self):
        self.zero_eff = self.zero_counts + self.az_counts

    # --- the poll
    def on_sample(self, s):
        """Take one poll. Returns True when it carried at least one new block."""
        self.restarted = False
        self.jumped = False
        g = self.gap
        g[_GAP_N] = 0
        seq = s.block_seq
        st = s.status
        r8 = st & _RESTARTED
        up = s.uptime_s
        ok = not (st & _LOAD_FAULT)
        c = s.cells
        net = c[0] + c[1] + c[2] + c[3] - self.zero_eff
        self.freq_centihz = s.freq_centihz
        self.on_frame = net * 256 >= self._thr256
        if not self._have:
            self._baseline(s, net, ok)
            self.n = self.dp = 0
            return False
        n = (seq - self._seq) & _U32
        if n == 0:
            return False  # the same block again: polled faster than it publishes
        prev_p = self._pulses
        if n >= _HALF_U32 or up < self._uptime or (r8 and not self._r8):
            # The collector restarted: its counters began again at 0. What it counted
            # since then is real travel if its own uptime and our clock allow that much;
            # what happened before its restart is lost.
            self.restarted = True
            # Time the collector was not counting: since our last poll, less its uptime.
            if self.sample_ticks is not None:
                self.restart_gap_ms = max(0, ticks_diff(s.ticks_ms, self.sample_ticks) - seq * 100)
            n = seq if seq else 1
            prev_p = 0
            bad = seq > up * _BLOCK_HZ + _UPTIME_SLACK
        else:
            d = (up - self._uptime) * _BLOCK_HZ - n
            bad = d > _UPTIME_SLACK + n // 64 or -d > _UPTIME_SLACK + n // 64
        restored = self.outage_ms is not None
        t0 = self.sample_ticks
        e = ticks_diff(s.ticks_ms, t0) if t0 is not None else self.outage_ms
        if not bad and e is not None and e >= 0:
            bad = n > _CLOCK_X * (e // 100 + 1) + _CLOCK_X
        dp = (s.pulses - prev_p) & _U32
        if dp > n * self._max_ppb:
            bad = True
        self._seq = seq
        self._pulses = s.pulses
        self._uptime = up
        self.sample_ticks = s.ticks_ms
        self._r8 = r8
        self.outage_ms = None
        hd = self._hd
        if bad:
            # A counter discontinuity is never travel: count nothing, hold until the
            # counters agree again (and the serials say it is still our collector).
            self.jumps += 1
            self.jumped = True
            if self.hold & _H_COUNTERS:
                self._discard()  # what came since the last one did not hold either
            self._hold_on(_H_COUNTERS)
            hd[_HD_AGREE] = 0
            dp = 0
            ok = False
        else:
            if self.hold & _H_COUNTERS:
                hd[_HD_AGREE] += 1
                if hd[_HD_AGREE] >= _AGREE_POLLS:
                    self._release(_H_COUNTERS)
            if self.restarted and self.verify_identity:
                self._hold_on(_H_IDENTITY)
        if g[_GAP_SKIP]:
            # Travel since the checkpoint already inside an adopted prod record, less
            # what the gate had not decided yet when the record was closed.
            k = g[_GAP_SKIP] - min(_GATE_BLOCKS, self._half_p * n // dp if dp else _GATE_BLOCKS)
            g[_GAP_SKIP] = 0
            if k >= n:
                self.n = self.dp = 0
                return False
            if k > 0:
                dp = dp * (n - k) // n
                n -= k
        self.n = n
        self.net = net
        self.ok = ok
        kind = _WEIGHED
        if ok and (n > _GAP_BLOCKS or restored):
            # The blocks between two polls were not seen (a gateway or link outage): an
            # estimate, and only up to a bound.
            g[_GAP_N] = n
            g[_GAP_DP] = dp
            g[_GAP_BRIDGED] = n <= g[_GAP_MAX_N]
            if g[_GAP_BRIDGED]:
                kind = _ESTIMATED
            else:
                self.ok = ok = False
        ls = self._ls
        if ok and not dp and s.di & 1 and not self.restarted and ls[_LS_V256]:
            # No pulses while the motor runs (DI1): the pulses to estimate for this poll
            # (0: none yet, -1: the estimate's bound has passed).
            first = not ls[_LS_N]
            ls[_LS_N] += n
            est = 0
            if not self.speed_lost:
                if first:
                    ls[_LS_LO] = ls[_LS_HI] = net
                    ls[_LS_SUM] = ls[_LS_P] = 0
                elif net < ls[_LS_LO]:
                    ls[_LS_LO] = net
                elif net > ls[_LS_HI]:
                    ls[_LS_HI] = net
                ls[_LS_SUM] += net * n
                if st & _SPEED_SENSOR or ls[_LS_HI] - ls[_LS_LO] >= ls[_LS_MOTION]:
                    # The belt moves (its load changes, or the collector says the sensor
                    # is off): every block since the pulses stopped is estimated at the
                    # last speed. Else it stands (slips), or cannot be told apart yet.
                    self.speed_lost = True
                    ls[_LS_CHUNK] = ls[_LS_N]
            if self.speed_lost:
                if ls[_LS_N] > _SPEED_ESTIMATE_BLOCKS:
                    est = -1
                else:
                    p = ls[_LS_N] * ls[_LS_V256] >> 8
                    est = p - ls[_LS_P]
                    ls[_LS_P] = p
            if est < 0:
                ok = False  # beyond the estimate's bound: unweighed time
                self.unweighed_n += n
            elif est:
                kind = _ESTIMATED
                dp = est
                if ls[_LS_CHUNK]:
                    # The verdict: the whole stretch since the pulses stopped, at its
                    # mean load.
                    n = ls[_LS_CHUNK]
                    net = ls[_LS_SUM] // n
                    ls[_LS_CHUNK] = 0
        else:
            if ok and dp:
                f = s.freq_centihz
                ls[_LS_V256] = f * 256 // 1000 if f else dp * 256 // n
            ls[_LS_N] = ls[_LS_SUM] = ls[_LS_CHUNK] = 0
            self.speed_lost = False
        self.dp = dp
        if not self.speed_lost:
            self.travel_p += dp
        if not ok:
            self.unweighed_p += dp
            self.cp = 0
            self._prev_ok = False
            self.loaded = False
            self._rate_u = 0
            self._damp(n)
            self._push(0, 0, 0, n, _UNWEIGHED)
            return True
        if self._prev_ok and n > 1 and (kind == _WEIGHED or g[_GAP_N]):
            # Blocks between two polls were not seen: their load is interpolated.
            num = (n + 1) * net + (n - 1) * self._net_prev
        else:
            num = 2 * n * net
        den = 2 * n
        self._net_prev = net
        self._prev_ok = True
        k = self._kq
        if self._lin_f:
            k = (k * self._lin_factor(num // den) + (1 << (_LIN_Q - 1))) >> _LIN_Q
        x = dp * num
        cp = (x + n) // den
        inc = (x * k + n) // den
        if self.inhibit or self.test_load:
            inc = 0
            self.calibrating_p += dp
        if g[_GAP_N]:
            g[_GAP_G] = inc >> self.shift if inc > 0 else 0
        self.cp = cp
        self.loaded = cp > 0 and cp * 256 >= self._thr256 * dp
        self._rate_u = inc // n if self.loaded else 0
        self._damp(n)
        self._push(inc, cp, dp, n, kind)
        return True

    # --- holding mass back (rare, but on the way of a poll: resident)
    def _hold_on(self, why):
        """Decided mass is held from the next gate entry on; with serials to read, they
        are asked for (a restart or a discontinuity may be another unit)."""
        if not self.hold:
            self._hd[_HD_FROM] = self._head
        self.hold |= why
        if self.verify_identity:
            self.hold |= _H_IDENTITY
            self.verify_identity = 2  # Measurement asks the app to read them

    def _release(self, why):
        """Reason `why` is gone; once none is left what is held is counted."""
        self.hold &= ~why
        hd = self._hd
        if self.hold or not hd[_HD_P] and not hd[_HD_G]:
            return
        g0 = self.total_g
        held = hd[_HD_G]
        self._commit(held)
        if hd[_HD_EST] and held > 0:
            self.est_g += (self.total_g - g0) * hd[_HD_EST] // held
        hd[_HD_G] = hd[_HD_P] = hd[_HD_EST] = 0

    def _discard(self):
        # Mass from a unit that is not ours (or from counters that did not hold): its
        # travel is reported as unweighed, its mass never counted.
        hd = self._hd
        self.unweighed_p += hd[_HD_P]
        hd[_HD_G] = hd[_HD_P] = hd[_HD_EST] = 0

    def identity_checked(self, ok):
        """The collector's serial was read: the registered one (ok), and what is held is
        counted; another, and it is dropped as unweighed travel, as all its mass will be."""
        if ok:
            self._release(_H_IDENTITY | _H_SWAP)
        else:
            if not self.hold:
                self._hd[_HD_FROM] = self._head
            self.hold = (self.hold | _H_SWAP) & ~_H_IDENTITY
            self._discard()

    def _baseline(self, s, net, ok):
        self._have = True
        self.outage_ms = None
        self._seq = s.block_seq
        self.sample_ticks = s.ticks_ms
        self._pulses = s.pulses
        self._uptime = s.uptime_s
        self._r8 = s.status & _RESTARTED
        self._net_prev = net
        self._prev_ok = ok
        self.net = net
        self.ok = ok

    def _damp(self, n):
        tau = self._tau_blocks
        if tau:
            self._rate_d += (self._rate_u - self._rate_d) * n // (tau + n)
        else:
            self._rate_d = self._rate_u

    def _lin_factor(self, net):
        pts = self._lin_counts
        fs = self._lin_f
        if net <= pts[0]:
            return fs[0]
        last = len(pts) - 1
        for i in range(last):
            if net < pts[i + 1]:
                return fs[i] + (fs[i + 1] - fs[i]) * (net - pts[i]) // (pts[i + 1] - pts[i])
        return fs[last]

    # --- the drop-out gate
    def _push(self, inc, cp, d, n, bad):
        if self._head - self._tail == _CAP:
            if self._tail == self._mid:
                self._decide()
            self._drop_tail()
        i = self._head & _MASK
        self._g_inc[i] = inc
        self._g_cp[i] = cp
        self._g_d[i] = d
        self._g_n[i] = n
        self._g_bad[i] = bad
        self._head += 1
        self._f_cp += cp
        self._f_d += d
        self._f_n += n
        while self._mid != self._head:
            j = self._mid & _MASK
            if (
                self._f_d - self._g_d[j] >= self._half_p
                or self._f_n - self._g_n[j] >= _GATE_BLOCKS
            ):
                self._decide()
            else:
                break
        while self._tail != self._mid:
            j = self._tail & _MASK
            if (
                self._b_d - self._g_d[j] >= self._half_p
                or self._b_n - self._g_n[j] >= _GATE_BLOCKS
            ):
                self._drop_tail()
            else:
                break

    def _drop_tail(self):
        j = self._tail & _MASK
        self._b_cp -= self._g_cp[j]
        self._b_d -= self._g_d[j]
        self._b_n -= self._g_n[j]
        self._tail += 1

    def _decide(self):
        # The poll at mid is totalized if the mean load over the window centred on it
        # reaches the drop-out: a splice or a dent in the belt alone does not open it, and
        # the first and last metre of a load are not cut off.
        j = self._mid & _MASK
        cpw = self._b_cp + self._f_cp
        dw = self._b_d + self._f_d
        cp = self._g_cp[j]
        d = self._g_d[j]
        if dw and cpw > 0 and cpw * 256 >= self._thr256 * dw:
            inc = self._g_inc[j]
            kind = self._g_bad[j]
            hd = self._hd
            if self.hold and self._mid >= hd[_HD_FROM]:
                if self.hold & _H_SWAP:
                    self.unweighed_p += d
                else:
                    hd[_HD_G] += inc
                    hd[_HD_P] += d
                    if kind == _ESTIMATED:
                        hd[_HD_EST] += inc
            elif kind == _ESTIMATED:
                g = self.total_g
                self._commit(inc)
                self.est_g += self.total_g - g
            else:
                self._commit(inc)
            if cp * 256 >= self._thr256 * d:
                self.loaded_p += d
        sink = self.entry_sink
        if sink is not None:
            sink(cp, d, cpw, dw, self._g_bad[j])
        self._f_cp -= cp
        self._f_d -= d
        self._f_n -= self._g_n[j]
        self._b_cp += cp
        self._b_d += d
        self._b_n += self._g_n[j]
        self._mid += 1

    def _commit(self, inc):
        # Never negative: a negative poll inside an open gate (a light stretch of belt at a
        # load's edge) is owed and repaid from the next positive ones, so the total never
        # decreases and the sum stays unbiased. The debt is kept across a closed gate.
        if inc < 0:
            self._deficit -= inc
            return
        if self._deficit:
            if inc <= self._deficit:
                self._deficit -= inc
                return
            inc -= self._deficit
            self._deficit = 0
        f = self._frac + inc
        g = f >> self.shift
        self._frac = f - (g << self.shift)
        self.total_g += g

    def gate_seq(self):
        """A mark in the gate's sequence of polls: gate_decided(mark) is True once every
        poll taken so far has been decided (at most _GATE_BLOCKS blocks later)."""
        return self._head

    def gate_decided(self, mark):
        return self._mid >= mark

    def pending_g(self):
        """Mass waiting for the gate's decision (for display; may not all be counted)."""
        s = 0
        i = self._mid
        while i != self._head:
            s += self._g_inc[i & _MASK]
            i += 1
        return s >> self.shift if s > 0 else 0

    # --- values for people (floats, computed when asked)
    def load_kgpm(self):
        return self.net / self.counts_per_kgpm

    def speed_mps(self):
        """Shown speed: from the collector's pulse frequency (0.01 Hz resolution); a
        block holds only ~25 whole pulses at 2.5 m/s. Distance never comes from this."""
        if self.freq_centihz:
            return self.freq_centihz / (100 * self.pulses_per_m)
        if not self.n:
            return 0.0
        return self.dp * _BLOCK_HZ / (self.n * self.pulses_per_m)

    def rate_tph(self):
        return self._rate_u * (_BLOCK_HZ * 3600 / 1e6) / (1 << self.shift)

    def rate_shown_tph(self):
        return self._rate_d * (_BLOCK_HZ * 3600 / 1e6) / (1 << self.shift)

    def total_kg(self):
        return self.total_g / 1000

    # --- persistence
    def snapshot(self):
        pend = []
        i = self._mid
        while i != self._head:
            j = i & _MASK
            pend.append(
                [self._g_inc[j], self._g_cp[j], self._g_d[j], self._g_n[j], self._g_bad[j]]
            )
            i += 1
        hd = self._hd
        return {
            "total_g": self.total_g,
            "frac": self._frac,
            "shift": self.shift,
            "deficit": self._deficit,
            "az": self.az_counts,
            "travel_p": self.travel_p,
            "loaded_p": self.loaded_p,
            "unweighed_p": self.unweighed_p,
            "have": self._have,
            "seq": self._seq,
            "pulses": self._pulses,
            "uptime": self._uptime,
            "r8": self._r8,
            "net_prev": self._net_prev,
            "prev_ok": self._prev_ok,
            "back": [self._b_cp, self._b_d, self._b_n],
            "pending": pend,
            "est_g": self.est_g,
            "unweighed_n": self.unweighed_n,
            "test_load": self.test_load,
            "calibrating_p": self.calibrating_p,
            "hold": [self.hold, max(0, hd[_HD_FROM] - self._mid), hd[_HD_G], hd[_HD_P],
                     hd[_HD_EST], hd[_HD_AGREE]],
        }

    # Rare: loaded for the call only (gateway/measure/resume.py).
    def adopt_total(self, total_g, n):
        """A logged total whose first n blocks of travel since the checkpoint it holds."""
        ondemand.call("gateway.measure.resume", "adopt_total", self, total_g, n)

    def restore(self, d):
        ondemand.call("gateway.measure.resume", "restore", self, d)
