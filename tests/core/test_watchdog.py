# The watchdog is fed only while every job keeps completing runs; a stalled or failing
# job stops the feeding, and the next start learns that the watchdog reset it.
from gateway.loop import Loop
from hal.fs import Flash
from hal.virtualclock import VirtualClock
from hal.watchdog import Watchdog
from tests.core.util import rmtree, tmpdir


class _Dog:
    def __init__(self, clock):
        self.clock = clock
        self.feeds = []

    def feed(self):
        self.feeds.append(self.clock.ticks_ms())


class _Job:
    def __init__(self, name, clock=None):
        self.name = name
        self.clock = clock
        self.runs = 0
        self.fail = False
        self.hang_ms = 0

    def run(self, now_ms):
        self.runs += 1
        if self.hang_ms:
            self.clock.advance_ms(self.hang_ms)  # stuck inside run(): nothing else happens
            self.hang_ms = 0
        if self.fail:
            raise RuntimeError("job broken")


def _loop():
    clock = VirtualClock(ticks_start=-3000)  # ticks wrap during the test
    dog = _Dog(clock)
    loop = Loop(clock, dog)
    poll = loop.add(_Job("poll", clock), 100)
    diag = loop.add(_Job("diag", clock), 1000)
    return clock, dog, loop, poll, diag


def _max_gap(feeds, clock):
    return max(clock.ticks_diff(b, a) for a, b in zip(feeds, feeds[1:]))


def test_fed_while_every_job_makes_progress():
    clock, dog, loop, poll, diag = _loop()
    loop.run(20000)
    assert poll.runs >= 199 and diag.runs >= 19
    assert _max_gap(dog.feeds, clock) <= 100
    assert loop.stalled(clock.ticks_ms()) == []


def test_a_failing_job_stops_the_feeding():
    clock, dog, loop, poll, diag = _loop()
    loop.run(3000)
    diag.fail = True
    t_fail = clock.ticks_ms()
    loop.run(12000)
    last = dog.feeds[-1]
    # Fed until the job's last good run is 10 periods (at least 5 s) old, never after.
    assert 9000 <= clock.ticks_diff(last, t_fail) <= 10100
    assert loop.stats()["diag"]["errors"] >= 11
    assert loop.stalled(clock.ticks_ms()) == ["diag"]
    assert not loop.progressing(clock.ticks_ms())
    diag.fail = False
    loop.run(2000)
    assert clock.ticks_diff(dog.feeds[-1], last) > 2000  # fed again once it recovers
    assert loop.stalled(clock.ticks_ms()) == []


def test_a_job_that_hangs_gets_no_feed_while_it_hangs():
    clock, dog, loop, poll, diag = _loop()
    loop.run(2000)
    poll.hang_ms = 12000
    loop.run(3000)
    loop.run(1000)
    assert _max_gap(dog.feeds, clock) >= 12000  # a real watchdog (8 s) would have reset
    assert loop.stats()["diag"]["overruns"] >= 1


def test_reset_cause_marker_survives_to_the_next_start():
    root = tmpdir("wdt")
    try:
        flash = Flash(root)
        dog = Watchdog(8000, flash)
        assert dog.reset_cause() == "other"
        dog._bite()  # what the guard does before ending the process
        assert dog.expired
        nxt = Watchdog(8000, Flash(root))
        assert nxt.reset_cause() == "watchdog"
        assert nxt.reset_cause() == "other"  # consumed
        assert Watchdog(8000).reset_cause() == "other"
    finally:
        rmtree(root)
