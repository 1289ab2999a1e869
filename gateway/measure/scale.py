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
        # Called (cp, d, cpw, dw, bad) for each poll the gate decides: its counts x pulses
        # and pulses, the same summed over the window centred on it, whether it was bad.
        self.entry_sink = None
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
        self._max_ppb = int(_MAX_MPS * 1.25 * ppm / _BLOCK_HZ) + 2
        self._tau_blocks = int(float(flat["scale.damping_s"]) * _BLOCK_HZ + 0.5)
        lin = flat["scale.linearization"]
        design = self.design_kgpm * self.counts_per_kgpm
        self._lin_counts = [int(p[0] / 100.0 * design) for p in lin]
        self._lin_f = [int((1.0 + p[1] / 100.0) * (1 << _LIN_Q) + 0.5) for p in lin]
        self._update_zero()

    def _rescale(self, old):
        # The fine unit 2**-shift g changed with the parameters: carry what is held over.
        def conv(v):
            return v << (self.shift - old) if self.shift >= old else v >> (old - self.shift)

        self._frac = conv(self._frac)
        self._deficit = conv(self._deficit)
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
        seq = s.block_seq
        st = s.status
        r8 = st & _RESTARTED
        ok = not (st & _LOAD_FAULT)
        c = s.cells
        net = c[0] + c[1] + c[2] + c[3] - self.zero_eff
        self.freq_centihz = s.freq_centihz
        if not self._have:
            self._baseline(s, net, ok)
            self.n = self.dp = 0
            return False
        n = (seq - self._seq) & _U32
        if n == 0:
            return False  # the same block again: polled faster than it publishes
        prev_p = self._pulses
        if n >= _HALF_U32 or s.uptime_s < self._uptime or (r8 and not self._r8):
            # The collector restarted: its counters began again at 0. What it counted
            # since then is real travel; what happened before its restart is lost.
            self.restarted = True
            # Time the collector was not counting: since our last poll, less its uptime.
            if self._ticks is not None:
                self.restart_gap_ms = max(0, ticks_diff(s.ticks_ms, self._ticks) - seq * 100)
            n = seq if seq else 1
            prev_p = 0
        dp = (s.pulses - prev_p) & _U32
        if dp > n * self._max_ppb:
            # Faster than the belt can move: a counter discontinuity. Count nothing.
            self.jumps += 1
            self.jumped = True
            dp = 0
            ok = False
        self._seq = seq
        self._pulses = s.pulses
        self._uptime = s.uptime_s
        self._ticks = s.ticks_ms
        self._r8 = r8
        self.n = n
        self.dp = dp
        self.net = net
        self.ok = ok
        self.travel_p += dp
        if not ok:
            self.unweighed_p += dp
            self.cp = self.inc = 0
            self._prev_ok = False
            self.loaded = False
            self._rate_u = 0
            self._damp(n)
            self._push(0, 0, 0, n, 1)
            return True
        if self._prev_ok and n > 1:
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
        if self.inhibit:
            inc = 0
        self.cp = cp
        self.inc = inc
        self.loaded = cp > 0 and cp * 256 >= self._thr256 * dp
        self._rate_u = inc // n if self.loaded else 0
        self._damp(n)
        self._push(inc, cp, dp, n, 0)
        return True

    def _baseline(self, s, net, ok):
        self._have = True
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
            self._commit(self._g_inc[j])
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
        }

    def adopt_total(self, total_g):
        """Continue from a totalizer figure the log holds but the checkpoint did not (a
        power cut fell between a record and the next checkpoint). The travel and the
        pending polls since that checkpoint are already inside the figure, so they are
        dropped rather than bridged: a few seconds may go uncounted, none twice."""
        self.total_g = int(total_g)
        self._frac = 0
        self._deficit = 0
        self._head = self._mid = self._tail = 0
        self._f_cp = self._f_d = self._f_n = 0
        self._b_cp = self._b_d = self._b_n = 0
        self._have = False

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
        old_shift = int(d["shift"])
        if old_shift != self.shift:
            self._rescale(old_shift)
