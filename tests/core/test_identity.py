# Device identity: commissioning, swaps caught within one identity read, re-registration,
# the collector's config counter.
import json

from gateway.health.alarms import Alarms
from gateway.health.identity import Identity, IdentityError
from hal.virtualclock import VirtualClock
from tests.core.util import raises


class MemSlots:
    """The Slots(flash, name) double: load() -> obj or None, save(obj)."""

    def __init__(self, obj=None):
        self.obj = obj
        self.saves = 0

    def load(self):
        return None if self.obj is None else json.loads(json.dumps(self.obj))

    def save(self, obj):
        self.obj = json.loads(json.dumps(obj))
        self.saves += 1


def _ident(serial=5001, sensors=None, fw=102):
    return {
        "vendor_id": 7,
        "model": 3,
        "serial": serial,
        "fw_version": fw,
        "sensors": sensors or [101, 102, 103, 104, 105, 106, 107],
    }


class _Rig:
    def __init__(self, slots=None):
        self.clock = VirtualClock()
        self.records = []
        self.alarms = Alarms(self.clock, self.emit)
        self.alarms.start()
        self.slots = slots if slots is not None else MemSlots()
        self.ident = Identity(self.alarms, self.slots, self.clock, 77, self.emit)
        self.ident.start()

    def emit(self, rtype, fields):
        self.records.append((rtype, fields))
        return len(self.records)

    def alarm_records(self, code):
        return [f for t, f in self.records if t == "alarm" and f["code"] == code]


def test_first_identity_read_commissions_the_units():
    r = _Rig()
    r.ident.on_identity(_ident())
    reg = r.slots.obj
    assert reg["serials"] == [5001, 101, 102, 103, 104, 105, 106, 107]
    assert reg["by"] == "commissioning" and reg["fw"] == 102 and reg["t"] == 1767225600
    ev = r.records[-1]
    assert ev[0] == "event" and ev[1]["code"] == "identity_registered"
    assert ev[1]["detail"]["serials"]["cell3"] == 103 and ev[1]["detail"]["device_id"] == 77
    r.ident.on_identity(_ident())
    assert r.slots.saves == 1 and not r.alarms.is_active("device_swap")


def test_a_swapped_sensor_is_caught_at_the_next_identity_read():
    r = _Rig()
    r.ident.on_identity(_ident())
    r.ident.on_identity(_ident(sensors=[101, 902, 103, 104, 105, 106, 107]))
    assert r.alarms.is_active("device_swap")
    assert r.alarm_records("device_swap") == [
        {"code": "device_swap", "state": "raise", "detail": "cell2 102 -> 902"}
    ]
    # A second unit swapped meanwhile is recorded too; the same read again is not.
    r.ident.on_identity(_ident(serial=6001, sensors=[101, 902, 103, 104, 0, 106, 107]))
    r.ident.on_identity(_ident(serial=6001, sensors=[101, 902, 103, 104, 0, 106, 107]))
    recs = r.alarm_records("device_swap")
    assert len(recs) == 2
    assert recs[1]["detail"] == "collector 5001 -> 6001; cell2 102 -> 902; speed 105 -> none"
    assert r.ident.report()["swapped"] == 3


def test_the_original_unit_back_clears_the_swap():
    r = _Rig()
    r.ident.on_identity(_ident())
    r.ident.on_identity(_ident(sensors=[101, 102, 103, 104, 105, 106, 999]))
    r.ident.on_identity(_ident())
    assert [x["state"] for x in r.alarm_records("device_swap")] == ["raise", "clear"]


def test_registering_the_replacement_clears_the_swap_and_records_who():
    r = _Rig()
    r.ident.on_identity(_ident())
    new = _ident(sensors=[101, 102, 103, 104, 105, 606, 107])
    r.ident.on_identity(new)
    assert r.alarms.is_active("device_swap")
    r.ident.register("cli:wang")
    assert not r.alarms.is_active("device_swap")
    assert r.slots.obj["serials"][6] == 606 and r.slots.obj["by"] == "cli:wang"
    ev = [f for t, f in r.records if t == "event"][-1]
    assert ev["detail"]["by"] == "cli:wang"
    assert ev["detail"]["old"]["vibration"] == 106 and ev["detail"]["serials"]["vibration"] == 606
    r.ident.on_identity(new)
    assert [x["state"] for x in r.alarm_records("device_swap")] == ["raise", "clear"]


