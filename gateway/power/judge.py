# The output-against-power cross-check's rarer half (docs/crosscheck.md), loaded for each
# call only (gateway/power/crosscheck.py keeps the state): a window closing is judged
# against the power-implied mass and, if it agrees, learned as one row of exponentially
# weighted least squares (recursive least squares with forgetting, kept as its normal
# equations, which cannot wind up), the 3x3 system solved again; re-anchoring after a
# material test; the figures people ask for.
from math import sqrt

from hal.compat import const

# The normal equations, indices into CrossCheck.learn: the products of (t, d, m) with each
# other and with E, then ΣE², ΣE and the (weighted) count of rows.
_TT = const(0)
_TD = const(1)
_TM = const(2)
_DD = const(3)
_DM = const(4)
_MM = const(5)
_TE = const(6)
_DE = const(7)
_ME = const(8)
_EE = const(9)
_E = const(10)
_N = const(11)

_MEMORY = const(0.5)  # older windows fade with a time constant of learn_h/2 running hours
_PENDING_WEIGHT = const(0.25)  # a window off by tol/2..tol teaches a quarter as much
_RIDGE = const(1e-6)  # on the unit diagonal
_SPLIT = const(1e-4)  # against running time's and distance's shares differing (solve)
_SPREAD_MIN_PCT = const(10.0)  # load spread (std of t/h, % of design) needed to be ready
_SPEED_MARGIN = const(0.1)  # judged only within 2 std of the learned speeds, + 10 %
_DEV_CAP = const(999.0)
_ANCHOR_MIN = const(0.5)  # a re-anchoring factor outside the material factor's range is refused
_ANCHOR_MAX = const(2.0)
_PAUSED = const((None, "scale fault", "meter fault", "calibration", "mismatch"))


def _add(s, k, t, d, m, e):
    # One row of weight k.
    s[_TT] += k * t * t
    s[_TD] += k * t * d
    s[_TM] += k * t * m
    s[_DD] += k * d * d
    s[_DM] += k * d * m
    s[_MM] += k * m * m
    s[_TE] += k * t * e
    s[_DE] += k * d * e
    s[_ME] += k * m * e
    s[_EE] += k * e * e
    s[_E] += k * e
    s[_N] += k


def solve(s):
    """(c0, c1, c2) from the sums, or None without data. Columns scaled to a unit diagonal;
    a penalty on running time's and distance's shares differing (at one speed they cannot
    be told apart: a belt whose speed barely varies would split them by its noise, and
    extrapolate wildly) and a small ridge; Cramer's rule: exact arithmetic order on every
    interpreter."""
    if s[_TT] <= 0 or s[_DD] <= 0 or s[_MM] <= 0:
        return None
    k0 = 1 / sqrt(s[_TT])
    k1 = 1 / sqrt(s[_DD])
    k2 = 1 / sqrt(s[_MM])
    a00 = a11 = 1 + _RIDGE + _SPLIT
    a22 = 1 + _RIDGE
    a01 = s[_TD] * k0 * k1 - _SPLIT
    a02 = s[_TM] * k0 * k2
    a12 = s[_DM] * k1 * k2
    b0 = s[_TE] * k0
    b1 = s[_DE] * k1
    b2 = s[_ME] * k2
    c00 = a11 * a22 - a12 * a12
    c01 = a02 * a12 - a01 * a22
    c02 = a01 * a12 - a11 * a02
    c11 = a00 * a22 - a02 * a02
    c12 = a01 * a02 - a00 * a12
    c22 = a00 * a11 - a01 * a01
    det = a00 * c00 + a01 * c01 + a02 * c02
    if det <= 0:
        return None
    return (
        (c00 * b0 + c01 * b1 + c02 * b2) / det * k0,
        (c01 * b0 + c11 * b1 + c12 * b2) / det * k1,
        (c02 * b0 + c12 * b1 + c22 * b2) / det * k2,
    )


def _spread(s, ij, jj):
    """The weighted mean and std of column j per running hour over the learned rows: t/h
    for mass, km/h for distance."""
    if s[_TT] <= 0:
        return 0.0, 0.0
    mean = s[ij] / s[_TT]
    var = s[jj] / s[_TT] - mean * mean
    return mean, sqrt(var) if var > 0 else 0.0


def fit_pct(s, coef):
    """RMS residual of the learned windows, % of their mean energy."""
    if coef is None or s[_N] <= 0 or s[_E] <= 0:
        return None
    c0, c1, c2 = coef
    sse = (
        s[_EE]
        - 2 * (c0 * s[_TE] + c1 * s[_DE] + c2 * s[_ME])
        + c0 * c0 * s[_TT]
        + c1 * c1 * s[_DD]
        + c2 * c2 * s[_MM]
        + 2 * (c0 * c1 * s[_TD] + c0 * c2 * s[_TM] + c1 * c2 * s[_DM])
    )
    return sqrt(max(sse, 0.0) / s[_N]) / (s[_E] / s[_N]) * 100


# --- a window closes


def carry_t(xc):
    """What the drive has still to carry of what the scale weighed (t): the mass on the
    carry (CrossCheck.ring), each bin by the share of the carry it has left to go."""
    ring = xc.ring
    n = len(ring)
    out = 0.0
    for k in range(n):
        out += ring[(xc.bin - k) % n] * (n - k - 0.5)
    return out / n


