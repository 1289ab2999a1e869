# Field events against the belt model, in simulated time: each row of issue 14 as a
# scenario on a copy of a commissioned rig (emulator/scale_runs.py), with the figure it
# must end at. tests/test_field_events.py asserts them; `python -m emulator.field_events`
# prints the table of docs/measurement.md.
import copy
import sys

from emulator.belt import WRAP
from emulator.scale_runs import TECHNICIAN, Manual, _speed_by_marks, commission

H = 3600.0


def _prods(rig, since=0):
    return [f for t, f in rig.records[since:] if t == "prod"]


def _events(rig, code, since=0):
    return [f["detail"] for t, f in rig.records[since:] if t == "event" and f["code"] == code]


def _raised(rig, code, since=0):
    return any(c == code and on for c, on, _ in rig.alarms[since:])


class _Meter:
    """True and counted mass from now on."""

    def __init__(self, rig):
        self.rig = rig
        self.true0 = rig.belt.true_mass_kg
        self.g0 = rig.m.scale.total_g

    def true_kg(self):
        return self.rig.belt.true_mass_kg - self.true0

    def counted_kg(self):
        return (self.rig.m.scale.total_g - self.g0) / 1000


def _loaded(base, tph=800.0, mps=2.5, settle_s=60):
    rig = copy.deepcopy(base)
    rig.belt.profile = Manual(tph, mps)
    rig.run(settle_s)
    return rig


def _row(n, event, expected, result, ok, **figures):
    figures.update({"row": n, "event": event, "expected": expected, "result": result, "ok": ok})
    return figures


# --- 1: the collector replaced by a used unit
def collector_swap(base, ahead):
    rig = _loaded(base)
    b, u = rig.belt, rig.unit
    n_rec, n_al = len(rig.records), len(rig.alarms)
    if ahead:  # up 58 days: block_seq and uptime far ahead of ours, and consistent
        seq, up, pulses = b.block_seq + 50000000, b.uptime_s() + 5000000, b.pulses + 100000000
    else:  # up 20 min: behind ours, as a restart of ours would look
        seq, up, pulses = 12000, 1200, 1000000
    u.seq_add = (seq - b.block_seq) % WRAP
    u.uptime_add = up - b.uptime_s()
    u.pulses_add = (pulses - b.pulses) % WRAP
    rig.serial = 2002
    rig.step()  # the first poll of it decides what our unit left in the gate
    meter = _Meter(rig)
    rig.run(60)
    counted = meter.counted_kg()
    true = meter.true_kg()
    inconsistent = _raised(rig, "collector_counters_inconsistent", n_al)
    # The registered unit comes back: its counters jump again, its serial matches.
    u.seq_add = u.uptime_add = u.pulses_add = 0
    rig.serial = rig.registered
    rig.step()  # what the other unit left in the gate is decided: not ours, not counted
    back = _Meter(rig)
    rig.run(60)
    b.profile.feed_tph = 0.0
    rig.run(30)  # the frame clears, the gate decides
    back_err = (back.counted_kg() / back.true_kg() - 1) * 100
    unweighed_m = sum(p["unweighed_m"] for p in _prods(rig, n_rec))
    ok = counted == 0 and inconsistent and unweighed_m > 0 and abs(back_err) < 1.0
    which = "ahead" if ahead else "behind"
    return _row(
        "1", "collector swapped for a used unit, its block_seq %s of ours" % which,
        "0 kg counted from it, collector_counters_inconsistent, travel reported; counting "
        "again once our unit is back",
        "%.0f kg counted of %.0f kg passed, alarm %s, %.0f m unweighed; back: %+.2f %%"
        % (counted, true, "raised" if inconsistent else "NOT raised", unweighed_m, back_err),
        ok, counted_kg=counted, true_kg=true, unweighed_m=unweighed_m,
        inconsistent=inconsistent, back_err_pct=back_err)


