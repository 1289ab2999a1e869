# Power cut after every n-th write, flush, sync, create, rename or remove, for every n
# through a scripted workload, littlefs-style: after each restart every record that was
# acknowledged as written is there and intact, seq has no gap or repeat, and each slot
# holds the old or the new state, never a mix. Then the store goes on from there.
from tests.core import storework as w
from tests.core.faultfs import FaultFlash, PowerCut

_UNTIL = 40  # records; with 512-byte segments and a 2 KiB budget, retention runs too
_VARIANTS = (("synced", 0.5), ("written", 0.0), ("written", 0.5), ("written", 1.0))


def _clean_ops():
    ff = FaultFlash()
    acks = w.Acks()
    w.run(ff, acks, _UNTIL)
    assert acks.seq == _UNTIL and ("retention_overrun" not in [a[0] for a in acks.alarms])
    w.verify(ff.restart("synced"), acks)
    return ff.ops


def _cut_run(n, keep, torn):
    ff = FaultFlash(cut_after=n, torn=torn)
    acks = w.Acks()
    try:
        w.run(ff, acks, _UNTIL)
        raise AssertionError("the workload ended before op %d" % n)
    except PowerCut:
        pass
    ff = ff.restart(keep)
    try:
        w.verify(ff, acks)
        w.run(ff, acks, acks.seq + 4)
        w.verify(ff.restart("synced"), acks)
    except AssertionError as e:
        raise AssertionError("cut at op %d (%s, torn %s): %s" % (n, keep, torn, e))


def test_cut_at_every_op_of_the_workload():
    total = _clean_ops()
    assert total > 150
    for keep, torn in _VARIANTS:
        for n in range(1, total + 1):
            _cut_run(n, keep, torn)


class _Rand:
    """The same numbers on both interpreters."""

    def __init__(self, seed):
        self.x = seed

    def below(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


def test_cuts_during_recovery_and_after_it_chain_safely():
    # Many cuts in a row on one device, some of them in the first writes after a restart.
    r = _Rand(2026)
    ff = FaultFlash()
    acks = w.Acks()
    target = 0
    for round_ in range(120):
        target += 6
        ff.cut_after = ff.ops + 1 + r.below(30)
        ff.torn = r.below(3) / 2
        try:
            w.run(ff, acks, target)
        except PowerCut:
            pass
        ff = ff.restart(("synced", "written")[r.below(2)])
        try:
            w.verify(ff, acks)
        except AssertionError as e:
            raise AssertionError("round %d: %s" % (round_, e))
    assert acks.seq > 100  # the store made progress through it all
