# Drive-motor vibration: velocity RMS (mm/s) from the collector's 1 s RMS and from its
# 256-sample captures, the ISO 10816-3 zone, the dominant frequencies and a fault hint.
# The spectrum is a 256-point fixed-point FFT in small integers (no numpy on MicroPython,
# no float allocations per butterfly), scaled by 1/2 per stage after normalising the input.
import math
from array import array

from hal.compat import const

MV_PER_MMPS = 19.7
_N = const(256)
_Q = const(14)
_BAND = const(2)  # a Hann-windowed tone spreads over +-2 bins
_SENSOR_FAULT = const(0x20)
_HYST = const(0.97)  # leave a zone downwards only 3 % below its boundary (no flapping)

# ISO 10816-3 zone boundaries A/B, B/C, C/D in mm/s r.m.s.
ZONES = {
    (1, "rigid"): (2.3, 4.5, 7.1),
    (1, "flexible"): (3.5, 7.1, 11.0),
    (2, "rigid"): (1.4, 2.8, 4.5),
    (2, "flexible"): (2.3, 4.5, 7.1),
}
_ZONE_NAMES = const("ABCD")


def zone_for(mmps, limits):
    """The ISO zone letter for an RMS velocity, given (A/B, B/C, C/D) limits."""
    i = 0
    while i < 3 and mmps >= limits[i]:
        i += 1
    return _ZONE_NAMES[i]


def _zeros(n):
    return array("i", bytes(4 * n))