# --- 2: test loads of a span calibration
def span_test_load(base):
    rig = copy.deepcopy(base)
    b = rig.belt
    b.profile = Manual(0.0, 2.5)
    rig.run(30)
    n_rec = len(rig.records)
    meter = _Meter(rig)
    cal = rig.m.calibrator()
    cal.start("span_weight", test_kg=100.0)
    rig.run(30)  # the technician walks to the frame
    b.test_weight_kg = 100.0
    rig.run_until(lambda: cal.progress()["state"] != "running", 600)
    rig.set_params(cal.confirm(technician=TECHNICIAN))
    rig.run(120)  # the result is read, the weights still hang
    # (a firmware without the declaration, to measure what it did, just goes on)
    removed = getattr(rig.m.calibrator(), "weights_removed", lambda who: None)
    refused = False
    try:
        removed(TECHNICIAN)
    except ValueError:
        refused = True  # the frame still carries them
    b.test_weight_kg = 0.0
    rig.run(5)
    removed = getattr(rig.m.calibrator(), "weights_removed", lambda who: None)
    removed(TECHNICIAN)
    rig.run(70)
    counted = meter.counted_kg()
    cal_m = sum(p.get("calibrating_m", 0) for p in _prods(rig, n_rec))
    ok = counted == 0 and refused and cal_m > 3 * b.belt_length_m
    return _row(
        "2", "span with 100 kg test weights: started, weights hung 30 s later, confirmed, "
        "read for 2 min, removed",
        "0 kg counted; the removal declared only once the frame is clear; calibrating_m "
        "in the prod records",
        "%.1f kg counted, early declaration %s, calibrating_m %.0f m"
        % (counted, "refused" if refused else "ACCEPTED", cal_m),
        ok, counted_kg=counted, calibrating_m=cal_m)


# --- 4: zero calibrations walking the zero
def zero_walk(base, steps=5, step_pct=1.9):
    rig = copy.deepcopy(base)
    b, s = rig.belt, rig.m.scale
    b.profile = Manual(0.0, 2.5)
    design = s.design_kgpm * s.counts_per_kgpm
    ref = rig.flat["scale.zero_counts"]
    accepted = 0
    for _ in range(steps):
        b.offsets[0] += step_pct / 100 * design
        cal = rig.m.calibrator()
        cal.start("zero")
        rig.run_until(lambda: cal.progress()["state"] != "running", 600)
        try:
            rig.set_params(cal.confirm())  # no technician, no force
            accepted += 1
        except ValueError:
            cal.abort()
    walked = (rig.flat["scale.zero_counts"] - ref) / design * 100
    refused = len(_events(rig, "cal_refused"))
    ok = walked <= rig.flat["scale.zero_limit_pct"] and refused == steps - accepted > 0
    return _row(
        "4", "%d zero calibrations of %.1f %% each, no force, no technician" % (steps, step_pct),
        "the zero stays within zero_limit_pct of the verified zero; the rest refused",
        "%d accepted, %d refused, the zero moved %.1f %% of design load"
        % (accepted, refused, walked),
        ok, accepted=accepted, walked_pct=walked)


# --- 10, 11: material tests
def _batch(rig, feed_s, tph=800.0):
    b = rig.belt
    true0 = b.true_mass_kg
    b.profile.feed_tph = tph
    rig.run(feed_s)
    b.profile.feed_tph = 0.0
    rig.run(b.load_to_frame_m / 2.5 + 10)
    return b.true_mass_kg - true0


def material_small(base):
    rig = copy.deepcopy(base)
    rig.belt.profile = Manual(0.0, 2.5)
    cal = rig.m.calibrator()
    p = cal.start("material")
    told = "min_revolutions" in p
    kg = _batch(rig, 10)
    cal.finish(kg)
    rig.run(10)
    p = cal.progress()
    ok = told and p["state"] == "failed"
    return _row(
        "10", "a material test with a 10 s batch (%.2f revolutions)" % (10 * 2.5 / 187.3),
        "refused (3 revolutions of loaded travel, 1000 divisions), told at the start",
        "%s%s" % (p["state"], ": " + p["error"] if p.get("error") else ""),
        ok, state=p["state"])


