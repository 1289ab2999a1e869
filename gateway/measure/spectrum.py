# A vibration capture's analysis (gateway/measure/vibration.py): velocity RMS, ISO zone,
# the dominant frequencies and a fault hint, from a 256-point fixed-point FFT in small
# integers (no numpy on MicroPython, no float allocations per butterfly), scaled by 1/2 per
# stage after normalising the input. Loaded for each capture and forgotten (ondemand.call):
# captures come every collector.capture_s (10 s), and this code and its tables would
# otherwise hold ~6 KB of a 256K heap between them. The buffers it works in are the
# vibration's, made at start-up while the heap is whole.
import math

from gateway.measure.vibration import MV_PER_MMPS, buffers, zone_for
from hal.compat import const

_N = const(256)
_Q = const(14)
_BAND = const(2)  # a Hann-windowed tone spreads over +-2 bins


class Spectrum:
    """Power spectrum of 256 samples: Hann window, fixed-point radix-2 FFT, in the
    buffers given (vibration.buffers()) or its own. Twiddles and window are worked out as used."""

    def __init__(self, bufs=None):
        self.re, self.im, self.power = bufs or buffers()
        self.shift = 0

    def compute(self, wave):
        """Fill power[k] (k = 0..128) for the 256 samples; returns the normalising shift
        (power is scaled by 4**shift / N**2 against the input's units)."""
        re, im = self.re, self.im
        q = 1 << _Q
        w = 2 * math.pi / _N
        mean = sum(wave) // _N
        peak = 0
        for i in range(_N):
            win = int(round((0.5 - 0.5 * math.cos(w * i)) * q))
            v = ((wave[i] - mean) * win) >> _Q
            r, x = 0, i
            for _ in range(8):  # i's bits reversed: where it goes in decimation in time
                r = (r << 1) | (x & 1)
                x >>= 1
            re[r] = v
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
        size = 2
        step = _N // 2
        while size <= _N:
            half = size >> 1
            for j in range(half):
                # The twiddle of every butterfly at offset j of this stage.
                k = j * step
                c = int(round(math.cos(w * k) * q))
                s = int(round(math.sin(w * k) * q))
                for a in range(j, _N, size):
                    b = a + half
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


def analyse(bufs, wave, rate_hz, motor_hz, limits):
    """A capture's figures: rms_mmps, zone, peaks ([Hz, mm/s] strongest first), hint."""
    spec = Spectrum(bufs)
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
    a1 = _amp(spec, f1, 1)
    a2 = _amp(spec, f1, 2)
    harm2 = 0.0
    for h in range(3, 11):
        harm2 += _amp(spec, f1, h) ** 2
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


def _amp(spec, f1, h):
    # The h-th harmonic's RMS (mm/s), 1x at f1 bins.
    k = int(h * f1 + 0.5)
    if k + _BAND >= _N // 2:
        return 0.0
    return spec.band_mv(k - _BAND, k + _BAND) / MV_PER_MMPS
