# The records of rare measurement incidents: a collector restart, a counter
# discontinuity, a bridged (or unbridged) outage. Loaded on demand for each one
# (gateway/ondemand.py): none of this code stays on the heap between incidents.
from gateway.measure.scale import H_COUNTERS


def report(m, s):
    """After a poll whose scale flags an incident (Measurement.on_sample)."""
    sc = m.scale
    ppm = sc.pulses_per_m
    if sc.restarted and not sc.jumped:
        # Travel while the collector was down is not known: say how long that was.
        gap = sc.restart_gap_ms
        m.emit("event", {"code": "pulse_counter_reset", "detail": {
            "pulses": s.pulses,
            "block_seq": s.block_seq,
            "counted": sc.dp,
            "uncounted_s": None if gap is None else gap / 1000,
        }})
    bad = bool(sc.hold & H_COUNTERS)
    if bad != m.counters_bad:
        m.counters_bad = bad
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
    if sc.gap_n:
        # An outage (of the gateway, or of the link) is bridged by the loads either side,
        # flagged as estimated, up to scale.bridge_max_s; beyond it only its travel is told.
        m.emit("event", {"code": "measurement_gap", "detail": {
            "s": sc.gap_n / 10,
            "travel_m": round(sc.gap_dp / ppm, 1),
            "bridged": sc.gap_bridged,
            "est_kg": sc.gap_g / 1000 if sc.gap_bridged else 0,
            "after": "restart" if m.restored else "link",
        }})
    m.restored = False
