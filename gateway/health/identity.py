# Unique identification of every hardware unit (唯一性识别). The collector's serial and
# its 7 sensor serials are registered at commissioning (the first identity read, or an
# explicit register() by a logged-in technician) and kept in their own slots on flash.
# Every later identity read is compared with the registration: a changed serial keeps
# `device_swap` active, naming the unit and its old and new serials, until the original
# unit is back or the replacement is registered. A changed collector `config_counter`
# (its own settings, changed at its keypad or over Modbus) raises
# `collector_config_changed`.
# Here the state and the 10 Hz config counter; loading, comparing and registering are in
# gateway/health/registration.py, loaded for each call.
from gateway import ondemand
from gateway.errors import UserError
from hal.compat import const

_REGISTRATION = const("gateway.health.registration")


class IdentityError(UserError):
    pass


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
        self.uncompared = 0  # identity reads that found no room for the comparison

    def start(self):
        """Load the registration (device_swap while it cannot be read)."""
        ondemand.call(_REGISTRATION, "start", self)

    # --- inputs
    def on_identity(self, ident):
        """An identity read of the collector: compared with the registration (the first
        one registers). With no room for that now, the next read is compared."""
        try:
            ondemand.call(_REGISTRATION, "compare", self, ident)
        except MemoryError:
            self.uncompared += 1

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
        ondemand.call(_REGISTRATION, "register", self, by, ident)

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
        if self.uncompared:
            figs["uncompared"] = self.uncompared
        return figs

    def snapshot(self):
        return {"cc": self._cc}

    def restore(self, snap):
        cc = snap.get("cc") if isinstance(snap, dict) else None
        if isinstance(cc, int):
            self._cc = cc
