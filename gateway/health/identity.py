# Unique identification of every hardware unit (唯一性识别). The collector's serial and
# its 7 sensor serials are registered at commissioning (the first identity read, or an
# explicit register() by a logged-in technician) and kept in their own slots on flash.
# Every later identity read is compared with the registration: a changed serial keeps
# `device_swap` active, naming the unit and its old and new serials, until the original
# unit is back or the replacement is registered. A changed collector `config_counter`
# (its own settings, changed at its keypad or over Modbus) raises
# `collector_config_changed`.

from gateway.errors import UserError

UNITS = ("collector", "cell1", "cell2", "cell3", "cell4", "speed", "vibration", "open_stop")


class IdentityError(UserError):
    pass


def _serials(ident):
    """[collector, 7 sensors] from an identity read, or IdentityError."""
    if not isinstance(ident, dict):
        raise IdentityError("identity must be an object")
    sensors = ident.get("sensors")
    serial = ident.get("serial")
    if not isinstance(serial, int) or not isinstance(sensors, list) or len(sensors) != 7:
        raise IdentityError("identity needs an int serial and 7 sensor serials")
    for s in sensors:
        if not isinstance(s, int):
            raise IdentityError("sensor serials must be integers")
    return [serial] + sensors


def _valid_registration(reg):
    if not isinstance(reg, dict):
        return False
    serials = reg.get("serials")
    return (
        isinstance(serials, list)
        and len(serials) == len(UNITS)
        and all(isinstance(s, int) for s in serials)
        and isinstance(reg.get("fw"), int)
    )


class Identity:
    def __init__(self, alarms, slots, clock, device_id, emit=None):
        self.alarms = alarms
        self.slots = slots
        self.clock = clock
        self.device_id = device_id
        self._emit = emit
        self._reg = None  # {"serials": [8], "fw", "vendor_id", "model", "by", "t"}
        self._unreadable = False
        self._last = None  # the last identity read
        self._swaps = 0
        self._cc = None  # last seen config_counter (persisted through snapshot)

    def start(self):
        """Load the registration. One that cannot be read is never replaced silently:
        device_swap stays active until a technician registers again."""
        reg = self.slots.load()
        if reg is None:
            return
        if _valid_registration(reg):
            self._reg = reg
            return
        self._unreadable = True
        self.alarms.set("device_swap", True, "registration unreadable: register again")

    # --- inputs
    def on_identity(self, ident):
        serials = _serials(ident)
        self._last = ident
        if self._reg is None and not self._unreadable:
            self._save(ident, serials, "commissioning")
            return
        if self._reg is None:
            return
        reg = self._reg
        changes = []
        old = reg["serials"]
        for i in range(len(UNITS)):
            if serials[i] != old[i]:
                changes.append("%s %s -> %s" % (UNITS[i], _fmt(old[i]), _fmt(serials[i])))
        self._swaps = len(changes)
        self.alarms.set("device_swap", bool(changes), "; ".join(changes))
        fw = ident.get("fw_version")
        if isinstance(fw, int) and fw != reg["fw"] and serials[0] == old[0]:
            # A firmware update of the registered collector: reported once, then it is
            # the registered version.
            self.alarms.raise_event("collector_fw_changed", "fw %d -> %d" % (reg["fw"], fw))
            reg["fw"] = fw
            self.slots.save(reg)

    def on_config_counter(self, n):
        if n == self._cc:
            return
        if self._cc is not None:
            detail = "config_counter %d -> %d" % (self._cc, n)
            self.alarms.raise_event("collector_config_changed", detail)
        self._cc = n

    def register(self, by, ident=None):
        """Register the units now present (the last identity read, or `ident`) as the
        legitimate ones, by technician `by`. Clears device_swap."""
        ident = ident if ident is not None else self._last
        if ident is None:
            raise IdentityError("no identity read yet: wait for the collector")
        self._save(ident, _serials(ident), by)
        self._unreadable = False
        self._swaps = 0
        self.alarms.set("device_swap", False)

    # --- queries and persistence
    def registered(self):
        return self._reg

    def report(self):
        reg = self._reg
        figs = {"device_id": self.device_id, "registered": reg is not None, "swapped": self._swaps}
        if reg is not None:
            figs["collector"] = reg["serials"][0]
        if self._cc is not None:
            figs["config_counter"] = self._cc
        return figs

    def snapshot(self):
        return {"cc": self._cc}

    def restore(self, snap):
        cc = snap.get("cc") if isinstance(snap, dict) else None
        if isinstance(cc, int):
            self._cc = cc

    def _save(self, ident, serials, by):
        old = self._reg["serials"] if self._reg is not None else None
        reg = {
            "serials": serials,
            "fw": ident.get("fw_version") if isinstance(ident.get("fw_version"), int) else 0,
            "vendor_id": ident.get("vendor_id"),
            "model": ident.get("model"),
            "by": by,
            "t": int(self.clock.time()),
        }
        self.slots.save(reg)
        self._reg = reg
        if self._emit is not None:
            detail = {"by": by, "device_id": self.device_id, "serials": _named(serials)}
            if old is not None:
                detail["old"] = _named(old)
            self._emit("event", {"code": "identity_registered", "detail": detail})


def _named(serials):
    return {UNITS[i]: serials[i] for i in range(len(UNITS))}


def _fmt(serial):
    return str(serial) if serial else "none"