class Spectrum:
    """Power spectrum of 256 samples: Hann window, fixed-point radix-2 FFT."""

    def __init__(self):
        q = 1 << _Q
        half = _N // 2
        w = 2 * math.pi / _N
        # Filled in place: no list of _N ints on the way (a small heap may not hold one).
        self._cos = cos = _zeros(half)
        self._sin = sin = _zeros(half)
        self._win = win = _zeros(_N)
        for k in range(_N):
            c = math.cos(w * k)
            win[k] = int(round((0.5 - 0.5 * c) * q))
            if k < half:
                cos[k] = int(round(c * q))
                sin[k] = int(round(math.sin(w * k) * q))
        rev = bytearray(_N)
        for i in range(_N):
            r, x = 0, i
            for _ in range(8):
                r = (r << 1) | (x & 1)
                x >>= 1
            rev[i] = r
        self._rev = rev
        self.re = _zeros(_N)
        self.im = _zeros(_N)
        self.power = _zeros(half + 1)
        self.shift = 0

    def compute(self, wave):
        """Fill power[k] (k = 0..128) for the 256 samples; returns the normalising shift
        (power is scaled by 4**shift / N**2 against the input's units)."""
        re, im, win, rev = self.re, self.im, self._win, self._rev
        mean = sum(wave) // _N
        peak = 0
        for i in range(_N):
            v = ((wave[i] - mean) * win[i]) >> _Q
            re[rev[i]] = v
            im[i] = 0
            if v < 0:
                v = -v
            if v > peak:
                peak = v
        # Use 14 bits of the input: products with Q14 twiddles stay below 2**29.
        shift = 0
        if peak:
            while (peak << (shift + 1)) < (1 << 14):
                shift += 1
            if not shift:
                while (peak >> -shift) >= (1 << 14):
                    shift -= 1
        if shift > 0:
            for i in range(_N):
                re[i] <<= shift
        elif shift < 0:
            for i in range(_N):
                re[i] >>= -shift
        cs, sn = self._cos, self._sin
        size = 2
        step = _N // 2
        while size <= _N:
            half = size >> 1
            for start in range(0, _N, size):
                t = 0
                for a in range(start, start + half):
                    b = a + half
                    c = cs[t]
                    s = sn[t]
                    rb = re[b]
                    ib = im[b]
                    tr = (rb * c + ib * s) >> _Q
                    ti = (ib * c - rb * s) >> _Q
                    ra = re[a]
                    ia = im[a]
                    re[a] = (ra + tr) >> 1
                    im[a] = (ia + ti) >> 1
                    re[b] = (ra - tr) >> 1
                    im[b] = (ia - ti) >> 1
                    t += step
            size <<= 1
            step >>= 1
        p = self.power
        for k in range(_N // 2 + 1):
            p[k] = re[k] * re[k] + im[k] * im[k]
        self.shift = shift
        return shift

    def band_mv(self, k0, k1):
        """RMS (mV) of what lies in bins k0..k1 (inclusive), by Parseval with the Hann
        window's power gain (3/8) folded in."""
        k0 = max(1, k0)
        k1 = min(_N // 2 - 1, k1)
        s = 0
        for k in range(k0, k1 + 1):
            s += self.power[k]
        return math.sqrt(s * 16.0 / 3.0) / (2.0**self.shift)


class Vibration:
    def __init__(self, alarm):
        self.alarm = alarm
        self.spectrum = None
        self.zone = None  # from the collector's 1 s RMS; None while the sensor is faulty
        self.rms_01mv = 0
        self.analysis = None  # of the last capture

    def apply_params(self, flat):
        group = int(flat["vibration.machine_group"])
        foundation = flat["vibration.foundation"]
        self.limits = ZONES[(group, foundation)]
        self.motor_hz = float(flat["vibration.motor_rpm"]) / 60.0
        # Zone limits in the collector's unit (0.1 mV), so the poll compares integers.
        self._lim01 = [int(x * MV_PER_MMPS * 10 + 0.5) for x in self.limits]
        self._down01 = [int(x * MV_PER_MMPS * 10 * _HYST + 0.5) for x in self.limits]

    def start(self):
        self.spectrum = Spectrum()

    def on_rms(self, vib_rms_01mv, status):
        """Per poll: the collector's 1 s RMS voltage (0.1 mV)."""
        self.rms_01mv = vib_rms_01mv
        if status & _SENSOR_FAULT:
            zone = -1
        else:
            lim = self._lim01
            zone = self.zone if self.zone is not None else 0
            if zone < 0:
                zone = 0
            while zone < 3 and vib_rms_01mv >= lim[zone]:
                zone += 1
            while zone > 0 and vib_rms_01mv < self._down01[zone - 1]:
                zone -= 1
        if zone != self.zone:
            self._set_zone(zone)

    def _set_zone(self, zone):
        old = self.zone
        self.zone = zone
        detail = "vibration %.2f mm/s r.m.s., ISO 10816-3 zone %s"
        detail %= (self.rms_mmps(), self.zone_name())
        if self.analysis is not None and self.analysis["hint"] not in ("none", "unclassified"):
            detail += ", last capture suggests %s" % self.analysis["hint"]
        for code, z in (("vibration_zone_c", 2), ("vibration_zone_d", 3)):
            if (old == z) != (zone == z):
                self.alarm(code, zone == z, detail)

    def rms_mmps(self):
        return self.rms_01mv / 10.0 / MV_PER_MMPS

    def zone_name(self):
        if self.zone is None or self.zone < 0:
            return None
        return _ZONE_NAMES[self.zone]

    def on_capture(self, wave, rate_hz):
        """A 256-sample capture (mV): RMS, zone, dominant frequencies, fault hint."""
        if len(wave) != _N or not rate_hz > 0:
            raise ValueError("a capture is 256 samples at a positive rate")
        if self.spectrum is None:
            self.start()
        self.analysis = analyse(self.spectrum, wave, rate_hz, self.motor_hz, self.limits)
        return self.analysis

    def status(self):
        out = {"rms_mmps": round(self.rms_mmps(), 3), "zone": self.zone_name()}
        if self.analysis is not None:
            out["capture"] = self.analysis
        return out


def analyse(spec, wave, rate_hz, motor_hz, limits):
    n = len(wave)
    mean = sum(wave) / n
    ms = 0.0
    for v in wave:
        ms += (v - mean) * (v - mean)
    rms = math.sqrt(ms / n) / MV_PER_MMPS
    spec.compute(wave)
    bin_hz = rate_hz / _N
    p = spec.power
    # Dominant frequencies: the three strongest local maxima, interpolated between bins.
    # Kept as they are found: a list of every maximum would be a large block per capture.
    top = []  # (mv, k), strongest first (a tie goes to the higher k)
    for k in range(1, _N // 2):
        if p[k] > p[k - 1] and p[k] >= p[k + 1]:
            mv = spec.band_mv(k - _BAND, k + _BAND)
            i = len(top)
            while i and mv >= top[i - 1][0]:
                i -= 1
            if i < 3:
                top.insert(i, (mv, k))
                if len(top) > 3:
                    top.pop()
    dominant = []
    for mv, k in top:
        if mv / MV_PER_MMPS < 0.05 * rms:
            break
        dominant.append([round(_peak_hz(p, k) * bin_hz, 1), round(mv / MV_PER_MMPS, 3)])
    zone = zone_for(rms, limits)
    return {
        "rms_mmps": round(rms, 3),
        "zone": zone,
        "peaks": dominant,
        "hint": _hint(spec, rms, zone, bin_hz, motor_hz),
    }


def _peak_hz(p, k):
    a, b, c = math.sqrt(p[k - 1]), math.sqrt(p[k]), math.sqrt(p[k + 1])
    d = a - 2 * b + c
    return k + (0.5 * (a - c) / d if d else 0.0)


def _hint(spec, rms, zone, bin_hz, motor_hz):
    """A fault pattern, given only beyond zone A (a healthy machine is dominated by 1x
    too). Bearing wear: energy above 10.5x; looseness: harmonics 3x-10x; misalignment:
    2x at least 3/4 of 1x; imbalance: 1x carries most of the energy."""
    if zone == "A":
        return "none"
    p = spec.power
    lo = max(1, int(0.5 * motor_hz / bin_hz))
    hi = min(_N // 2 - 1, int(1.2 * motor_hz / bin_hz + 1))
    k1 = lo
    for k in range(lo, hi + 1):
        if p[k] > p[k1]:
            k1 = k
    f1 = _peak_hz(p, k1) if 0 < k1 < _N // 2 else k1  # 1x, in bins

    def amp(h):
        k = int(h * f1 + 0.5)
        if k + _BAND >= _N // 2:
            return 0.0
        return spec.band_mv(k - _BAND, k + _BAND) / MV_PER_MMPS

    a1 = amp(1)
    a2 = amp(2)
    harm2 = 0.0
    for h in range(3, 11):
        harm2 += amp(h) ** 2
    hi_k = int(10.5 * f1 + 0.5) + _BAND + 1
    high = spec.band_mv(hi_k, _N // 2 - 1) / MV_PER_MMPS if hi_k < _N // 2 - 1 else 0.0
    total2 = rms * rms
    if high * high >= 0.3 * total2:
        return "bearing"
    if harm2 >= 0.3 * total2:
        return "looseness"
    if a2 >= 0.75 * a1:
        return "misalignment"
    if a1 * a1 >= 0.5 * total2:
        return "imbalance"
    return "unclassified"
