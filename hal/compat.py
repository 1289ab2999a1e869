# Interpreter differences, in one place: MicroPython's built-ins, or their stand-ins from
# hal/pc.py on CPython.
import sys
import time

MICROPYTHON = sys.implementation.name == "micropython"

if MICROPYTHON:
    from micropython import const

    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add
    sleep_ms = time.sleep_ms

    def print_exception(exc, file=sys.stderr):
        sys.print_exception(exc, file)

else:
    from hal.pc import (  # noqa: F401
        const, print_exception, sleep_ms, ticks_add, ticks_diff, ticks_ms,
    )
