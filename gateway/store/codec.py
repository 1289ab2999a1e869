# The record codec: one record <-> one payload of bytes. Exact: decode(encode(r)) == r,
# value for value and int/float kind for kind, on CPython and on MicroPython.
#
# payload = seq u32 LE | type u8 (1 prod, 2 alarm, 3 event, 4 diag, 0: u8 length + name)
#           | tag u8 + value of t | body
# A number is stored by kind (its tag):
#   1 int                       zigzag varint
#   2 float equal to k / 1000   zigzag varint of the integer k (grams, mm/s, ms, ...)
#   3 any other float           IEEE 754 double, 8 bytes (NaN and infinities too)
# prod body: u16 with a 2-bit tag per known field (0 = absent), then their values in
# _PROD order; t0 and t1 are stored as differences from t when they are of t's kind, so an
# interval costs two bytes. Fields that are not numbers or not known follow as a JSON
# object. Other types: the fields as a JSON object (nothing if there are none).
# MicroPython 1.29 prints floats in JSON with round-trip precision, as CPython does.
import json
import struct

from hal.compat import const

_INT = const(1)
_MILLI = const(2)
_F64 = const(3)
_PROD_CODE = const(1)
# |x| below this keeps k = x * 1000 under 2**53, where every integer is an exact double.
_MILLI_LIMIT = const(9.0e12)

TYPES = ("prod", "alarm", "event", "diag")
PROD_FIELDS = ("t0", "t1", "mass_kg", "total_kg", "rate_tph", "speed_mps", "run_s")
_RESERVED = const(("seq", "t", "type"))


class RecordError(ValueError):
    """A record that cannot be stored (bad type, t or fields) or a payload that cannot be
    decoded."""


def _kind(x):
    """(tag, int or float to store) for a number, (0, None) for anything else."""
    if type(x) is int:
        return _INT, x
    if type(x) is float:
        if -_MILLI_LIMIT < x < _MILLI_LIMIT:  # also false for NaN and the infinities
            k = round(x * 1000)
            if k / 1000 == x:
                return _MILLI, k
        return _F64, x
    return 0, None


def _put(out, tag, v):
    if tag == _F64:
        out.extend(struct.pack("<d", v))
        return
    z = v << 1 if v >= 0 else ((-v) << 1) - 1  # zigzag: small magnitudes, few bytes
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)


def _get(p, i, tag):
    """(stored int or float, next index)."""
    if tag == _F64:
        return struct.unpack_from("<d", p, i)[0], i + 8
    if tag != _INT and tag != _MILLI:
        raise RecordError("bad number tag %d" % tag)
    z = 0
    shift = 0
    while True:
        c = p[i]
        i += 1
        z |= (c & 0x7F) << shift
        if c < 0x80:
            break
        shift += 7
    return (z >> 1 if not z & 1 else -((z + 1) >> 1)), i


def _value(tag, v):
    return v / 1000 if tag == _MILLI else v


def check_json(v, depth=0):
    """Refuse what JSON cannot carry exactly: MicroPython's json.dumps would write
    `<object>` or `nan` and the record could never be read back."""
    if v is None or type(v) is bool or type(v) is int or type(v) is str:
        return
    if type(v) is float:
        if v - v != 0:  # NaN and the infinities
            raise RecordError("%r cannot be stored in JSON fields" % v)
        return
    if depth > 16:
        raise RecordError("fields nested too deep")
    if type(v) is dict:
        for k, x in v.items():
            if type(k) is not str:
                raise RecordError("key %r is not a string" % (k,))
            check_json(x, depth + 1)
        return
    if type(v) is list or type(v) is tuple:  # a tuple comes back as a list, as in JSON
        for x in v:
            check_json(x, depth + 1)
        return
    raise RecordError("a %s cannot be stored in a record" % type(v).__name__)


def _json(obj):
    check_json(obj)
    return json.dumps(obj).encode()


def encode(seq, rtype, t, fields):
    """The payload of one record. Raises RecordError for input it cannot store exactly."""
    if not isinstance(fields, dict):
        raise RecordError("fields must be a dict")
    for k in _RESERVED:
        if k in fields:
            raise RecordError("field %r is set by the store" % k)
    tag_t, kt = _kind(t)
    if not tag_t:
        raise RecordError("t must be a number, got %r" % (t,))
    out = bytearray(struct.pack("<I", seq))
    if rtype in TYPES:
        code = TYPES.index(rtype) + 1
        out.append(code)
    elif isinstance(rtype, str) and rtype and len(rtype.encode()) < 256:
        code = 0
        name = rtype.encode()
        out.append(0)
        out.append(len(name))
        out.extend(name)
    else:
        raise RecordError("bad record type %r" % (rtype,))
    out.append(tag_t)
    _put(out, tag_t, kt)
    if code != _PROD_CODE:
        if fields:
            out.extend(_json(fields))
        return bytes(out)
    tags_at = len(out)
    out.extend(b"\0\0")
    tags = 0
    extras = None
    for j in range(len(PROD_FIELDS)):
        name = PROD_FIELDS[j]
        if name not in fields:
            continue
        tag, v = _kind(fields[name])
        if not tag:
            continue  # not a number: goes with the extras
        if j < 2 and tag == tag_t and tag != _F64:
            v -= kt
        tags |= tag << (2 * j)
        _put(out, tag, v)
    out[tags_at] = tags & 0xFF
    out[tags_at + 1] = tags >> 8
    for name, v in fields.items():
        if name not in PROD_FIELDS or not _kind(v)[0]:
            if extras is None:
                extras = {}
            extras[name] = v
    if extras:
        out.extend(_json(extras))
    return bytes(out)


def _head(p):
    """(seq, type, t tag, t stored value, index after t)."""
    seq = struct.unpack_from("<I", p, 0)[0]
    code = p[4]
    i = 5
    if code == 0:
        n = p[5]
        rtype = bytes(p[6 : 6 + n]).decode()
        i = 6 + n
    elif code <= len(TYPES):
        rtype = TYPES[code - 1]
    else:
        raise RecordError("bad type code %d" % code)
    tag_t = p[i]
    kt, i = _get(p, i + 1, tag_t)
    return seq, rtype, tag_t, kt, i


def decode_t(p):
    """The record time alone, for time-range scans."""
    h = _head(p)
    return _value(h[2], h[3])


def decode(p):
    """The record dict of a payload (bytes or memoryview)."""
    try:
        seq, rtype, tag_t, kt, i = _head(p)
        rec = {"seq": seq, "t": _value(tag_t, kt), "type": rtype}
        if rtype == "prod":
            tags = p[i] | p[i + 1] << 8
            i += 2
            for j in range(len(PROD_FIELDS)):
                tag = (tags >> (2 * j)) & 3
                if not tag:
                    continue
                v, i = _get(p, i, tag)
                if j < 2 and tag == tag_t and tag != _F64:
                    v += kt
                rec[PROD_FIELDS[j]] = _value(tag, v)
        if i < len(p):
            more = json.loads(bytes(p[i:]).decode())
            if not isinstance(more, dict):
                raise ValueError("body is not an object")
            rec.update(more)
        return rec
    except (IndexError, ValueError, KeyError, UnicodeError) as e:
        raise RecordError("undecodable record: %r" % (e,))
