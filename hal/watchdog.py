# A watchdog that resets the board when the loop stops feeding it.
# Board: machine.WDT. PC and unix port: a thread that ends the process with status 3,
# which is what a reset looks like to whoever restarts the gateway. It first leaves a
# marker on flash, so that the next start knows why it restarted (reset_cause()).
import os
import sys

from hal.compat import const, sleep_ms, ticks_diff, ticks_ms

_MARKER = const("watchdog.reset")


class Watchdog:
    def __init__(self, timeout_ms, flash=None):
        self.timeout_ms = timeout_ms
        self._flash = flash
        self._wdt = None
        self._last = ticks_ms()
        self.expired = False

    def start(self):
        try:
            import machine

            self._wdt = machine.WDT(timeout=self.timeout_ms)
            return
        except (ImportError, AttributeError):
            pass
        import _thread

        _thread.start_new_thread(self._guard, ())

    def feed(self):
        self._last = ticks_ms()
        if self._wdt is not None:
            self._wdt.feed()

    def reset_cause(self):
        """Why the previous run ended: "watchdog" if this watchdog reset it, else
        "other". Call once at start: it consumes the marker."""
        try:
            import machine

            if machine.reset_cause() == machine.WDT_RESET:
                return "watchdog"
        except (ImportError, AttributeError):
            pass
        if self._flash is not None and self._flash.exists(_MARKER):
            self._flash.remove(_MARKER)
            return "watchdog"
        return "other"

    def _guard(self):
        while True:
            sleep_ms(self.timeout_ms // 4)
            if ticks_diff(ticks_ms(), self._last) > self.timeout_ms:
                self._bite()
                _exit(3)

    def _bite(self):
        self.expired = True
        sys.stderr.write("watchdog: loop not fed for %d ms, resetting\n" % self.timeout_ms)
        if self._flash is not None:
            try:
                with self._flash.open(_MARKER, "w") as f:
                    f.write("1")
                    self._flash.sync(f)
            except OSError:
                pass  # the reset goes ahead; only its cause is unknown next time


def _exit(code):
    if hasattr(os, "_exit"):
        os._exit(code)
    # MicroPython unix port: no os._exit, and sys.exit() would end only this thread.
    # The shell's parent is this process.
    os.system("kill -9 $PPID")
