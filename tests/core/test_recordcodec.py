# The record codec gives back exactly what was appended, compactly for prod.
import struct

from gateway.store import codec as rc
from tests.core.storework import same
from tests.core.util import Rng, raises


def _round(seq, rtype, t, fields):
    p = rc.encode(seq, rtype, t, fields)
    rec = rc.decode(p)
    want = {"seq": seq, "t": t, "type": rtype}
    want.update(fields)
    assert same(rec, want), (rec, want)
    assert rc.decode_t(p) == t
    return p


def test_prod_typical_is_compact_and_exact():
    f = {
        "t0": 1767225540,
        "t1": 1767225600,
        "mass_kg": 16667.123,
        "total_kg": 98765432.105,
        "rate_tph": 1000.007,
        "speed_mps": 2.5,
        "run_s": 60,
    }
    p = _round(123456, "prod", 1767225600, f)
    # 4 seq + 1 type + 1+5 t + 2 tags + 1+1 t0/t1 + 4 mass + 6 total + 3 rate + 2 speed + 1 run
    assert len(p) == 31, len(p)


def test_prod_values_that_are_not_milli_exact_stay_exact():
    f = {
        "t0": 1767225540.123456,
        "t1": 1767225600.654321,
        "mass_kg": 1 / 3,
        "total_kg": 1e15 + 0.5,
        "rate_tph": float("inf"),
        "speed_mps": -0.0,
        "run_s": 2**70,  # big ints too
    }
    _round(7, "prod", 1767225600.987654321, f)


def test_prod_with_missing_extra_and_non_number_fields():
    _round(1, "prod", 100, {"mass_kg": 1.5})
    _round(2, "prod", 100, {})
    _round(3, "prod", 100, {"mass_kg": None, "run_s": True, "belt": "B2", "cells": [1, 2.25]})
    _round(4, "prod", 100, {"t0": 40.5, "t1": 100, "quality": {"ash_pct": 12.5}})


def test_ints_and_floats_keep_their_kind():
    p = rc.encode(1, "prod", 60, {"mass_kg": 5, "total_kg": 5.0, "run_s": 60.0})
    rec = rc.decode(p)
    assert type(rec["mass_kg"]) is int and type(rec["total_kg"]) is float
    assert type(rec["run_s"]) is float and type(rec["t"]) is int


def test_nan_round_trips_bit_for_bit():
    nan = struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\x7f")[0]
    rec = rc.decode(rc.encode(1, "prod", 1, {"rate_tph": nan}))
    assert struct.pack("<d", rec["rate_tph"]) == struct.pack("<d", nan)


def test_many_random_doubles_round_trip():
    rng = Rng(300)
    for _ in range(300):
        x = struct.unpack("<d", rng.bytes(8))[0]
        if x != x:
            continue
        y = rc.decode(rc.encode(1, "prod", x, {"mass_kg": x, "t0": x}))
        assert y["mass_kg"] == x and y["t"] == x and y["t0"] == x


def test_other_types_generic_and_exact():
    _round(5, "alarm", 1767225600, {"code": "belt_slip", "state": "raise", "detail": "x"})
    _round(6, "event", 1767225600.5, {"code": "params", "detail": {"old": 1.1, "new": [1, "é"]}})
    _round(7, "diag", 1767225600, {"detail": {"v": 0.1 + 0.2, "n": None}})
    _round(8, "calibration", 10, {"what": "zero"})  # a type the store does not know
    _round(9, "diag", 10, {})


def test_bad_records_are_refused():
    raises(rc.RecordError, rc.encode, 1, "prod", 1, {"seq": 5})
    raises(rc.RecordError, rc.encode, 1, "prod", 1, {"t": 5})
    raises(rc.RecordError, rc.encode, 1, "diag", 1, {"type": "x"})
    raises(rc.RecordError, rc.encode, 1, "diag", "noon", {})
    raises(rc.RecordError, rc.encode, 1, "diag", None, {})
    raises(rc.RecordError, rc.encode, 1, "", 1, {})
    raises(rc.RecordError, rc.encode, 1, 7, 1, {})
    raises(rc.RecordError, rc.encode, 1, "diag", 1, {"detail": b"bytes"})
    raises(rc.RecordError, rc.encode, 1, "prod", 1, {"extra": object()})
    raises(rc.RecordError, rc.encode, 1, "diag", 1, [1, 2])
    raises(rc.RecordError, rc.encode, 1, "diag", 1, {"detail": {"x": float("nan")}})
    raises(rc.RecordError, rc.encode, 1, "event", 1, {"detail": {1: "int key"}})
    raises(rc.RecordError, rc.encode, 1, "prod", 1, {"belt": [float("inf")]})


def test_garbage_payload_is_a_record_error():
    raises(rc.RecordError, rc.decode, b"\x01\x00\x00\x00\x09\x01\x00")
    raises(rc.RecordError, rc.decode, b"\x01\x00\x00\x00\x02\x01\x00[1]")
    raises(rc.RecordError, rc.decode, b"\x01\x00\x00\x00\x02\x01")