def test_registration_survives_a_restart():
    slots = MemSlots()
    r = _Rig(slots)
    r.ident.on_identity(_ident())
    r2 = _Rig(slots)
    r2.ident.on_identity(_ident(sensors=[111, 102, 103, 104, 105, 106, 107]))
    assert r2.alarms.is_active("device_swap")
    assert r2.alarm_records("device_swap")[0]["detail"] == "cell1 101 -> 111"


def test_an_unreadable_registration_is_never_replaced_silently():
    r = _Rig(MemSlots({"serials": "garbage"}))
    assert r.alarms.is_active("device_swap")
    r.ident.on_identity(_ident())
    assert r.alarms.is_active("device_swap") and r.slots.obj == {"serials": "garbage"}
    r.ident.register("cli:li")
    assert not r.alarms.is_active("device_swap") and r.slots.obj["serials"][0] == 5001


def test_collector_firmware_update_is_reported_once():
    r = _Rig()
    r.ident.on_identity(_ident(fw=102))
    r.ident.on_identity(_ident(fw=103))
    r.ident.on_identity(_ident(fw=103))
    recs = r.alarm_records("collector_fw_changed")
    assert recs == [{"code": "collector_fw_changed", "state": "raise", "detail": "fw 102 -> 103"}]
    assert r.slots.obj["fw"] == 103 and not r.alarms.is_active("device_swap")


def test_config_counter_change_raises_and_survives_restart():
    r = _Rig()
    r.ident.on_config_counter(41)  # first seen: the baseline
    r.ident.on_config_counter(41)
    assert r.alarm_records("collector_config_changed") == []
    r.ident.on_config_counter(42)
    assert r.alarm_records("collector_config_changed") == [
        {"code": "collector_config_changed", "state": "raise", "detail": "config_counter 41 -> 42"}
    ]
    snap = json.loads(json.dumps(r.ident.snapshot()))
    # Changed at the keypad while the gateway was off: seen at the first sample.
    r2 = _Rig()
    r2.ident.restore(snap)
    r2.ident.on_config_counter(43)
    assert r2.alarm_records("collector_config_changed")[0]["detail"] == "config_counter 42 -> 43"
    assert r2.ident.report()["config_counter"] == 43


def test_bad_identity_reads_and_early_register_are_refused():
    r = _Rig()
    raises(IdentityError, r.ident.register, "cli:x")
    raises(IdentityError, r.ident.on_identity, {"serial": 1, "sensors": [1, 2]})
    raises(IdentityError, r.ident.on_identity, {"serial": "1", "sensors": [0] * 7})
    raises(IdentityError, r.ident.on_identity, {"serial": 1, "sensors": [0] * 6 + ["x"]})
    raises(IdentityError, r.ident.on_identity, None)
    assert r.slots.obj is None and r.records == []


class _NoRoom:
    """gateway.ondemand on a heap with no room for the registration's code."""

    @staticmethod
    def call(module, fn, *args):
        raise MemoryError("memory allocation failed, allocating 1024 bytes")


def test_a_read_with_no_room_to_compare_is_counted_and_the_next_read_compared():
    from gateway.health import identity

    r = _Rig()
    r.ident.on_identity(_ident())
    swapped = _ident(sensors=[101, 102, 49999, 104, 105, 106, 107])
    real = identity.ondemand
    identity.ondemand = _NoRoom
    try:
        r.ident.on_identity(swapped)  # the collector's job must not fail for it
    finally:
        identity.ondemand = real
    assert r.ident.report()["uncompared"] == 1 and not r.alarms.is_active("device_swap")
    r.ident.on_identity(swapped)
    assert r.alarms.is_active("device_swap")
