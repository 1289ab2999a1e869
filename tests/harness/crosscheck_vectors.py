# The cross-check fed one fixed sequence (noisy, restarted, tampered), printing every
# figure it keeps as the bits of the double: tests/test_crosscheck_portable.py runs this
# on MicroPython and on CPython and wants the same lines.
import json
import struct
import sys

_HERE = __file__.rpartition("/")[0] or "."
sys.path.insert(0, _HERE + "/../..")

from gateway.power import judge  # noqa: E402
from tests.core.test_crosscheck import LOADS, SPEEDS, Carry, CrossCheck, Rig  # noqa: E402


def bits(x):
    if x is None:
        return "None"
    return "".join("%02x" % b for b in struct.pack("<d", x))


def dump(tag, cc):
    print(tag, " ".join(bits(x) for x in cc.learn), cc.ready, bits(cc.dev_pct))
    if cc.coef is not None:
        print("  coef", " ".join(bits(x) for x in cc.coef), bits(judge.carry_t(cc)))


def main():
    r = Rig(noise=0.03, seed=11)
    belt = Carry(r)
    for i in range(30):
        belt.run(LOADS[i % 8] * 1000, 100)
        r.window(LOADS[(i * 3) % 8], SPEEDS[i % 4])
        dump("w%d" % i, r.cc)
        if i == 14:
            snap = json.loads(json.dumps(r.cc.snapshot()))
            r.cc = CrossCheck(r.emit, r.alarm)
            r.cc.apply_params(r.flat)
            r.cc.restore(snap)
    implied = r.interval(0.4, 3.0)
    print("implied", bits(implied))
    r.gain = 0.88
    r.window(0.8)
    dump("tamper", r.cc)
    print("alarms", [a for a, _ in r.alarms])


main()
