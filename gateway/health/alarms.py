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
# belongs to (gateway/health/diag.py).
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
    "center_auth_failed": ("comm", "F", COND, 0, 0, "uplink"),
    "center_protocol_error": ("comm", "F", COND, 0, 0, "uplink"),
}
for _i in range(1, 5):
    TABLE["cell%d_fault" % _i] = ("fault", "F", COND, 1000, 30000, "cells")
    TABLE["cell%d_stuck" % _i] = ("fault", "F", COND, 0, 0, "cells")  # 30 s windows
    TABLE["cell%d_range" % _i] = ("fault", "F", COND, 2000, 10000, "cells")
    TABLE["cell%d_drift" % _i] = ("fault", "W", COND, 0, 0, "cells")


class AlarmError(ValueError):
    pass


# The state of one code: a list, indexed by these (a list is half the heap of an object
# with attributes, and every code that was ever reported keeps one).
_RAW = const(0)  # the condition as last reported
_RAW_TICKS = const(1)  # when it last changed
_ACTIVE = const(2)
_SINCE = const(3)  # wall time of the raise
_DETAIL = const(4)
_COUNT = const(5)  # occurrences of a one-shot alarm during its hold
_HOLD_TICKS = const(6)  # last occurrence of a one-shot alarm


def _new_state(now):
    return [False, now, False, 0, "", 0, now]


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
            if not active:
                return  # never true: nothing to clear, and no state to keep on the heap
            st = self._states[code] = _new_state(now)
        active = bool(active)
        if active != st[_RAW]:
            st[_RAW] = active
            st[_RAW_TICKS] = now
        if active and st[_ACTIVE] and detail != st[_DETAIL]:
            st[_DETAIL] = detail
            if spec[2] == COND_DETAIL:
                self._record(code, "raise", detail)
        elif active:
            st[_DETAIL] = detail
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
            st = self._states[code] = _new_state(now)
        st[_HOLD_TICKS] = now
        st[_DETAIL] = detail
        if st[_ACTIVE]:
            st[_COUNT] += 1
            return
        st[_COUNT] = 1
        self._change(code, st, True)

    def ack(self, code):
        """A technician acknowledges a one-shot alarm: it clears now. Returns whether it
        was active. Condition alarms clear only with their condition."""
        spec = _spec(code)
        if spec[2] != EVENT:
            raise AlarmError("%s clears with its condition, not by acknowledgement" % code)
        st = self._states.get(code)
        if st is None or not st[_ACTIVE]:
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
        return bool(st and st[_ACTIVE])

    def active(self):
        """[{"code", "since", "detail", "class"}], oldest first."""
        out = []
        for code, st in self._states.items():
            if st[_ACTIVE]:
                out.append(
                    {"code": code, "since": st[_SINCE], "detail": st[_DETAIL],
                     "class": TABLE[code][0]}
                )
        # Ties by name: MicroPython's sort is not stable.
        out.sort(key=lambda a: (a["since"], a["code"]))
        return out

    def active_count(self):
        n = 0
        for st in self._states.values():
            if st[_ACTIVE]:
                n += 1
        return n

    def do1(self):
        return bool(self._do1)

    # --- persistence
    def snapshot(self):
        return {
            "active": {
                code: [st[_SINCE], st[_DETAIL], st[_COUNT]]
                for code, st in self._states.items()
                if st[_ACTIVE]
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
            st = self._states[code] = _new_state(now)
            st[_ACTIVE] = st[_RAW] = True
            st[_SINCE] = int(v[0])
            st[_DETAIL] = v[1] if isinstance(v[1], str) else ""
            st[_COUNT] = v[2] if isinstance(v[2], int) else 1
            if spec[2] == EVENT:
                # The hold goes on from where it was (wall time; ticks restarted).
                age_ms = min(max(0, wall - st[_SINCE]) * 1000, spec[4])
                st[_HOLD_TICKS] = self.clock.ticks_add(now, -age_ms)

    # --- internals
    def _settle(self, code, st, spec, now):
        kind = spec[2]
        if kind == EVENT:
            if st[_ACTIVE] and self.clock.ticks_diff(now, st[_HOLD_TICKS]) >= spec[4]:
                self._change(code, st, False, "x%d" % st[_COUNT] if st[_COUNT] > 1 else "")
            return
        if st[_RAW] == st[_ACTIVE]:
            return
        delay = spec[3] if st[_RAW] else spec[4]
        if self.clock.ticks_diff(now, st[_RAW_TICKS]) >= delay:
            self._change(code, st, st[_RAW])

    def _change(self, code, st, active, clear_detail=""):
        st[_ACTIVE] = active
        if active:
            st[_SINCE] = int(self.clock.time())
            self._record(code, "raise", st[_DETAIL])
        else:
            self._record(code, "clear", clear_detail)
            st[_COUNT] = 0
        self._drive_do1(False)

    def _record(self, code, state, detail):
        self._emit("alarm", {"code": code, "state": state, "detail": detail})

    def _drive_do1(self, force):
        if not self._started:
            return
        on = False
        classes = self.do1_classes
        for code, st in self._states.items():
            if st[_ACTIVE] and TABLE[code][0] in classes:
                on = True
                break
        if force or on != self._do1:
            self._do1 = on
            if self._set_do1 is not None:
                self._set_do1(on)