def material_late_figure(base, gap_s):
    rig = copy.deepcopy(base)
    b = rig.belt
    b.profile = Manual(0.0, 2.5)
    factor = rig.flat["scale.material_factor"]
    cal = rig.m.calibrator()
    cal.start("material")
    kg = _batch(rig, 600)
    rig.run(gap_s)  # the belt runs empty
    _batch(rig, 300)  # production for 5 min before the weighed mass is typed
    cal.finish(kg)
    rig.run(10)
    p = cal.progress()
    new = p.get("result", {}).get("new", {}).get("scale.material_factor")
    try:
        rig.set_params(cal.confirm(technician=TECHNICIAN))
        applied = True
    except ValueError:
        applied = False
    change = (new / factor - 1) * 100 if new else None
    if gap_s >= 187.3 / 2.5:
        ok = applied and abs(change) < 0.1
        expected = "the belt emptied: the batch ended there, the factor right"
    else:
        ok = not applied and change < -10
        expected = "no end mark: the factor proposed is out of the 10 % band, refused unforced"
    return _row(
        "11", "production for 5 min after a batch (belt empty %d s between), then its "
        "weighed mass" % gap_s,
        expected,
        "factor %s (%+.1f %%), %s" % ("%.3f" % new if new else "-", change or 0,
                                      "applied" if applied else "refused"),
        ok, change_pct=change, applied=applied)


