# Interpreter differences, in one place: MicroPython's built-ins, or their stand-ins from
# hal/pc.py on CPython.
import gc
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

    def mem_free():
        """Free heap bytes after a collection (None on CPython: no heap of ours to fit)."""
        gc.collect()
        return gc.mem_free()

else:
    from hal.pc import (  # noqa: F401
        const,
        mem_free,
        print_exception,
        sleep_ms,
        ticks_add,
        ticks_diff,
        ticks_ms,
    )