def close_window(xc):
    w = xc.wsum
    # Energy is spent carrying material from the frame to the head: count the part of the
    # carrying done in this window, not the mass weighed in it.
    carry = carry_t(xc)
    lag = xc.carry0 - carry
    xc.carry0 = carry
    t, d, m, e = w[0], w[1], w[2] + lag, w[3]
    w[6] += lag
    weight = 0.0 if xc.win_bad or xc.now_bad else 1.0
    if xc.ready:
        implied = xc.implied_t(t, d, e)
        dev = _deviation(xc, t, d, m, implied)
        if xc.anchor is not False and dev is not None and _reanchor(xc, dev):
            weight = 1.0
        elif xc.anchor is not False:
            weight = 0.0  # nothing learned between the material test and its window
        elif dev is not None:
            _verdict(xc, dev, t, m, implied)
            if xc.win_bad:
                weight = 0.0
            elif abs(dev) > xc.tol_pct / 2:
                weight *= _PENDING_WEIGHT
    if weight > 0 and w[4] > 0:
        _merge(xc, weight)
    for i in range(8):
        w[i] = 0.0


def _deviation(xc, t, d, m, implied):
    """The window's scale against power (%), or None when it is not judged: a low load,
    or a belt speed the model has not learned."""
    if max(m, implied) < xc.min_tph * t:
        return None
    v_mean, v_std = _spread(xc.learn, _TD, _DD)
    if abs(d / t - v_mean) > 2 * v_std + _SPEED_MARGIN * v_mean:
        return None
    dev = (m - implied) / max(implied, xc.design_tph * t / 20) * 100
    return max(-_DEV_CAP, min(_DEV_CAP, dev))


def _verdict(xc, dev, t, m, implied):
    # Hysteresis: beyond the tolerance raises, within half of it clears.
    xc.dev_pct = dev
    xc.windows += 1
    mag = abs(dev)
    if mag > xc.tol_pct:
        xc.win_bad = True
        if xc._due():
            xc._set(
                "scale %s by %.1f %% against the drive's power over %.1f running min "
                "(scale %.1f t, power implies %.1f t)"
                % ("under-reads" if dev < 0 else "over-reads", mag, t * 60, m, implied)
            )
    elif mag <= xc.tol_pct / 2:
        xc.win_bad = False
        if xc._due():
            xc._set("scale and drive power agree again (%.1f %%)" % dev)


def _merge(xc, weight):
    """The window's clean intervals into the model as one row of `weight`, older rows
    forgotten by e^(-weight*t/(learn_h/2)) (a Padé ratio: no exp, the same on every
    interpreter). A whole window, not each interval: what an interval's energy carries was
    weighed over the belt's transit, partly in the interval before."""
    w = xc.wsum
    t = w[4]
    x = min(weight * t / (xc.learn_h * _MEMORY), 1.0) / 2
    f = (1 - x) / (1 + x)
    s = xc.learn
    for i in range(12):
        s[i] *= f
    _add(s, weight, t, w[5], w[6], w[7])
    xc.hours += t
    coef = solve(s)
    if coef is None or coef[2] <= 0:
        return
    xc.coef = coef
    if not xc.ready and xc.hours >= xc.learn_h:
        if _spread(s, _TM, _MM)[1] * 100 >= _SPREAD_MIN_PCT * xc.design_tph:
            xc.ready = True
            xc.emit("event", {"code": "crosscheck_ready", "detail": _model(xc)})


# --- the technician


def reanchor(xc, who):
    for i in range(8):
        xc.wsum[i] = 0.0
    xc.carry0 = carry_t(xc)
    who = who or ""
    if xc.ready:
        xc.anchor = who
        return
    for i in range(12):
        xc.learn[i] = 0.0
    xc.hours = 0.0
    xc.coef = None
    detail = {"by": who, "restart": True}
    xc.emit("event", {"code": "crosscheck_reanchored", "detail": detail})


def _reanchor(xc, dev):
    r = 1 + dev / 100
    detail = {"by": xc.anchor, "factor": r}
    xc.anchor = False
    if not _ANCHOR_MIN <= r <= _ANCHOR_MAX:
        # No material test moves a scale that far: judge the window as any other.
        detail["refused"] = True
        xc.emit("event", {"code": "crosscheck_reanchored", "detail": detail})
        return False
    # Every learned mass as the corrected scale would have weighed it.
    s = xc.learn
    s[_TM] *= r
    s[_DM] *= r
    s[_ME] *= r
    s[_MM] *= r * r
    xc.coef = (xc.coef[0], xc.coef[1], xc.coef[2] / r)
    if xc.win_bad:
        xc.win_bad = False
        if xc._due():
            xc._set("re-anchored by a material test")
    xc.emit("event", {"code": "crosscheck_reanchored", "detail": detail})
    return True


# --- for people


def _model(xc):
    c = xc.coef or (0.0, 0.0, 0.0)
    return {"kw_run": c[0], "kwh_per_km": c[1], "kwh_per_t": c[2], "hours": xc.hours}


def status(xc):
    s = xc.learn
    out = _model(xc)
    out["state"] = "ready" if xc.ready else "learning"
    out["learn_h"] = xc.learn_h
    out["spread_pct"] = _spread(s, _TM, _MM)[1] * 100 / xc.design_tph
    out["fit_pct"] = fit_pct(s, xc.coef)
    out["window_min"] = xc.wsum[0] * 60
    out["windows"] = xc.windows
    out["dev_pct"] = xc.dev_pct
    out["mismatch"] = xc.win_bad or xc.now_bad
    out["paused"] = _PAUSED[xc.paused]
    if xc.anchor is not False:
        out["anchor"] = "waiting for a loaded window"
    return out
