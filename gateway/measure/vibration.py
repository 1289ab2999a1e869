# Drive-motor vibration: velocity RMS (mm/s) and the ISO 10816-3 zone from the collector's
# 1 s RMS (every poll), and each 256-sample capture's analysis (RMS, zone, dominant
# frequencies, a fault hint: gateway/measure/spectrum.py, loaded for the capture).
from array import array

from gateway import ondemand
from hal.compat import const

MV_PER_MMPS = 19.7
_N = const(256)
_SENSOR_FAULT = const(0x20)
_HYST = const(0.97)  # leave a zone downwards only 3 % below its boundary (no flapping)

# ISO 10816-3 zone boundaries A/B, B/C, C/D in mm/s r.m.s.
ZONES = {
    (1, "rigid"): (2.3, 4.5, 7.1),
    (1, "flexible"): (3.5, 7.1, 11.0),
    (2, "rigid"): (1.4, 2.8, 4.5),
    (2, "flexible"): (2.3, 4.5, 7.1),
}
_ZONE_NAMES = const("ABCD")


def zone_for(mmps, limits):
    """The ISO zone letter for an RMS velocity, given (A/B, B/C, C/D) limits."""
    i = 0
    while i < 3 and mmps >= limits[i]:
        i += 1
    return _ZONE_NAMES[i]


def buffers():
    """The spectrum's working arrays (re, im, power: gateway/measure/spectrum.py)."""
    return array("i", bytes(4 * _N)), array("i", bytes(4 * _N)), array("i", bytes(2 * _N + 4))


class Vibration:
    def __init__(self, alarm):
        self.alarm = alarm
        self._bufs = None  # the spectrum's working arrays (start())
        self.zone = None  # from the collector's 1 s RMS; None while the sensor is faulty
        self.rms_01mv = 0
        self.analysis = None  # of the last capture
        self.skipped = 0  # captures not analysed: no room for the analysis' code

    def apply_params(self, flat):
        group = int(flat["vibration.machine_group"])
        foundation = flat["vibration.foundation"]
        self.limits = ZONES[(group, foundation)]
        self.motor_hz = float(flat["vibration.motor_rpm"]) / 60.0
        # Zone limits in the collector's unit (0.1 mV), so the poll compares integers.
        self._lim01 = [int(x * MV_PER_MMPS * 10 + 0.5) for x in self.limits]
        self._down01 = [int(x * MV_PER_MMPS * 10 * _HYST + 0.5) for x in self.limits]

    def start(self):
        # Made while the heap is whole: 2.5 KB in three pieces a capture finds in place.
        self._bufs = buffers()

    def on_rms(self, vib_rms_01mv, status):
        """Per poll: the collector's 1 s RMS voltage (0.1 mV)."""
        self.rms_01mv = vib_rms_01mv
        if status & _SENSOR_FAULT:
            zone = -1
        else:
            lim = self._lim01
            zone = self.zone if self.zone is not None else 0
            if zone < 0:
                zone = 0
            while zone < 3 and vib_rms_01mv >= lim[zone]:
                zone += 1
            while zone > 0 and vib_rms_01mv < self._down01[zone - 1]:
                zone -= 1
        if zone != self.zone:
            self._set_zone(zone)

    def _set_zone(self, zone):
        old = self.zone
        self.zone = zone
        detail = "vibration %.2f mm/s r.m.s., ISO 10816-3 zone %s"
        detail %= (self.rms_mmps(), self.zone_name())
        if self.analysis is not None and self.analysis["hint"] not in ("none", "unclassified"):
            detail += ", last capture suggests %s" % self.analysis["hint"]
        for code, z in (("vibration_zone_c", 2), ("vibration_zone_d", 3)):
            if (old == z) != (zone == z):
                self.alarm(code, zone == z, detail)

    def rms_mmps(self):
        return self.rms_01mv / 10.0 / MV_PER_MMPS

    def zone_name(self):
        if self.zone is None or self.zone < 0:
            return None
        return _ZONE_NAMES[self.zone]

    def on_capture(self, wave, rate_hz):
        """A 256-sample capture (mV): RMS, zone, dominant frequencies, fault hint."""
        if len(wave) != _N or not rate_hz > 0:
            raise ValueError("a capture is 256 samples at a positive rate")
        if self._bufs is None:
            self.start()
        try:
            self.analysis = ondemand.call("gateway.measure.spectrum", "analyse", self._bufs,
                                          wave, rate_hz, self.motor_hz, self.limits)
        except MemoryError:
            # No room for the analysis now: the poll goes on (its sample must not wait on
            # this), the last analysis stands, the next capture is analysed.
            self.skipped += 1
        return self.analysis

    def status(self):
        out = {"rms_mmps": round(self.rms_mmps(), 3), "zone": self.zone_name()}
        if self.analysis is not None:
            out["capture"] = self.analysis
        return out

