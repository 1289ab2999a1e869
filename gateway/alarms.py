# The alarm engine. Callers report their raw condition every time they check
# (set(code, active, detail)); the engine debounces it with the code's raise and clear
# delays, writes one `alarm` record per change, keeps the active set across restarts
# (snapshot/restore) and drives DO1, the local sound-and-light alarm, while any alarm of
# the configured classes is active. One-shot alarms (raise_event) have no lasting
# condition: they stay active for their hold time, then clear themselves.
# Every code, its class and exact condition: docs/alarms.md.
from hal.compat import const

# Kinds of code.
COND = const(0)  # a lasting condition, debounced
EVENT = const(1)  # one-shot: raised per occurrence, cleared after its hold (or ack)
COND_DETAIL = const(2)  # a condition whose changed detail is recorded again while active

# Classes: what DO1 and the center can select on.
CLASSES = ("fault", "power", "process", "production", "tamper", "comm", "system")
DO1_CLASSES = ("fault", "power", "process", "production")

_HOLD_MS = const(600000)  # one-shot alarms stay visible 10 minutes

# code -> (class, level "F" fail / "W" warn, kind, raise_ms, clear_ms, check)
# For EVENT codes clear_ms is the hold. `check` names the self-diagnosis check the code
# belongs to (gateway/diag.py).
TABLE = {
    # collector and its link
    "collector_link_lost": ("fault", "F", COND, 3000, 10000, "link"),
    "collector_link_degraded": ("comm", "W", COND, 10000, 60000, "link"),
    "collector_restarted": ("system", "W", EVENT, 0, _HOLD_MS, "collector"),
    "collector_adc_fault": ("fault", "F", COND, 1000, 30000, "collector"),
    "collector_temp": ("fault", "W", COND, 10000, 30000, "collector"),
    # sensors
    "speed_sensor_fault": ("fault", "F", COND, 2000, 30000, "speed"),
    "vibration_sensor_fault": ("fault", "F", COND, 5000, 30000, "vibration"),
    # power
    "mains_lost": ("power", "W", COND, 1000, 5000, "power"),
    "supply_low": ("power", "W", COND, 5000, 10000, "power"),
    # the gateway itself
    "flash_low": ("system", "W", COND, 10000, 60000, "storage"),
    "clock_not_set": ("system", "F", COND, 0, 0, "clock"),
    "clock_stepped": ("tamper", "W", EVENT, 0, _HOLD_MS, "clock"),
    "clock_backwards": ("tamper", "F", COND, 0, 0, "clock"),
    "upload_down": ("comm", "F", COND, 0, 30000, "uplink"),
    "upload_backlog": ("comm", "W", COND, 60000, 60000, "uplink"),
    "loop_overrun": ("system", "W", COND, 0, 0, "gateway"),
    "job_failed": ("system", "W", EVENT, 0, _HOLD_MS, "gateway"),
    "memory_low": ("system", "W", COND, 10000, 60000, "gateway"),
    "watchdog_reset": ("system", "F", EVENT, 0, _HOLD_MS, "gateway"),
    "overproduction_day": ("production", "W", COND, 0, 0, "production"),
    "overproduction_month": ("production", "W", COND, 0, 0, "production"),
    # identity and settings
    "device_swap": ("tamper", "F", COND_DETAIL, 0, 0, "identity"),
    "collector_config_changed": ("tamper", "W", EVENT, 0, _HOLD_MS, "identity"),
    "collector_fw_changed": ("tamper", "W", EVENT, 0, _HOLD_MS, "identity"),
    "param_changed": ("tamper", "W", EVENT, 0, _HOLD_MS, "identity"),
    # raised by measurement
    "belt_slip": ("process", "F", COND, 3000, 10000, "speed"),
    "open_stop_sensor": ("process", "W", COND, 5000, 10000, "speed"),
    "vibration_zone_c": ("process", "W", COND, 10000, 30000, "vibration"),
    "vibration_zone_d": ("process", "F", COND, 5000, 30000, "vibration"),
    "autozero_limit": ("process", "W", COND, 0, 0, "cells"),
    # raised by the store
    "storage_full": ("system", "F", COND, 0, 60000, "storage"),
    "storage_write_error": ("system", "F", EVENT, 0, _HOLD_MS, "storage"),
    "storage_corrupt": ("system", "W", EVENT, 0, _HOLD_MS, "storage"),
    # raised by the app
    "checkpoint_failed": ("system", "F", COND, 0, 0, "storage"),
    "retention_overrun": ("comm", "F", EVENT, 0, _HOLD_MS, "storage"),
    # raised by the uplink
    "upload_gap": ("comm", "F", EVENT, 0, _HOLD_MS, "uplink"),
}
for _i in range(1, 5):
    TABLE["cell%d_fault" % _i] = ("fault", "F", COND, 1000, 30000, "cells")
    TABLE["cell%d_stuck" % _i] = ("fault", "F", COND, 0, 0, "cells")  # 30 s windows
    TABLE["cell%d_range" % _i] = ("fault", "F", COND, 2000, 10000, "cells")
    TABLE["cell%d_drift" % _i] = ("fault", "W", COND, 0, 0, "cells")


