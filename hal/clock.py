# Monotonic ticks for deadlines and a wall clock for record times. hal/virtualclock.py has
# the clock that tests and the emulator drive, with the same methods.
import time

from hal.compat import sleep_ms, ticks_add, ticks_diff, ticks_ms

# Ports whose epoch is 2000 (most bare-metal MicroPython boards) are shifted to unix time.
_EPOCH_SHIFT = 946684800 if time.gmtime(0)[0] == 2000 else 0


class Clock:
    """The board's clocks. `offset_s` is the correction set by time_sync; the owner
    persists it, because a unix host's system clock is not ours to set."""

    def __init__(self, offset_s=0.0):
        self.offset_s = offset_s

    def ticks_ms(self):
        return ticks_ms()

    def ticks_diff(self, a, b):
        return ticks_diff(a, b)

    def ticks_add(self, t, delta):
        return ticks_add(t, delta)

    def time(self):
        return time.time() + _EPOCH_SHIFT + self.offset_s

    def set_time(self, t):
        """Step the wall clock to unix time t; returns the step in seconds."""
        step = t - self.time()
        self.offset_s += step
        return step

    def sleep_ms(self, ms):
        sleep_ms(ms)
