# A clock that tests and the emulator drive, with hal/clock.py's methods. Not in the
# firmware image (manifest.py): the gateway runs on the board's clocks.
from hal.compat import ticks_add, ticks_diff


class VirtualClock:
    """Time that moves only when told to. sleep_ms() advances it, so a loop that
    sleeps runs a simulated day in moments."""

    def __init__(self, start_s=1767225600.0, ticks_start=0):
        self._ms = 0
        self._ticks0 = ticks_start
        self._t0 = start_s

    def ticks_ms(self):
        return ticks_add(self._ticks0, self._ms)

    def ticks_diff(self, a, b):
        return ticks_diff(a, b)

    def ticks_add(self, t, delta):
        return ticks_add(t, delta)

    def time(self):
        return self._t0 + self._ms / 1000

    def set_time(self, t):
        step = t - self.time()
        self._t0 += step
        return step

    def advance_ms(self, ms):
        self._ms += ms

    def sleep_ms(self, ms):
        if ms > 0:
            self._ms += ms
