# The alarm engine. Callers report their raw condition every time they check
# (set(code, active, detail)); the engine debounces it with the code's raise and clear
# delays, writes one `alarm` record per change, keeps the active set across restarts
# (snapshot/restore) and drives DO1, the local sound-and-light alarm, while any alarm of
# the configured classes is active. One-shot alarms (raise_event) have no lasting
# condition: they stay active for their hold time, then clear themselves.
# Every code, its class and exact condition: docs/alarms.md.
from gateway.errors import UserError
from hal.compat import const

# Kinds of code.
COND = const(0)  # a lasting condition, debounced
EVENT = const(1)  # one-shot: raised per occurrence, cleared after its hold (or ack)
COND_DETAIL = const(2)  # a condition whose changed detail is recorded again while active

# Classes: what DO1 and the center can select on.
CLASSES = ("fault", "power", "process", "production", "tamper", "comm", "system")
DO1_CLASSES = ("fault", "power", "process", "production")

_HOLD_S = const(600)  # one-shot alarms stay visible 10 minutes

# The self-diagnosis checks a code belongs to (the report's, gateway/health/report.py).
CHECKS = (
    "link",
    "collector",
    "cells",
    "speed",
    "vibration",
    "power",
    "storage",
    "clock",
    "uplink",
    "gateway",
    "production",
    "crosscheck",
    "identity",
)


# A code's row is one small int (tuples would hold ~8 KB of heap where code lives in RAM):
# the bits of each field start at these, the delays in s take 10 bits, the check 4.
_CLASS_AT = const(27)
_FAIL_AT = const(26)
_KIND_AT = const(24)
_RAISE_AT = const(14)
_CLEAR_AT = const(4)


def packed_row(cls, level, kind, raise_s, clear_s, check):
    """One code's row (spec(code) unpacks it)."""
    return (
        CLASSES.index(cls) << _CLASS_AT
        | (1 if level == "F" else 0) << _FAIL_AT
        | kind << _KIND_AT
        | raise_s << _RAISE_AT
        | clear_s << _CLEAR_AT
        | CHECKS.index(check)
    )


