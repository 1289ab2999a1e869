# Taking a new parameter set (the flat config): the scale's constants, auto-zero's,
# production's, and the measurement's limits. Loaded for the call (gateway/ondemand.py):
# at start-up and at a parameter change, never per poll.
from gateway.measure.scale import ScaleError
from hal.compat import const

_BLOCK_HZ = const(10)
_LIN_Q = const(30)  # linearization factors in Q30
_MAX_MPS = const(8)  # as in scale.py: the speed sensor's range
_MAX_PPM = const(1000)  # the largest plausible pulses per metre of a belt speed sensor
_BRIDGE_CHECKPOINTS = const(6)  # a gap up to this many checkpoint periods is bridged
_CAP = const(64)  # the drop-out gate's ring
_RATE_CAP_X = const(2)  # a record's rate is never above twice the design rate
# Indices into Scale.gap, Scale._hd and Scale._ls (scale.py's private consts)
_GAP_MAX_N = const(3)
_HD_G = const(1)
_HD_EST = const(3)
_LS_MOTION = const(7)


def rev_pulses(scale, belt_length_m):
    """Pulses per belt revolution."""
    return int(belt_length_m * scale.pulses_per_m + 0.5)


def scale(sc, flat):
    """Scale.apply_params."""
    ppm = float(flat["scale.pulses_per_m"])
    wl = float(flat["scale.weigh_length_m"])
    span = float(flat["scale.span_kg_per_count"])
    mf = float(flat["scale.material_factor"])
    if ppm <= 0 or wl <= 0 or span <= 0 or mf <= 0:
        raise ScaleError("pulses_per_m, weigh_length_m, span and material_factor must be > 0")
    sc.pulses_per_m = ppm
    sc.weigh_length_m = wl
    sc.span_kg_per_count = span
    sc.material_factor = mf
    sc.zero_counts = int(flat["scale.zero_counts"])
    design_mps = float(flat["scale.design_speed_mps"])
    sc.design_kgpm = float(flat["scale.design_tph"]) / (3.6 * design_mps)
    # Net counts per kg/m of measured load (before linearization).
    sc.counts_per_kgpm = wl / (span * mf)
    k_g = span * mf * 1000.0 / (wl * ppm)  # grams per count x pulse
    shift = 32
    while k_g * (1 << shift) < (1 << 24) and shift < 60:
        shift += 4
    old = getattr(sc, "shift", shift)
    sc.shift = shift
    if shift != old:
        _rescale(sc, old)
    sc._kq = int(k_g * (1 << shift) + 0.5)
    sc.dropout_pct = float(flat["scale.dropout_pct"])
    sc._thr256 = counts256_for_pct(sc, sc.dropout_pct)
    sc._half_p = int(float(flat["scale.dropout_window_m"]) * ppm / 2 + 0.5)
    # A gap's pulses beyond the sensor's range (plus margin) is a counter jump.
    sc._max_ppb = int(_MAX_MPS * max(1.25 * ppm, _MAX_PPM) / _BLOCK_HZ) + 2
    sc.gap[_GAP_MAX_N] = _BRIDGE_CHECKPOINTS * int(flat["store.checkpoint_s"]) * _BLOCK_HZ
    sc._tau_blocks = int(float(flat["scale.damping_s"]) * _BLOCK_HZ + 0.5)
    lin = flat["scale.linearization"]
    design = sc.design_kgpm * sc.counts_per_kgpm
    sc._lin_counts = [int(p[0] / 100.0 * design) for p in lin]
    sc._lin_f = [int((1.0 + p[1] / 100.0) * (1 << _LIN_Q) + 0.5) for p in lin]
    # The belt moves under the frame when its load changes by 0.2 % of design load.
    sc._ls[_LS_MOTION] = max(1, int(design / 500))
    sc._update_zero()


def _rescale(sc, old):
    # The fine unit 2**-shift g changed with the parameters: carry what is held over.
    def conv(v):
        return v << (sc.shift - old) if sc.shift >= old else v >> (old - sc.shift)

    sc._frac = conv(sc._frac)
    sc._deficit = conv(sc._deficit)
    hd = sc._hd
    hd[_HD_G] = conv(hd[_HD_G])
    hd[_HD_EST] = conv(hd[_HD_EST])
    sc._rate_u = conv(sc._rate_u)
    sc._rate_d = conv(sc._rate_d)
    for i in range(_CAP):
        sc._g_inc[i] = conv(sc._g_inc[i])


def counts256_for_pct(sc, pct):
    """256 x the net counts of pct % of the design load (integer threshold)."""
    return int(pct / 100.0 * sc.design_kgpm * sc.counts_per_kgpm * 256 + 0.5)


def autozero(az, flat):
    """AutoZero.apply_params."""
    s = az.scale
    az.enabled = bool(flat["scale.autozero"])
    az.rev_p = rev_pulses(s, flat["scale.belt_length_m"])
    band = min(float(flat["scale.autozero_band_pct"]), s.dropout_pct)
    az._band256 = counts256_for_pct(s, band)
    design = s.design_kgpm * s.counts_per_kgpm
    az.limit_counts = int(float(flat["scale.autozero_limit_pct"]) / 100.0 * design)
    # Smaller moves than 0.01 % of design load are not worth an event each.
    az.deadband = max(1, int(design / 10000))
    az.step = max(1, int(design / 1000))
    az._check_n = int(float(flat["scale.zero_check_h"]) * 36000)
    az.acc_cp = az.acc_p = 0


def _parse_shifts(shifts):
    return [int(s[:2]) * 60 + int(s[3:]) for s in shifts]


def production(p, flat):
    """Production.apply_params."""
    p.interval_s = int(flat["production.interval_s"])
    offset = int(flat["production.utc_offset_min"])
    shifts = _parse_shifts(flat["production.shifts"])
    if shifts != getattr(p, "shift_min", None) or offset != getattr(
        p, "utc_offset_min", None
    ):
        p.shift_min = shifts
        p.utc_offset_min = offset
        p._next_boundary = None  # keys computed again at the next tick
    p._coef_req = (float(flat["production.coef"]), int(flat["production.coef_from"]))
    p._rate_cap = _RATE_CAP_X * float(flat["scale.design_tph"])


def measurement(m, flat):
    """Measurement.apply_params. A new scale.zero_counts (a zero calibration, or a
    technician's set) starts auto-zero from no correction."""
    old = m.flat
    scale(m.scale, flat)
    autozero(m.autozero, flat)
    if m.cal is not None:
        m.cal.apply_params(flat)
    m.running.apply_params(flat)
    m.vibration.apply_params(flat)
    production(m.production, flat)
    lims = flat["alarms.limits_pct"]
    for i in range(6):
        m._lim[i] = lims[i]
    if old is not None and old["scale.zero_counts"] != flat["scale.zero_counts"]:
        m.autozero.reset()
    m.flat = flat
