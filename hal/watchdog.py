# A watchdog that resets the board when the loop stops feeding it.
# Board: machine.WDT. PC and unix port: a thread that ends the process with status 3,
# which is what a reset looks like to whoever restarts the gateway.
import os
import sys

from hal.compat import sleep_ms, ticks_diff, ticks_ms


class Watchdog:
    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
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

    def _guard(self):
        while True:
            sleep_ms(self.timeout_ms // 4)
            if ticks_diff(ticks_ms(), self._last) > self.timeout_ms:
                self.expired = True
                sys.stderr.write("watchdog: loop not fed for %d ms, resetting\n" % self.timeout_ms)
                _exit(3)


def _exit(code):
    if hasattr(os, "_exit"):
        os._exit(code)
    # MicroPython unix port: no os._exit, and sys.exit() would end only this thread.
    # The shell's parent is this process.
    os.system("kill -9 $PPID")