# code -> packed_row(class, level "F" fail / "W" warn, kind, raise delay s, clear delay s, check)
# For EVENT codes the clear delay is the hold. Written as keywords, the codes are interned
# names (qstrs): every module loaded after this one that names a code shares that name
# instead of holding its own string (~60 B each where code lives in RAM).
TABLE = dict(
    # collector and its link
    collector_link_lost=packed_row("fault", "F", COND, 3, 10, "link"),
    collector_link_degraded=packed_row("comm", "W", COND, 10, 60, "link"),
    collector_restarted=packed_row("system", "W", EVENT, 0, _HOLD_S, "collector"),
    collector_adc_fault=packed_row("fault", "F", COND, 1, 30, "collector"),
    collector_temp=packed_row("fault", "W", COND, 10, 30, "collector"),
    # sensors
    speed_sensor_fault=packed_row("fault", "F", COND, 2, 30, "speed"),
    vibration_sensor_fault=packed_row("fault", "F", COND, 5, 30, "vibration"),
    # power
    mains_lost=packed_row("power", "W", COND, 1, 5, "power"),
    supply_low=packed_row("power", "W", COND, 5, 10, "power"),
    # the gateway itself
    flash_low=packed_row("system", "W", COND, 10, 60, "storage"),
    clock_not_set=packed_row("system", "F", COND, 0, 0, "clock"),
    clock_stepped=packed_row("tamper", "W", EVENT, 0, _HOLD_S, "clock"),
    clock_backwards=packed_row("tamper", "F", COND, 0, 0, "clock"),
    upload_down=packed_row("comm", "F", COND, 0, 30, "uplink"),
    upload_backlog=packed_row("comm", "W", COND, 60, 60, "uplink"),
    loop_overrun=packed_row("system", "W", COND, 0, 0, "gateway"),
    job_failed=packed_row("system", "W", EVENT, 0, _HOLD_S, "gateway"),
    memory_low=packed_row("system", "W", COND, 10, 60, "gateway"),
    watchdog_reset=packed_row("system", "F", EVENT, 0, _HOLD_S, "gateway"),
    overproduction_day=packed_row("production", "W", COND, 0, 0, "production"),
    overproduction_month=packed_row("production", "W", COND, 0, 0, "production"),
    # identity and settings
    device_swap=packed_row("tamper", "F", COND_DETAIL, 0, 0, "identity"),
    collector_config_changed=packed_row("tamper", "W", EVENT, 0, _HOLD_S, "identity"),
    collector_fw_changed=packed_row("tamper", "W", EVENT, 0, _HOLD_S, "identity"),
    param_changed=packed_row("tamper", "W", EVENT, 0, _HOLD_S, "identity"),
    # raised by measurement
    belt_slip=packed_row("process", "F", COND, 3, 10, "speed"),
    open_stop_sensor=packed_row("process", "W", COND, 5, 10, "speed"),
    vibration_zone_c=packed_row("process", "W", COND, 10, 30, "vibration"),
    vibration_zone_d=packed_row("process", "F", COND, 5, 30, "vibration"),
    autozero_limit=packed_row("process", "W", COND, 0, 0, "cells"),
    # the figure through field events (measurement)
    collector_counters_inconsistent=packed_row("fault", "F", COND, 0, 0, "collector"),
    zero_drift_suspected=packed_row("process", "W", COND, 0, 0, "cells"),
    rate_limit=packed_row("process", "W", COND, 10, 10, "production"),
    load_limit=packed_row("process", "W", COND, 10, 10, "production"),
    speed_limit=packed_row("process", "W", COND, 10, 10, "speed"),
    # raised by the store
    storage_full=packed_row("system", "F", COND, 0, 60, "storage"),
    storage_write_error=packed_row("system", "F", EVENT, 0, _HOLD_S, "storage"),
    storage_corrupt=packed_row("system", "W", EVENT, 0, _HOLD_S, "storage"),
    # raised by the app
    checkpoint_failed=packed_row("system", "F", COND, 0, 0, "storage"),
    retention_overrun=packed_row("comm", "F", EVENT, 0, _HOLD_S, "storage"),
    # raised by the uplink
    upload_gap=packed_row("comm", "F", EVENT, 0, _HOLD_S, "uplink"),
    center_auth_failed=packed_row("comm", "F", COND, 0, 0, "uplink"),
    center_protocol_error=packed_row("comm", "F", COND, 0, 0, "uplink"),
)
for _i in range(1, 5):
    TABLE["cell%d_fault" % _i] = packed_row("fault", "F", COND, 1, 30, "cells")
    TABLE["cell%d_stuck" % _i] = packed_row("fault", "F", COND, 0, 0, "cells")  # 30 s windows
    TABLE["cell%d_range" % _i] = packed_row("fault", "F", COND, 2, 10, "cells")
    TABLE["cell%d_drift" % _i] = packed_row("fault", "W", COND, 0, 0, "cells")


class AlarmError(UserError):
    pass


# The state of one code: a list, indexed by these (a list is half the heap of an object
# with attributes). A code keeps one only while it is raised or on its way up or down:
# most codes are reported inactive every second and would otherwise hold ~100 B each.
_RAW = const(0)  # the condition as last reported
_RAW_TICKS = const(1)  # when it last changed
_ACTIVE = const(2)
_SINCE = const(3)  # wall time of the raise
_DETAIL = const(4)
_COUNT = const(5)  # occurrences of a one-shot alarm during its hold
_HOLD_TICKS = const(6)  # last occurrence of a one-shot alarm


def _new_state(now):
    return [False, now, False, 0, "", 0, now]


def _row_of(code):
    row = TABLE.get(code)
    if row is None:
        raise AlarmError("unknown alarm code %r" % (code,))
    return row