# --- 3: a dribble taken for drift
def dribble(base, pct=1.2, dribble_s=300, after_s=1200):
    rig = copy.deepcopy(base)
    b, s = rig.belt, rig.m.scale
    design_tph = rig.flat["scale.design_tph"]
    design = s.design_kgpm * s.counts_per_kgpm
    b.profile = Manual(0.0, 2.5)
    rig.run(2 * b.belt_length_m / 2.5)  # empty: auto-zero at rest
    az0 = s.az_counts
    b.profile.feed_tph = design_tph * pct / 100
    rig.run(dribble_s)
    moved_pct = (s.az_counts - az0) / design * 100
    b.profile.feed_tph = 800.0
    rig.run(60)
    meter = _Meter(rig)
    rig.run(after_s)
    err = (meter.counted_kg() / meter.true_kg() - 1) * 100
    ok = abs(moved_pct) < 0.15 and abs(err) < 0.1
    return _row(
        "3", "a dribble of %.1f %% of design for %d min, then production" % (pct, dribble_s // 60),
        "the zero moves < 0.15 %, production after it within 0.1 %",
        "zero moved %+.3f %% of design, production %+.3f %%" % (moved_pct, err),
        ok, zero_moved_pct=moved_pct, err_pct=err)


# --- 5: the speed sensor gives no pulses
def _freeze(rig, off_bit=False):
    u = rig.unit
    u.pulses_frozen = (rig.belt.pulses + u.pulses_add) % WRAP
    u.sensor_off_bit = off_bit


def _thaw(rig):
    u = rig.unit
    # The counter goes on from where the dead sensor left it.
    u.pulses_add = (u.pulses_frozen - rig.belt.pulses) % WRAP
    u.pulses_frozen = None
    u.sensor_off_bit = False


def speed_sensor_loss(base, loss_s=60, off_bit=False):
    rig = _loaded(base)
    n_rec = len(rig.records)
    meter = _Meter(rig)
    _freeze(rig, off_bit)
    rig.run(loss_s)
    lost_flag = getattr(rig.m.scale, "speed_lost", False)
    _thaw(rig)
    rig.run(30)
    true, counted = meter.true_kg(), meter.counted_kg()
    prods = _prods(rig, n_rec)
    est = sum(p.get("est_kg", 0) for p in prods)
    unweighed_s = sum(p.get("unweighed_s", 0) for p in prods)
    err = (counted / true - 1) * 100
    bound_s = 600  # the estimate's bound
    if loss_s <= bound_s:
        ok = lost_flag and abs(err) < 1.0 and est > 0.5 * true * loss_s / (loss_s + 30)
        expected = "estimated from the last speed, flagged est_kg, within 1 %"
    else:
        ok = lost_flag and abs(unweighed_s - (loss_s - bound_s)) < 5 and est > 0
        expected = "estimated for %d s, then reported as unweighed time" % bound_s
    return _row(
        "5", "speed sensor without pulses for %d s, DI1 on, loaded%s"
        % (loss_s, " (status bit 4)" if off_bit else ""),
        expected,
        "%.0f kg counted of %.0f kg passed (%+.2f %%), est_kg %.0f, unweighed_s %.0f"
        % (counted, true, err, est, unweighed_s),
        ok, err_pct=err, est_kg=est, unweighed_s=unweighed_s, counted_kg=counted, true_kg=true)


def belt_stalled(base, stall_s=60):
    rig = _loaded(base)
    n_al = len(rig.alarms)
    b = rig.belt
    b.slipping = True
    rig.run(10)
    meter = _Meter(rig)
    rig.run(stall_s)
    counted = meter.counted_kg()
    slip = _raised(rig, "belt_slip", n_al)
    lost = getattr(rig.m.scale, "speed_lost", False)
    b.slipping = False
    rig.run(20)
    ok = counted == 0 and slip and not lost
    return _row(
        "5", "the loaded belt stalls on the drive pulley (DI1 on, no pulses) for %d s" % stall_s,
        "nothing estimated (the load under the frame does not change): 0 kg, belt_slip",
        "%.1f kg counted, belt_slip %s" % (counted, "raised" if slip else "NOT raised"),
        ok, counted_kg=counted, slip=slip)


# --- 6, 7: the gateway off while the belt runs
def _cut(rig, after_s, down_s, feed_off_after_s=None, feed_on_before_s=None, with_tail=False):
    """Checkpoint, run on after_s (work the cut loses), off for down_s (the feed stopped
    and started again meanwhile if asked), then a fresh Measurement restored from the
    checkpoint (reconciled with the log's tail when with_tail)."""
    snap = copy.deepcopy(rig.m.snapshot())
    rig.run(after_s)
    rig.down = True
    man = rig.belt.profile
    t = 0.0
    plan = []
    if feed_off_after_s is not None:
        plan.append((feed_off_after_s, 0.0))
    if feed_on_before_s is not None:
        plan.append((down_s - feed_on_before_s, 800.0))
    for at, feed in plan:
        rig.run(at - t)
        man.feed_tph = feed
        t = at
    rig.run(down_s - t)
    rig.down = False
    tail = [dict(f, type=typ) for typ, f in rig.records[-64:]] if with_tail else None
    rig.m = rig._measurement()
    rig.m.restore(snap)
    if tail is not None:
        rig.m.reconcile(tail)
    rig.m.start()


def gateway_outage(base, down_s, emptied=True):
    rig = _loaded(base)
    n_rec = len(rig.records)
    meter = _Meter(rig)
    if emptied:
        # The feed stops 10 s into the outage and starts again 60 s before its end: the
        # loads either side are full, the belt mostly empty in between.
        _cut(rig, 4.0, down_s, feed_off_after_s=10.0, feed_on_before_s=60.0)
    else:
        _cut(rig, 4.0, down_s)
    rig.run(70)  # the interval that holds the outage closes
    true, counted = meter.true_kg(), meter.counted_kg()
    prods = _prods(rig, n_rec)
    est = sum(p.get("est_kg", 0) for p in prods)
    unweighed_m = sum(p["unweighed_m"] for p in prods)
    rate_max = max(p["rate_tph"] for p in prods)
    gaps = _events(rig, "measurement_gap", n_rec)
    cap = 2 * rig.flat["scale.design_tph"]
    bridged = down_s + 4 <= 6 * rig.flat["store.checkpoint_s"]  # the bridge's bound
    if bridged:
        ok = abs(counted / true - 1) < 0.01 and est > 0 and len(gaps) == 1 and gaps[0]["bridged"]
        expected = "bridged at the loads either side, flagged est_kg, one event"
    else:
        ok = counted <= true and est == 0 and unweighed_m > 0 and len(gaps) == 1 \
            and not gaps[0]["bridged"]
        expected = "not bridged: no mass estimated, the travel reported, one event"
    ok = ok and rate_max <= cap
    return _row(
        "6", "gateway off %s while the belt runs%s" % (_dur(down_s), ", emptied meanwhile"
                                                        if emptied else ""),
        expected + "; rate_tph <= 2 x design",
        "%.0f kg counted of %.0f kg passed, est_kg %.0f, %.0f m unweighed, largest rate_tph %.0f"
        % (counted, true, est, unweighed_m, rate_max),
        ok, counted_kg=counted, true_kg=true, est_kg=est, unweighed_m=unweighed_m,
        rate_max_tph=rate_max, gaps=len(gaps))


def record_then_cut(base, down_s):
    rig = _loaded(base)
    man = rig.belt.profile
    man.feed_tph = 800.0
    # Up to 3 s before an interval ends: checkpoint there, the prod record follows it.
    t1 = rig.m.production.iv["t1"]
    rig.run(max(0.0, t1 - rig.clock.time() - 3))
    n_rec = len(rig.records)
    meter = _Meter(rig)
    _cut(rig, 4.0, down_s, with_tail=True)
    rig.run(70)
    true, counted = meter.true_kg(), meter.counted_kg()
    prods = _prods(rig, n_rec)
    twice = len(set(p["t0"] for p in prods)) != len(prods)
    est = sum(p.get("est_kg", 0) for p in prods)
    unweighed_m = sum(p["unweighed_m"] for p in prods)
    err = (counted / true - 1) * 100
    if down_s <= 6 * rig.flat["store.checkpoint_s"]:
        ok = abs(err) < 1.0 and est > 0 and not twice
        expected = "bridged as in 6 (est_kg), nothing counted twice"
    else:
        ok = err <= 0 and unweighed_m > 0 and est == 0 and not twice
        expected = "not bridged, the travel reported, nothing counted twice"
    return _row(
        "7", "a prod record after the last checkpoint, then a cut of %s" % _dur(down_s),
        expected,
        "%.0f kg counted of %.0f kg (%+.1f %%), est_kg %.0f, %.0f m unweighed"
        % (counted, true, err, est, unweighed_m),
        ok, err_pct=err, est_kg=est, unweighed_m=unweighed_m, twice=twice)


# --- 8: a creeping belt
def creeping(base, seconds=1800, ppm=8.0):
    rig = copy.deepcopy(base)
    rig.belt.profile = Manual(0.0, 0.0)
    rig.run(30)  # stopped
    # A coarse speed sensor (a proximity switch on a pulley): at 0.05 m/s a pulse every
    # 2.5 s.
    _set_ppm(rig.belt, ppm)
    rig.set_params({"scale.pulses_per_m": ppm})
    rig.belt.profile.speed_mps = 0.05
    n_rec, n_al = len(rig.records), len(rig.alarms)
    rig.run(seconds)
    per_h = (len(_events(rig, "belt_start", n_rec)) + len(_events(rig, "belt_stop", n_rec))) \
        * H / seconds
    slip = _raised(rig, "belt_slip", n_al)
    ok = per_h <= 4 and not slip
    return _row(
        "8", "belt creeping at 0.05 m/s (run_min_speed_mps 0.1), a pulse every 2.5 s, DI1 "
        "on, empty",
        "at most a few belt_start/belt_stop an hour, no belt_slip",
        "%.0f events an hour, belt_slip %s" % (per_h, "raised" if slip else "not raised"),
        ok, events_per_h=per_h, slip=slip)


# --- 9: a speed sensor of 3x the configured pulses per metre
def _set_ppm(belt, ppm):
    counted = int(belt.x_m * belt.pulses_per_m) - belt._pulse_base
    belt.pulses_per_m = ppm
    belt._pulse_base = int(belt.x_m * ppm) - counted


def wrong_ppm(base, factor=3.0, mps=3.5):
    rig = _loaded(base, mps=mps)
    b = rig.belt
    n_rec, n_al = len(rig.records), len(rig.alarms)
    _set_ppm(b, b.pulses_per_m * factor)
    meter = _Meter(rig)
    rig.run(120)
    ratio = meter.counted_kg() / meter.true_kg()
    jumps = len(_events(rig, "pulse_jump", n_rec)) + len(
        _events(rig, "counter_discontinuity", n_rec))
    alarm = any(c == "speed_limit" and on and "pulses_per_m" in d
                for c, on, d in rig.alarms[n_al:])
    try:
        _speed_by_marks(rig, 2)
        fixed = True
    except Exception:  # the procedure refuses: no travel seen (the old jump limit)
        fixed = False
    err = None
    if fixed:
        rig.run(30)
        after = _Meter(rig)
        rig.run(300)
        err = (after.counted_kg() / after.true_kg() - 1) * 100
    ok = jumps == 0 and alarm and fixed and abs(err) < 0.1
    return _row(
        "9", "speed sensor of %g x the configured pulses_per_m, belt at %g m/s" % (factor, mps),
        "no counter jumps, speed_limit raised (check pulses_per_m), a speed calibration "
        "fixes it",
        "%d jumps, counted %.2f x true, alarm %s, after the speed calibration %s"
        % (jumps, ratio, "raised" if alarm else "NOT raised",
           "%+.3f %%" % err if err is not None else "impossible"),
        ok, jumps=jumps, ratio=ratio, alarm=alarm, err_pct=err)


# --- 12: limit alarms
def limits(base):
    rig = _loaded(base, settle_s=30)
    rig.set_params({"alarms.limits_pct": [35.0, 98.0, 0.0, 120.0, 50.0, 120.0]})  # HB44's 35 %
    man = rig.belt.profile
    design = rig.flat["scale.design_tph"]
    seen = {}
    for what, feed, speed in (("rate 99 %", 0.99 * design, 2.5), ("rate 20 %", 0.2 * design, 2.5),
                              ("speed 140 %", 800.0, 3.5), ("nominal", 800.0, 2.5)):
        n_al = len(rig.alarms)
        man.feed_tph, man.speed_mps = feed, speed
        rig.run(90)
        seen[what] = sorted(set(c for c, on, _ in rig.alarms[n_al:] if on))
    ok = (
        "rate_limit" in seen["rate 99 %"]
        and "rate_limit" in seen["rate 20 %"]
        and "speed_limit" in seen["speed 140 %"]
        and not any(rig.active.get(c) for c in ("rate_limit", "speed_limit", "load_limit"))
    )
    return _row(
        "12", "flow at 99 % and 20 % of design, speed at 140 %, then nominal",
        "rate_limit (above, below), speed_limit; all clear at nominal",
        "; ".join("%s: %s" % (k, ",".join(v) or "-") for k, v in seen.items()),
        ok, seen=seen)


# --- the drift note: a belt that never runs empty
def never_empty(base, seconds=2400, drift_counts_per_h=230.0):
    rig = _loaded(base)
    try:
        rig.set_params({"scale.zero_check_h": 0.5})
    except ValueError:
        pass  # a firmware without the key (to measure what it did)
    b = rig.belt
    for i in range(4):
        b.drift_counts_per_h[i] += drift_counts_per_h / 4
    n_al = len(rig.alarms)
    meter = _Meter(rig)
    rig.run(seconds)
    err = (meter.counted_kg() / meter.true_kg() - 1) * 100
    hint = _raised(rig, "zero_drift_suspected", n_al)
    return _row(
        "note", "%d min loaded without an empty revolution, zero drifting %d counts/h"
        % (seconds // 60, drift_counts_per_h),
        "zero_drift_suspected after scale.zero_check_h (0.5 h here)",
        "error %+.3f %%, zero_drift_suspected %s" % (err, "raised" if hint else "NOT raised"),
        hint, err_pct=err, hint=hint)


def _dur(s):
    return "%d h" % (s // 3600) if s >= 3600 else "%d min" % (s // 60) if s >= 60 else "%d s" % s


SCENARIOS = (
    ("swap_behind", lambda b: collector_swap(b, ahead=False)),
    ("swap_ahead", lambda b: collector_swap(b, ahead=True)),
    ("span_test_load", span_test_load),
    ("dribble", dribble),
    ("zero_walk", zero_walk),
    ("speed_loss_60s", lambda b: speed_sensor_loss(b, 60)),
    ("speed_loss_bit4", lambda b: speed_sensor_loss(b, 60, off_bit=True)),
    ("speed_loss_15min", lambda b: speed_sensor_loss(b, 900)),
    ("belt_stalled", belt_stalled),
    ("outage_30s", lambda b: gateway_outage(b, 30, emptied=False)),
    ("outage_10min", lambda b: gateway_outage(b, 600)),
    ("outage_1h", lambda b: gateway_outage(b, 3600)),
    ("record_then_cut_10s", lambda b: record_then_cut(b, 10)),
    ("record_then_cut_10min", lambda b: record_then_cut(b, 600)),
    ("creeping", creeping),
    ("wrong_ppm", wrong_ppm),
    ("material_small", material_small),
    ("material_after_empty", lambda b: material_late_figure(b, 90)),
    ("material_no_end", lambda b: material_late_figure(b, 20)),
    ("limits", limits),
    ("never_empty", never_empty),
)


def table(rows):
    out = ["| # | field event | expected | result | |", "|---|---|---|---|---|"]
    for r in rows:
        ok = "ok" if r["ok"] else "FAIL"
        out.append("| %s | %s | %s | %s | %s |"
                   % (r["row"], r["event"], r["expected"], r["result"], ok))
    return "\n".join(out)


def main(argv):
    base, _ = commission()
    names = argv[1:] or [n for n, _ in SCENARIOS]
    rows = [fn(base) for n, fn in SCENARIOS if n in names]
    print(table(rows))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
