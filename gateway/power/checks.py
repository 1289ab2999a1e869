# The checks behind the power alarms (docs/alarms.md), every 5 s, loaded for the call only
# (gateway/power/energy.py): each terminal's latest readings against the limits
# (alarms.* in docs/config.md); a reading counts while younger than 30 s or three rounds.
from drivers import meters as mt
from gateway.power.records import day_start

_NOMINAL_HZ = 5000  # 0.01 Hz
_PHASE_LOSS_PCT = 50
_RATED_MA = 5000


def run(pw, now_ms):
    day_start(pw)
    m = pw.meters
    p = pw.params
    dev_pct = p["alarms.voltage_dev_pct"]
    thd_max = p["alarms.thd_v_max_pct"] * 100
    lost = dev = loss = pf = thd = hz = ""
    age = max(30000, 3 * m.round_ms)
    for t in pw.terms:
        if t.link.state == "lost":
            lost += " " + t.address
            continue
        v = t.values
        nom = t.nominal_v * 10
        high = low = 0
        for k in range(3):
            if m.fresh(t, mt.UA + k, now_ms, age):
                u = v[mt.UA + k]
                if u * 100 > nom * 80:
                    high += 1
                if u * 100 < nom * _PHASE_LOSS_PCT:
                    low += 1
                elif abs(u - nom) * 100 > nom * dev_pct:
                    dev += " %s/%s" % (t.address, "ABC"[k])
            if m.fresh(t, mt.THDU + k, now_ms, age) and v[mt.THDU + k] > thd_max:
                thd += " %s/%s" % (t.address, "ABC"[k])
        if low and high:
            loss += " " + t.address
        if m.fresh(t, mt.PF, now_ms, age) and m.fresh(t, mt.P, now_ms, age) and v[mt.P] > 0 \
                and abs(v[mt.PF]) < p["alarms.pf_min"] * 1000 and _loaded(t):
            pf += " " + t.address
        if m.fresh(t, mt.F, now_ms, age) and \
                abs(v[mt.F] - _NOMINAL_HZ) > p["alarms.freq_dev_hz"] * 100:
            hz += " " + t.address
    al = pw.alarm
    al("meter_link_lost", bool(lost), lost.strip())
    al("voltage_deviation", bool(dev), dev.strip())
    al("phase_loss", bool(loss), loss.strip())
    al("power_factor_low", bool(pf), pf.strip())
    al("voltage_thd_high", bool(thd), thd.strip())
    al("frequency_out_of_range", bool(hz), hz.strip())
    _drive(pw, now_ms)


def _loaded(t):
    # Power factor means something only under load: a tenth of the rated current.
    for k in range(3):
        if abs(t.values[mt.IA + k]) * 10 >= _RATED_MA:
            return True
    return False


def _drive(pw, now_ms):
    # DI1 and the pulses against the drive's power: one of them is lying (a sensor, or its
    # wiring tampered with) when they disagree for the alarm's delay.
    b = pw.belt
    if b is None or not pw.meters.fresh(b, mt.P, now_ms, 3 * mt.FAST_MS + 2000):
        pw.alarm("drive_power_belt_stopped", False)
        pw.alarm("belt_running_no_drive_power", False)
        return
    kw = b.values[mt.P] * b.ct * b.pt / 10000
    state = pw.running()
    drawing = kw > pw.params["alarms.drive_run_kw"]
    pw.alarm("drive_power_belt_stopped", drawing and state == "stopped",
             "%.1f kW" % kw if drawing else "")
    pw.alarm("belt_running_no_drive_power", not drawing and state == "running",
             "%.1f kW" % kw if not drawing else "")