def spec(code):
    """(class, level "F" / "W", kind, raise_ms, clear_ms, check) of a code (its TABLE row
    unpacked); AlarmError for an unknown one."""
    row = _row_of(code)
    return (
        CLASSES[row >> _CLASS_AT],
        "F" if row >> _FAIL_AT & 1 else "W",
        row >> _KIND_AT & 3,
        (row >> _RAISE_AT & 1023) * 1000,
        (row >> _CLEAR_AT & 1023) * 1000,
        CHECKS[row & 15],
    )


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
            self.apply_params(params)

    def apply_params(self, params):
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
        row = _row_of(code)
        kind = row >> _KIND_AT & 3
        if kind == EVENT:
            if active:
                self.raise_event(code, detail)
            return
        active = bool(active)
        st = self._states.get(code)
        if st is None:
            if not active:
                return  # at rest
            st = self._states[code] = _new_state(self.clock.ticks_ms())
        now = self.clock.ticks_ms()
        if active != st[_RAW]:
            st[_RAW] = active
            st[_RAW_TICKS] = now
        if active and st[_ACTIVE] and detail != st[_DETAIL]:
            st[_DETAIL] = detail
            if kind == COND_DETAIL:
                self._record(code, "raise", detail)
        elif active:
            st[_DETAIL] = detail
        self._settle(code, st, row, now)

    def raise_event(self, code, detail=""):
        """One occurrence of a one-shot alarm: raised now, cleared after its hold.
        A repeat during the hold is counted and extends the hold; it writes no record."""
        if _row_of(code) >> _KIND_AT & 3 != EVENT:
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
        if _row_of(code) >> _KIND_AT & 3 != EVENT:
            raise AlarmError("%s clears with its condition, not by acknowledgement" % code)
        st = self._states.get(code)
        if st is None or not st[_ACTIVE]:
            return False
        self._change(code, st, False, "acknowledged")
        self._rest(code, st)
        return True

    def run(self, now_ms):
        """Complete the transitions whose delay has run out (a job, every second)."""
        for code in tuple(self._states):  # a state at rest leaves the dict as we go
            self._settle(code, self._states[code], TABLE[code], now_ms)

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
                     "class": CLASSES[TABLE[code] >> _CLASS_AT]}
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
            row = TABLE[code]
            st = self._states[code] = _new_state(now)
            st[_ACTIVE] = st[_RAW] = True
            st[_SINCE] = int(v[0])
            st[_DETAIL] = v[1] if isinstance(v[1], str) else ""
            st[_COUNT] = v[2] if isinstance(v[2], int) else 1
            if row >> _KIND_AT & 3 == EVENT:
                # The hold goes on from where it was (wall time; ticks restarted).
                age_ms = min(max(0, wall - st[_SINCE]), row >> _CLEAR_AT & 1023) * 1000
                st[_HOLD_TICKS] = self.clock.ticks_add(now, -age_ms)

    # --- internals
    def _settle(self, code, st, row, now):
        if row >> _KIND_AT & 3 == EVENT:
            hold_ms = (row >> _CLEAR_AT & 1023) * 1000
            if st[_ACTIVE] and self.clock.ticks_diff(now, st[_HOLD_TICKS]) >= hold_ms:
                self._change(code, st, False, "x%d" % st[_COUNT] if st[_COUNT] > 1 else "")
        elif st[_RAW] != st[_ACTIVE]:
            delay = (row >> (_RAISE_AT if st[_RAW] else _CLEAR_AT) & 1023) * 1000
            if self.clock.ticks_diff(now, st[_RAW_TICKS]) >= delay:
                self._change(code, st, st[_RAW])
        self._rest(code, st)

    def _rest(self, code, st):
        if not st[_ACTIVE] and not st[_RAW] and self._states.get(code) is st:
            del self._states[code]

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
            if st[_ACTIVE] and CLASSES[TABLE[code] >> _CLASS_AT] in classes:
                on = True
                break
        if force or on != self._do1:
            self._do1 = on
            if self._set_do1 is not None:
                self._set_do1(on)
