# Interpreter differences, in one place.
import sys
import time

MICROPYTHON = sys.implementation.name == "micropython"

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


if hasattr(time, "ticks_ms"):
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add
    sleep_ms = time.sleep_ms
else:
    # Same wrap-around arithmetic as MicroPython's ticks (period 2**30), so code
    # that is wrong about wrapping fails on CPython too.
    _PERIOD = const(1 << 30)
    _HALF = const(1 << 29)

    def ticks_ms():
        return (time.monotonic_ns() // 1000000) & (_PERIOD - 1)

    def ticks_add(t, delta):
        return (t + delta) & (_PERIOD - 1)

    def ticks_diff(a, b):
        return ((a - b + _HALF) & (_PERIOD - 1)) - _HALF

    def sleep_ms(ms):
        if ms > 0:
            time.sleep(ms / 1000)


def print_exception(exc, file=sys.stderr):
    if MICROPYTHON:
        sys.print_exception(exc, file)
    else:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=file)
