# The records of rare measurement incidents: a collector restart, a counter
# discontinuity, a bridged (or unbridged) outage. Loaded on demand for each one
# (gateway/ondemand.py): none of this code stays on the heap between incidents.
from hal.compat import const

_H_COUNTERS = const(2)  # Scale.hold's bit: the counters disagree


def report(m, s):
    """After a poll whose scale flags an incident (Measurement.on_sample). In small
    functions: each one's code is a block of its own on a fragmented heap."""
    sc = m.scale
    if sc.restarted and not sc.jumped:
        _restart(m, sc, s)
    if bool(sc.hold & _H_COUNTERS) != m._seen[5]:
        _counters(m, sc, s)
    if sc.gap[5]:
        _gap(m, sc)


def _restart(m, sc, s):
    # Travel while the collector was down is not known: say how long that was.
    gap = sc.restart_gap_ms
    m.emit("event", {"code": "pulse_counter_reset", "detail": {
        "pulses": s.pulses,
        "block_seq": s.block_seq,
        "counted": sc.dp,
        "uncounted_s": None if gap is None else gap / 1000,
    }})


def _counters(m, sc, s):
    bad = m._seen[5] = bool(sc.hold & _H_COUNTERS)
    if bad:
        detail = "block_seq %d, uptime %d s, pulses %d disagree (with each other, the " \
            "gateway's clock or 8 m/s): nothing is counted until they agree" % (
                s.block_seq, s.uptime_s, s.pulses)
        m.emit("event", {"code": "counter_discontinuity", "detail": {
            "block_seq": s.block_seq,
            "uptime_s": s.uptime_s,
            "pulses": s.pulses,
            "restart": sc.restarted,
            "counted": False,
        }})
    else:
        detail = "the collector's counters agree again"
    m.alarm("collector_counters_inconsistent", bad, detail)


def _gap(m, sc):
    # An outage (of the gateway, or of the link) is bridged by the loads either side,
    # flagged as estimated, up to 6 checkpoint periods; beyond it only its travel is told.
    dp, g, bridged = sc.gap[:3]
    m.emit("event", {"code": "measurement_gap", "detail": {
        "s": sc.gap[5] / 10,
        "travel_m": round(dp / sc.pulses_per_m, 1),
        "bridged": bridged,
        "est_kg": g / 1000 if bridged else 0,
        "after": "restart" if m.restored else "link",
    }})
