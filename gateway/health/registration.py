# The identity's registration (gateway/health/identity.py keeps the state): loading it at
# start, comparing each identity read of the collector with it, registering the units
# present. Loaded for each of those calls (an identity read comes every
# collector.identity_s) and forgotten after (gateway/ondemand.py).
from gateway.health.identity import IdentityError

UNITS = ("collector", "cell1", "cell2", "cell3", "cell4", "speed", "vibration", "open_stop")


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


def start(idn):
    """Load the registration. One that cannot be read is never replaced silently:
    device_swap stays active until a technician registers again."""
    reg = idn.slots.load()
    if reg is None:
        return
    if _valid_registration(reg):
        idn._reg = reg
        return
    idn._unreadable = True
    idn.alarms.set("device_swap", True, "registration unreadable: register again")


def compare(idn, ident):
    """An identity read: registered at commissioning, else compared with the registration."""
    serials = _serials(ident)
    idn._last = ident
    if idn._reg is None and not idn._unreadable:
        _save(idn, ident, serials, "commissioning")
        return
    if idn._reg is None:
        return
    reg = idn._reg
    changes = []
    old = reg["serials"]
    for i in range(len(UNITS)):
        if serials[i] != old[i]:
            changes.append("%s %s -> %s" % (UNITS[i], _fmt(old[i]), _fmt(serials[i])))
    idn._swaps = len(changes)
    idn.alarms.set("device_swap", bool(changes), "; ".join(changes))
    fw = ident.get("fw_version")
    if isinstance(fw, int) and fw != reg["fw"] and serials[0] == old[0]:
        # A firmware update of the registered collector: reported once, then it is
        # the registered version.
        idn.alarms.raise_event("collector_fw_changed", "fw %d -> %d" % (reg["fw"], fw))
        reg["fw"] = fw
        idn.slots.save(reg)


def register(idn, by, ident):
    ident = ident if ident is not None else idn._last
    if ident is None:
        raise IdentityError("no identity read yet: wait for the collector")
    _save(idn, ident, _serials(ident), by)
    idn._unreadable = False
    idn._swaps = 0
    idn.alarms.set("device_swap", False)


def _save(idn, ident, serials, by):
    old = idn._reg["serials"] if idn._reg is not None else None
    reg = {
        "serials": serials,
        "fw": ident.get("fw_version") if isinstance(ident.get("fw_version"), int) else 0,
        "vendor_id": ident.get("vendor_id"),
        "model": ident.get("model"),
        "by": by,
        "t": int(idn.clock.time()),
    }
    idn.slots.save(reg)
    idn._reg = reg
    if idn._emit is not None:
        detail = {"by": by, "device_id": idn.device_id, "serials": _named(serials)}
        if old is not None:
            detail["old"] = _named(old)
        idn._emit("event", {"code": "identity_registered", "detail": detail})


def _named(serials):
    return {UNITS[i]: serials[i] for i in range(len(UNITS))}


def _fmt(serial):
    return str(serial) if serial else "none"