class AlarmError(ValueError):
    pass


class _State:
    def __init__(self, now):
        self.raw = False  # the condition as last reported
        self.raw_ticks = now  # when it last changed
        self.active = False
        self.since = 0  # wall time of the raise
        self.detail = ""
        self.count = 0  # occurrences of a one-shot alarm during its hold
        self.hold_ticks = now  # last occurrence of a one-shot alarm


def _spec(code):
    spec = TABLE.get(code)
    if spec is None:
        raise AlarmError("unknown alarm code %r" % (code,))
    return spec


class Alarms:
    name = "alarms"

    def __init__(self, clock, emit, set_do1=None, params=None):
        self.clock = clock
        self._emit = emit
        self._set_do1 = set_do1
        self._states = {}
        self._do1 = None  # unknown until start() drives it
        self._started = False
        self.do1_classes = DO1_CLASSES
        if params:
            self.apply(params)

    def apply(self, params):
        self.do1_classes = tuple(params.get("alarms.do1_classes", DO1_CLASSES))
        self._drive_do1(False)

    def start(self):
        self._started = True
        self._drive_do1(True)

    def refresh_do1(self):
        """Drive DO1 again (the collector forgets its coils when it restarts)."""
        if self._started:
            self._drive_do1(True)

    # --- reporting
    def set(self, code, active, detail=""):
        """Report the raw condition of `code` now. One-shot codes: True is an
        occurrence (raise_event), False is ignored."""
        spec = _spec(code)
        if spec[2] == EVENT:
            if active:
                self.raise_event(code, detail)
            return
        now = self.clock.ticks_ms()
        st = self._states.get(code)
        if st is None:
            st = self._states[code] = _State(now)
        active = bool(active)
        if active != st.raw:
            st.raw = active
            st.raw_ticks = now
        if active and st.active and detail != st.detail:
            st.detail = detail
            if spec[2] == COND_DETAIL:
                self._record(code, "raise", detail)
        elif active:
            st.detail = detail
        self._settle(code, st, spec, now)

    def raise_event(self, code, detail=""):
        """One occurrence of a one-shot alarm: raised now, cleared after its hold.
        A repeat during the hold is counted and extends the hold; it writes no record."""
        spec = _spec(code)
        if spec[2] != EVENT:
            raise AlarmError("%s is a condition alarm: use set()" % code)
        now = self.clock.ticks_ms()
        st = self._states.get(code)
        if st is None:
            st = self._states[code] = _State(now)
        st.hold_ticks = now
        st.detail = detail
        if st.active:
            st.count += 1
            return
        st.count = 1
        self._change(code, st, True)

    def ack(self, code):
        """A technician acknowledges a one-shot alarm: it clears now. Returns whether it
        was active. Condition alarms clear only with their condition."""
        spec = _spec(code)
        if spec[2] != EVENT:
            raise AlarmError("%s clears with its condition, not by acknowledgement" % code)
        st = self._states.get(code)
        if st is None or not st.active:
            return False
        self._change(code, st, False, "acknowledged")
        return True

    def run(self, now_ms):
        """Complete the transitions whose delay has run out (a job, every second)."""
        for code, st in self._states.items():
            self._settle(code, st, TABLE[code], now_ms)

    # --- queries
    def is_active(self, code):
        st = self._states.get(code)
        return bool(st and st.active)

    def active(self):
        """[{"code", "since", "detail", "class"}], oldest first."""
        out = []
        for code, st in self._states.items():
            if st.active:
                out.append(
                    {"code": code, "since": st.since, "detail": st.detail, "class": TABLE[code][0]}
                )
        # Ties by name: MicroPython's sort is not stable.
        out.sort(key=lambda a: (a["since"], a["code"]))
        return out

    def active_count(self):
        n = 0
        for st in self._states.values():
            if st.active:
                n += 1
        return n

    def do1(self):
        return bool(self._do1)

    # --- persistence
    def snapshot(self):
        return {
            "active": {
                code: [st.since, st.detail, st.count]
                for code, st in self._states.items()
                if st.active
            }
        }

    def restore(self, snap):
        """Take back the active set after a restart, writing no record for it: a
        still-active alarm is not raised twice, and one whose condition has gone is
        cleared (once) when its owner next reports it. A code this firmware no longer
        knows is cleared now."""
        active = snap.get("active") if isinstance(snap, dict) else None
        if not isinstance(active, dict):
            return
        now = self.clock.ticks_ms()
        wall = int(self.clock.time())
        for code, v in active.items():
            if code not in TABLE:
                self._record(code, "clear", "unknown after restart")
                continue
            if not (isinstance(v, list) and len(v) == 3 and isinstance(v[0], (int, float))):
                continue
            spec = TABLE[code]
            st = self._states[code] = _State(now)
            st.active = st.raw = True
            st.since = int(v[0])
            st.detail = v[1] if isinstance(v[1], str) else ""
            st.count = v[2] if isinstance(v[2], int) else 1
            if spec[2] == EVENT:
                # The hold goes on from where it was (wall time; ticks restarted).
                age_ms = min(max(0, wall - st.since) * 1000, spec[4])
                st.hold_ticks = self.clock.ticks_add(now, -age_ms)

    # --- internals
    def _settle(self, code, st, spec, now):
        kind = spec[2]
        if kind == EVENT:
            if st.active and self.clock.ticks_diff(now, st.hold_ticks) >= spec[4]:
                self._change(code, st, False, "x%d" % st.count if st.count > 1 else "")
            return
        if st.raw == st.active:
            return
        delay = spec[3] if st.raw else spec[4]
        if self.clock.ticks_diff(now, st.raw_ticks) >= delay:
            self._change(code, st, st.raw)

    def _change(self, code, st, active, clear_detail=""):
        st.active = active
        if active:
            st.since = int(self.clock.time())
            self._record(code, "raise", st.detail)
        else:
            self._record(code, "clear", clear_detail)
            st.count = 0
        self._drive_do1(False)

    def _record(self, code, state, detail):
        self._emit("alarm", {"code": code, "state": state, "detail": detail})

    def _drive_do1(self, force):
        if not self._started:
            return
        on = False
        classes = self.do1_classes
        for code, st in self._states.items():
            if st.active and TABLE[code][0] in classes:
                on = True
                break
        if force or on != self._do1:
            self._do1 = on
            if self._set_do1 is not None:
                self._set_do1(on)
