# Belt-scale arithmetic: load from the four cell counts, belt travel from the pulse
# counter, and the integer totalizer. Pure arithmetic, fed one collector Sample per poll;
# no I/O, no clock. The formulas and the error budget are in docs/measurement.md.
#
# Mass is integrated over belt travel, never speed x time: each new block adds
#   load (counts) x travel (pulses) x K,   K = span * material / (weigh_length * pulses_per_m)
# in integer units of 2**-S gram; whole grams carry into total_g, the remainder stays
# in _frac, so nothing is rounded away and nothing is accumulated in a float.
from hal.compat import const, ticks_diff

_U32 = const(0xFFFFFFFF)
_HALF_U32 = const(0x80000000)
_RESTARTED = const(0x100)
_LOAD_FAULT = const(0x4F)  # cells 1-4 and ADC: the sum of counts means nothing
_LIN_Q = const(30)  # linearization factors in Q30
_BLOCK_HZ = const(10)  # the collector publishes 10 blocks a second
_MAX_MPS = const(8.0)  # speed sensor range; more pulses than this in a gap is a counter jump
# The largest pulses per metre a belt speed sensor plausibly has: the jump limit is physics
# (8 m/s of this), so a sensor commissioned with the wrong pulses_per_m is still counted
# (and shows as an implausible speed), not taken for a counter jump on every poll.
_MAX_PPM = const(1000)
_SPEED_SENSOR = const(0x10)
# Counter consistency. The collector's blocks, its uptime and the gateway's own clock must
# tell the same time: seq +10 a second, uptime +1 (truncated: +-2 s of slack). Against the
# gateway's clock only a coarse bound (32x, a time-lapse emulator runs at 20x): a unit far
# ahead or behind is caught here, a subtler one by its serial (hold for identity).
_UPTIME_SLACK = const(20)  # blocks
_CLOCK_X = const(32)
_AGREE_POLLS = const(5)  # consistent polls after a discontinuity before mass counts again
# A poll that follows more than _GAP_BLOCKS unseen blocks carries an estimate (the load
# interpolated over the gap), flagged as such; beyond scale.bridge_max_s nothing is counted.
_GAP_BLOCKS = const(20)
# Hold reasons: mass is decided by the gate but kept apart until every reason is gone.
H_IDENTITY = const(1)  # a restart or discontinuity: is it still our collector?
H_COUNTERS = const(2)  # the counters disagree: wait until they agree for _AGREE_POLLS
H_SWAP = const(4)  # the collector's serial is not the registered one: discard
# Gate entry kinds
_WEIGHED = const(0)
_UNWEIGHED = const(1)
_ESTIMATED = const(2)
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


def lin_correction_pct(points, load_pct):
    """The linearization correction (%) at load_pct: linear between the points, flat
    beyond the first and the last, 0 without points (what Scale applies, in floats)."""
    if not points:
        return 0.0
    if load_pct <= points[0][0]:
        return float(points[0][1])
    for i in range(len(points) - 1):
        x0, y0 = points[i]
        x1, y1 = points[i + 1]
        if load_pct < x1:
            return y0 + (y1 - y0) * (load_pct - x0) / (x1 - x0)
    return float(points[-1][1])


