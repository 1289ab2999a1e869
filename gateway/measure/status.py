# The measurement's figures for people (the CLI's status, the center's status, the
# monitor), loaded for the call only (gateway/ondemand.py).
from gateway.measure.production import _conv_g, _kg
from hal.compat import const

_BLOCK_HZ = const(10)


def measurement(m):
    sc = m.scale
    s = {
        "load_kgpm": round(sc.load_kgpm(), 3),
        "speed_mps": round(sc.speed_mps(), 3),
        "rate_tph": round(sc.rate_shown_tph(), 2),
        "rate_now_tph": round(sc.rate_tph(), 2),
        "total_kg": sc.total_kg(),
        "zero_counts": sc.zero_eff,
        "autozero_counts": sc.az_counts,
        "weighing": sc.ok,
        "autozero_at_limit": m.autozero.at_limit,
        "estimated_kg": sc.est_g / 1000,
    }
    if sc.hold:
        s["hold"] = sc.hold  # mass waits (docs/measurement.md)
    if sc.speed_lost:
        s["speed_estimated"] = True
    if sc.test_load:
        s["test_load"] = True  # the totalizer stops until it is removed
    r = m.running
    return {
        "scale": s,
        "running": {
            "state": r.state(),
            "di1": r.di1,
            "loaded": r.loaded,
            "run_s": r.run_blocks / _BLOCK_HZ,
            "loaded_run_s": r.loaded_blocks / _BLOCK_HZ,
        },
        "production": production(m.production),
        "vibration": m.vibration.status(),
        "calibration": m.cal.progress() if m.cal is not None else {"state": "idle"},
    }


def production(p):
    out = {"coef": p.coef_ppm / 1e6, "coef_history": [[t, c] for t, c, _ in p.history]}
    iv = p.iv
    if iv is not None:
        out["interval"] = {"t0": iv["t0"], "t1": iv["t1"], "mass_kg": _kg(iv["g"] + p._pg)}
    for kind, per in p.periods.items():
        out[kind] = {
            "key": per[1],
            "mass_kg": _kg(per[2] + p._pg),
            "conv_kg": _kg(_conv_g(per[3] + p._pg * p.coef_ppm)),
        }
    for kind, last in p.last.items():
        out["last_" + kind] = {
            "key": last[0],
            "mass_kg": _kg(last[1]),
            "conv_kg": _kg(last[2]),
        }
    return out
