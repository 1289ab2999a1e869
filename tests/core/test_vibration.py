# Vibration: the fixed-point spectrum, ISO 10816-3 zones, fault hints, zone alarms.
import math

from gateway.measure.spectrum import Spectrum
from gateway.measure.vibration import MV_PER_MMPS, ZONES, Vibration, zone_for
from tests.core.synth import params

_RATE = 1000


def _wave(comps, noise=0.0, seed=1):
    """256 samples (mV) of sum of (freq_hz, amplitude_mmps, phase) plus a little
    deterministic pseudo-noise (mm/s r.m.s. about `noise`)."""
    out = []
    x = seed
    for i in range(256):
        t = i / _RATE
        v = 0.0
        for f, a, ph in comps:
            v += a * math.sin(2 * math.pi * f * t + ph)
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        v += noise * 1.7 * ((x / 0x7FFFFFFF) - 0.5)
        out.append(int(round(v * MV_PER_MMPS)))
    return out


def _modes(f1=24.75):
    base = [(f1, 1.2, 0.0), (2 * f1, 0.3, 0.7), (3 * f1, 0.1, 1.3)]
    return {
        "normal": base,
        "imbalance": [(f1, 6.0, 0.0)] + base[1:],
        "misalignment": [(f1, 2.0, 0.0), (2 * f1, 5.0, 0.7), (3 * f1, 0.1, 1.3)],
        "looseness": [(f1, 1.5, 0.0), (2 * f1, 2.0, 0.7), (3 * f1, 2.0, 1.3)]
        + [(k * f1, 4.8 / k, k) for k in range(4, 9)],
        "bearing": base + [(312.0, 3.0, 0.0), (305.0, 0.75, 1.0), (319.0, 0.75, 2.0)],
    }


def test_zone_table():
    g2r = ZONES[(2, "rigid")]
    assert [zone_for(x, g2r) for x in (0.5, 1.4, 2.79, 2.8, 4.49, 4.5, 20)] == list("ABBCCDD")
    assert ZONES[(1, "flexible")] == (3.5, 7.1, 11.0)
    assert ZONES[(1, "rigid")] == (2.3, 4.5, 7.1)
    assert ZONES[(2, "flexible")] == (2.3, 4.5, 7.1)


def test_spectrum_finds_a_tone_and_its_amplitude():
    spec = Spectrum()
    for f, a in ((50.0, 2.0), (123.4, 0.4), (312.0, 8.0)):
        spec.compute(_wave([(f, a, 0.3)]))
        p = spec.power
        k = 1
        for i in range(1, 128):
            if p[i] > p[k]:
                k = i
        assert abs(k * _RATE / 256 - f) <= _RATE / 256, (f, k)
        rms = spec.band_mv(k - 2, k + 2) / MV_PER_MMPS
        assert abs(rms - a / math.sqrt(2)) < 0.04 * a, (f, a, rms)


def test_spectrum_of_a_large_signal_does_not_overflow():
    spec = Spectrum()
    spec.compute([30000 if (i // 10) % 2 else -30000 for i in range(256)])
    assert spec.shift < 0
    assert max(spec.power) > 0


def test_capture_analysis_per_fault_mode():
    v = Vibration(lambda *a: None)
    v.apply_params(params())  # group 2, rigid, 1480 rpm
    expect = {
        "normal": ("A", "none"),
        "imbalance": ("C", "imbalance"),
        "misalignment": ("C", "misalignment"),
        "looseness": ("B", "looseness"),
        "bearing": ("B", "bearing"),
    }
    for mode, comps in _modes().items():
        a = v.on_capture(_wave(comps, noise=0.15), _RATE)
        true_rms = math.sqrt(sum(x[1] ** 2 / 2 for x in comps))
        assert abs(a["rms_mmps"] - true_rms) < 0.08 * true_rms, (mode, a)
        assert (a["zone"], a["hint"]) == expect[mode], (mode, a)
        assert a["peaks"], mode


def test_dominant_frequencies():
    v = Vibration(lambda *a: None)
    v.apply_params(params())
    a = v.on_capture(_wave(_modes()["misalignment"]), _RATE)
    assert abs(a["peaks"][0][0] - 49.5) < 2.0 and abs(a["peaks"][1][0] - 24.75) < 2.0
    assert a["peaks"][0][1] > a["peaks"][1][1]


def test_hint_follows_the_motor_speed_parameter():
    # Imbalance of a 2960 rpm motor: with the right speed the 1x is found at 49.3 Hz.
    v = Vibration(lambda *a: None)
    v.apply_params(params(vibration_motor_rpm=2960.0))
    comps = [(49.33, 6.0, 0.0), (98.67, 0.3, 0.7)]
    assert v.on_capture(_wave(comps), _RATE)["hint"] == "imbalance"


def test_zone_alarms_from_the_collector_rms_with_hysteresis():
    alarms = []
    v = Vibration(lambda code, active, detail: alarms.append((code, active)))
    v.apply_params(params())
    mv01 = lambda mmps: int(mmps * MV_PER_MMPS * 10)  # noqa: E731
    v.on_rms(mv01(1.0), 0)
    assert v.zone_name() == "A" and alarms == []
    v.on_rms(mv01(3.0), 0)
    assert v.zone_name() == "C" and alarms == [("vibration_zone_c", True)]
    v.on_rms(mv01(2.75), 0)  # just below 2.8: stays C (hysteresis)
    assert v.zone_name() == "C"
    v.on_rms(mv01(5.0), 0)
    assert alarms[-2:] == [("vibration_zone_c", False), ("vibration_zone_d", True)]
    v.on_rms(mv01(2.0), 0)
    assert v.zone_name() == "B" and alarms[-1] == ("vibration_zone_d", False)
    v.on_rms(mv01(5.0), 0x20)  # sensor disconnected: no zone, no zone alarm
    assert v.zone_name() is None and alarms[-1] == ("vibration_zone_d", False)


def test_flexible_group1_zones():
    v = Vibration(lambda *a: None)
    v.apply_params(params(vibration_machine_group=1, vibration_foundation="flexible"))
    a = v.on_capture(_wave(_modes()["imbalance"]), _RATE)
    assert a["zone"] == "B"


def test_a_capture_without_room_for_its_analysis_keeps_the_last():
    # The analysis' code is loaded per capture: with no room for it the poll must go on
    # (the collector calls on_capture before handing its sample on), not raise.
    from gateway import ondemand

    v = Vibration(lambda *a: None)
    v.apply_params(params())
    first = v.on_capture(_wave(_modes()["imbalance"]), _RATE)
    call = ondemand.call

    def no_room(*args):
        raise MemoryError("memory allocation failed")

    ondemand.call = no_room
    try:
        again = v.on_capture(_wave(_modes()["normal"]), _RATE)
    finally:
        ondemand.call = call
    assert again is first and v.skipped == 1
    assert v.on_capture(_wave(_modes()["normal"]), _RATE)["hint"] == "none"