class Scale:
    """Load, speed, rate and the lifetime totalizer of one belt scale.

    After each on_sample() that returns True: n (blocks since the last poll), dp
    (pulses), net (counts above zero), cp (counts x pulses, gap-weighted), inc (2**-S g,
    before the gate), committed_g (grams added to the totalizer by this poll), ok.
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
        self.zero_ref = None  # the zero of the last verified calibration (the app keeps it)
        self.verified_zero = None  # a zero calibration just verified (taken by the app)
        self.est_g = 0  # lifetime: grams of the totalizer that were estimated, not weighed
        self.unweighed_n = 0  # lifetime: blocks the belt ran with neither load nor travel known
        # Holding (counter discontinuity, identity to verify): decided mass kept apart.
        self.verify_identity = False  # an identity source is wired (the app's collector)
        self.ask_identity = False  # set when the serials should be read again now
        self.hold = 0
        self._hold_from = 0
        self._held = 0  # 2**-S g
        self._held_p = 0
        self._held_est = 0
        self._agree = 0
        # A gap bridged by the poll just taken: blocks, pulses, estimate (grams), counted.
        self.gap_n = 0
        self.gap_dp = 0
        self.gap_g = 0
        self.gap_bridged = False
        self.outage_ms = None  # after a restore: wall time since the checkpoint (None: unknown)
        self._restored = False
        self._skip_n = 0
        # Speed sensor lost: no pulses while the motor runs (DI1) and the load under the
        # frame changes (the belt moves). Travel is then estimated from the last speed.
        self.speed_lost = False
        self._v256 = 0  # last good speed, pulses per block x 256
        self._ls_n = 0  # blocks since the pulses stopped
        self._ls_sum = 0  # net counts x blocks over them, until the verdict
        self._ls_lo = 0
        self._ls_hi = 0
        self._ls_p = 0  # pulses estimated so far in the stretch
        self._ls_chunk = 0  # blocks of the stretch to estimate at once (the verdict's poll)
        self.on_frame = False  # the load on the frame (not travel-weighted) reaches the drop-out
        self.entry_sink = None  # called (cp, dp, empty, bad) for each poll the gate decides
        self._have = False
        self._seq = 0
        self._pulses = 0
        self._uptime = 0
        self._ticks = 0
        self._r8 = 0
        self._net_prev = 0
        self._prev_ok = False
        self.n = 0
        self.dp = 0
        self.net = 0
        self.cp = 0
        self.inc = 0
        self.ok = False
        self.committed_g = 0
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

    # --- parameters
    def apply_params(self, flat):
        """Take a new parameter set (the flat config dict)."""
        ppm = float(flat["scale.pulses_per_m"])
        wl = float(flat["scale.weigh_length_m"])
        span = float(flat["scale.span_kg_per_count"])
        mf = float(flat["scale.material_factor"])
        if ppm <= 0 or wl <= 0 or span <= 0 or mf <= 0:
            raise ScaleError("pulses_per_m, weigh_length_m, span and material_factor must be > 0")
        self.pulses_per_m = ppm
        self.weigh_length_m = wl
        self.span_kg_per_count = span
        self.material_factor = mf
        self.zero_counts = int(flat["scale.zero_counts"])
        design_mps = float(flat["scale.design_speed_mps"])
        self.design_kgpm = float(flat["scale.design_tph"]) / (3.6 * design_mps)
        # Net counts per kg/m of measured load (before linearization).
        self.counts_per_kgpm = wl / (span * mf)
        k_g = span * mf * 1000.0 / (wl * ppm)  # grams per count x pulse
        shift = 32
        while k_g * (1 << shift) < (1 << 24) and shift < 60:
            shift += 4
        old = getattr(self, "shift", shift)
        self.shift = shift
        if shift != old:
            self._rescale(old)
        self._kq = int(k_g * (1 << shift) + 0.5)
        self.dropout_pct = float(flat["scale.dropout_pct"])
        self._thr256 = self.counts256_for_pct(self.dropout_pct)
        self._half_p = int(float(flat["scale.dropout_window_m"]) * ppm / 2 + 0.5)
        # A gap's pulses beyond the sensor's range (plus margin) is a counter jump.
        self._max_ppb = int(_MAX_MPS * max(1.25 * ppm, _MAX_PPM) / _BLOCK_HZ) + 2
        self._bridge_n = int(flat["scale.bridge_max_s"]) * _BLOCK_HZ
        self._est_max_n = int(flat["scale.speed_estimate_max_s"]) * _BLOCK_HZ
        self._tau_blocks = int(float(flat["scale.damping_s"]) * _BLOCK_HZ + 0.5)
        lin = flat["scale.linearization"]
        design = self.design_kgpm * self.counts_per_kgpm
        self._lin_counts = [int(p[0] / 100.0 * design) for p in lin]
        self._lin_f = [int((1.0 + p[1] / 100.0) * (1 << _LIN_Q) + 0.5) for p in lin]
        # The belt moves under the frame when its load changes by 0.2 % of design load.
        self._motion = max(1, int(design / 500))
        self._update_zero()

    def _rescale(self, old):
        # The fine unit 2**-shift g changed with the parameters: carry what is held over.
        def conv(v):
            return v << (self.shift - old) if self.shift >= old else v >> (old - self.shift)

        self._frac = conv(self._frac)
        self._deficit = conv(self._deficit)
        self._held = conv(self._held)
        self._held_est = conv(self._held_est)
        self._rate_u = conv(self._rate_u)
        self._rate_d = conv(self._rate_d)
        for i in range(_CAP):
            self._g_inc[i] = conv(self._g_inc[i])

    def counts256_for_pct(self, pct):
        """256 x the net counts of pct % of the design load (integer threshold)."""
        return int(pct / 100.0 * self.design_kgpm * self.counts_per_kgpm * 256 + 0.5)

    def set_autozero(self, counts):
        self.az_counts = int(counts)
        self._update_zero()

    def _update_zero(self):
        self.zero_eff = self.zero_counts + self.az_counts

    # --- the poll
    def on_sample(self, s):
        """Take one poll. Returns True when it carried at least one new block."""
        self.committed_g = 0
        self.restarted = False
        self.jumped = False
        self.gap_n = 0
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
            if self._ticks is not None:
                self.restart_gap_ms = max(0, ticks_diff(s.ticks_ms, self._ticks) - seq * 100)
            n = seq if seq else 1
            prev_p = 0
            bad = seq > up * _BLOCK_HZ + _UPTIME_SLACK
        else:
            d = (up - self._uptime) * _BLOCK_HZ - n
            bad = d > _UPTIME_SLACK + n // 64 or -d > _UPTIME_SLACK + n // 64
        if not bad and self._ticks is not None:
            e = ticks_diff(s.ticks_ms, self._ticks)
            bad = n > _CLOCK_X * (max(0, e) // 100 + 1) + _CLOCK_X
        elif not bad and self.outage_ms is not None:
            bad = n > _CLOCK_X * (max(0, self.outage_ms) // 100 + 1) + _CLOCK_X
        dp = (s.pulses - prev_p) & _U32
        if dp > n * self._max_ppb:
            bad = True
        self._seq = seq
        self._pulses = s.pulses
        self._uptime = up
        self._ticks = s.ticks_ms
        self._r8 = r8
        restored = self._restored
        self._restored = False
        self.outage_ms = None
        if bad:
            # A counter discontinuity is never travel: count nothing, hold until the
            # counters agree again (and the serials say it is still our collector).
            self.jumps += 1
            self.jumped = True
            if self.hold & H_COUNTERS:
                self._discard()
            self._hold_on(H_COUNTERS)
            self._agree = 0
            dp = 0
            ok = False
        else:
            if self.hold & H_COUNTERS:
                self._agree += 1
                if self._agree >= _AGREE_POLLS:
                    self._release(H_COUNTERS)
            if self.restarted:
                self._hold_on(H_IDENTITY)
        if self._skip_n:
            # Travel since the checkpoint already inside an adopted prod record, less
            # what the gate had not decided yet when the record was closed.
            k = self._skip_n
            self._skip_n = 0
            k -= min(_GATE_BLOCKS, self._half_p * n // dp if dp else _GATE_BLOCKS)
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
            self.gap_n = n
            self.gap_dp = dp
            self.gap_bridged = n <= self._bridge_n
            if self.gap_bridged:
                kind = _ESTIMATED
            else:
                self.ok = ok = False
        if ok:
            if dp:
                f = s.freq_centihz
                self._v256 = f * 256 // 1000 if f else dp * 256 // n
                self._ls_end()
            elif s.di & 1 and not self.restarted and self._v256:
                est = self._no_pulses(st, n, net)
                if est < 0:
                    ok = False  # beyond the estimate's bound: unweighed time
                    self.unweighed_n += n
                elif est:
                    kind = _ESTIMATED
                    dp = est
                    if self._ls_chunk:
                        # The verdict: the whole stretch since the pulses stopped, at
                        # its mean load.
                        n = self._ls_chunk
                        net = self._ls_sum // n
                        self._ls_chunk = 0
            else:
                self._ls_end()
        else:
            self._ls_end()
        self.dp = dp
        if not self.speed_lost:
            self.travel_p += dp
        if not ok:
            self.unweighed_p += dp
            self.cp = self.inc = 0
            self._prev_ok = False
            self.loaded = False
            self._rate_u = 0
            self._damp(n)
            self._push(0, 0, 0, n, _UNWEIGHED)
            return True
        if self._prev_ok and n > 1 and (kind == _WEIGHED or self.gap_n):
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
        if self.gap_n:
            self.gap_g = inc >> self.shift if inc > 0 else 0
        self.cp = cp
        self.inc = inc
        self.loaded = cp > 0 and cp * 256 >= self._thr256 * dp
        self._rate_u = inc // n if self.loaded else 0
        self._damp(n)
        self._push(inc, cp, dp, n, kind)
        return True

    def _no_pulses(self, st, n, net):
        """A poll without pulses while the motor runs (DI1). Returns the pulses to
        estimate for it (0: none yet, -1: the estimate's bound has passed)."""
        first = not self._ls_n
        self._ls_n += n
        if not self.speed_lost:
            if first:
                self._ls_lo = self._ls_hi = net
                self._ls_sum = 0
                self._ls_p = 0
            elif net < self._ls_lo:
                self._ls_lo = net
            elif net > self._ls_hi:
                self._ls_hi = net
            self._ls_sum += net * n
            if not (st & _SPEED_SENSOR or self._ls_hi - self._ls_lo >= self._motion):
                return 0  # stalled, or not yet told apart: nothing moved that we know of
            # The belt moves (its load changes, or the collector says the sensor is
            # off): every block since the pulses stopped is estimated at the last speed.
            self.speed_lost = True
            self._ls_chunk = self._ls_n
        if self._ls_n > self._est_max_n:
            return -1
        p = self._ls_n * self._v256 >> 8
        est = p - self._ls_p
        self._ls_p = p
        return est

    def _ls_end(self):
        self._ls_n = self._ls_sum = self._ls_chunk = 0
        self.speed_lost = False

    # --- holding mass back
    def _hold_on(self, why):
        if why == H_IDENTITY and not self.verify_identity:
            return
        if not self.hold:
            self._hold_from = self._head
        self.hold |= why
        if self.verify_identity:
            self.hold |= H_IDENTITY
            self.ask_identity = True

    def hold_for_identity(self):
        """After a restart of the gateway: nothing counts until the serials are read."""
        self._hold_on(H_IDENTITY)

    def identity_checked(self, same):
        """The collector's serial was read: the registered one (same) or not."""
        if same:
            self._release(H_IDENTITY | H_SWAP)
        else:
            if not self.hold:
                self._hold_from = self._head
            self.hold = (self.hold | H_SWAP) & ~H_IDENTITY
            self._discard()

    def _release(self, why):
        self.hold &= ~why
        if self.hold or not self._held_p and not self._held:
            return
        before = self.total_g
        held = self._held
        self._commit(held)
        if self._held_est and held > 0:
            self.est_g += (self.total_g - before) * self._held_est // held
        self._held = self._held_p = self._held_est = 0

    def _discard(self):
        # Mass from a unit that is not ours (or from counters that did not hold): its
        # travel is reported as unweighed, its mass never counted.
        self.unweighed_p += self._held_p
        self._held = self._held_p = self._held_est = 0

    def held_g(self):
        return self._held >> self.shift if self._held > 0 else 0

    def _baseline(self, s, net, ok):
        self._have = True
        self._restored = False
        self._seq = s.block_seq
        self._ticks = s.ticks_ms
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
            if self.hold and self._mid >= self._hold_from:
                if self.hold & H_SWAP:
                    self.unweighed_p += d
                else:
                    self._held += inc
                    self._held_p += d
                    if kind == _ESTIMATED:
                        self._held_est += inc
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
        self.committed_g += g

    def window_load_pct(self):
        """Mean load over the gate's window, % of design load (None while stopped)."""
        dw = self._b_d + self._f_d
        if not dw:
            return None
        return (self._b_cp + self._f_cp) / dw * 100.0 / (self.design_kgpm * self.counts_per_kgpm)

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

    def status(self):
        return {
            "load_kgpm": round(self.load_kgpm(), 3),
            "speed_mps": round(self.speed_mps(), 3),
            "rate_tph": round(self.rate_shown_tph(), 2),
            "rate_now_tph": round(self.rate_tph(), 2),
            "total_kg": self.total_kg(),
            "zero_counts": self.zero_eff,
            "autozero_counts": self.az_counts,
            "weighing": self.ok,
        }

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
            "unw_n": self.unweighed_n,
            "test_load": self.test_load,
            "cal_p": self.calibrating_p,
            "hold": [self.hold, max(0, self._hold_from - self._mid), self._held, self._held_p,
                     self._held_est, self._agree],
        }

    def adopt_total(self, total_g, counted_blocks):
        """Continue from a totalizer figure the log holds but the checkpoint did not (a
        power cut fell between a record and the next checkpoint). The pending polls and
        the first counted_blocks of travel since that checkpoint are inside the figure;
        the rest of the outage is bridged like any other (a share of its travel)."""
        self.total_g = int(total_g)
        self._frac = 0
        self._deficit = 0
        self._head = self._mid = self._tail = 0
        self._f_cp = self._f_d = self._f_n = 0
        self._b_cp = self._b_d = self._b_n = 0
        self._hold_from = 0
        self._skip_n = max(0, int(counted_blocks))

    def restore(self, d):
        self.total_g = int(d["total_g"])
        self._frac = int(d["frac"])
        self._deficit = int(d["deficit"])
        self.set_autozero(d["az"])
        self.travel_p = int(d["travel_p"])
        self.loaded_p = int(d["loaded_p"])
        self.unweighed_p = int(d["unweighed_p"])
        self._have = bool(d["have"])
        self._seq = int(d["seq"])
        self._pulses = int(d["pulses"])
        self._uptime = int(d["uptime"])
        self._ticks = None  # the ticks of before the restart mean nothing now
        self._r8 = int(d["r8"])
        self._net_prev = int(d["net_prev"])
        self._prev_ok = bool(d["prev_ok"])
        self._head = self._mid = self._tail = 0
        self._f_cp = self._f_d = self._f_n = 0
        self._b_cp = self._b_d = self._b_n = 0
        b = d["back"]
        if b[2]:
            # The decided part of the window comes back as one entry: only its sums matter.
            self._g_inc[0] = 0
            self._g_cp[0] = self._b_cp = int(b[0])
            self._g_d[0] = self._b_d = int(b[1])
            self._g_n[0] = self._b_n = int(b[2])
            self._g_bad[0] = 0
            self._head = self._mid = 1
        for e in d["pending"][: _CAP - 2]:
            i = self._head & _MASK
            self._g_inc[i] = int(e[0])
            self._g_cp[i] = int(e[1])
            self._g_d[i] = int(e[2])
            self._g_n[i] = int(e[3])
            self._g_bad[i] = int(e[4])
            self._f_cp += self._g_cp[i]
            self._f_d += self._g_d[i]
            self._f_n += self._g_n[i]
            self._head += 1
        self.est_g = int(d.get("est_g", 0))
        self.unweighed_n = int(d.get("unw_n", 0))
        self.test_load = bool(d.get("test_load", False))
        self.calibrating_p = int(d.get("cal_p", 0))
        h = d.get("hold") or [0, 0, 0, 0, 0, 0]
        self.hold = int(h[0])
        self._hold_from = self._mid + int(h[1])
        self._held = int(h[2])
        self._held_p = int(h[3])
        self._held_est = int(h[4])
        self._agree = int(h[5])
        self._restored = True
        self._skip_n = 0
        self._ls_end()
        old_shift = int(d["shift"])
        if old_shift != self.shift:
            self._rescale(old_shift)
