# The console (stdin/stdout) as a stream with the hal.uart interface, so the CLI can
# serve the terminal the gateway runs in (cli.port "console"), on CPython and on the unix
# port alike. Reads never wait longer than asked (select.poll). On a terminal, line
# editing and echo are switched off (the CLI does both) and restored by close(); Ctrl-C
# still stops the process. Not a terminal (a pipe, /dev/null when started as a service):
# nothing to switch, lines are read as they come, and end of input only ends the CLI.
import select
import sys

from hal.compat import MICROPYTHON, const

# Linux termios values (the unix port's termios module has no named constants).
_ICRNL = const(0o400)
_ICANON = const(0o2)
_ECHO = const(0o10)
_VTIME = const(5)
_VMIN = const(6)


class Console:
    def __init__(self):
        self._saved = None
        self._eof = False
        self._one = bytearray(1)
        self._poll = select.poll()
        self._poll.register(sys.stdin if MICROPYTHON else 0, select.POLLIN)
        try:
            import termios
        except ImportError:
            return
        try:
            attr = termios.tcgetattr(0)
        except (OSError, getattr(termios, "error", OSError)):  # CPython's is no OSError
            return  # not a terminal (a pipe, /dev/null at a service start): lines as they come
        self._saved = [list(a) if isinstance(a, list) else a for a in attr]
        attr[0] &= ~_ICRNL
        attr[3] &= ~(_ICANON | _ECHO)
        attr[6][_VMIN] = 0
        attr[6][_VTIME] = 0
        termios.tcsetattr(0, termios.TCSANOW, attr)

    def _ready(self, timeout_ms):
        return bool(self._poll.poll(max(timeout_ms, 0)))

    def readinto(self, buf, timeout_ms):
        if self._eof or not self._ready(timeout_ms):
            return 0
        if not MICROPYTHON:
            import os

            data = os.read(0, len(buf))
            if not data:
                self._eof = True  # stdin closed: nothing more will come
            buf[: len(data)] = data
            return len(data)
        # The unix port's readinto waits to fill the buffer from a pipe: one byte at a
        # time, only while poll says one is there.
        n = 0
        one = self._one
        while n < len(buf):
            if not sys.stdin.buffer.readinto(one):
                self._eof = n == 0
                break
            buf[n] = one[0]
            n += 1
            if not self._ready(0):
                break
        return n

    def write(self, data):
        if MICROPYTHON:
            sys.stdout.buffer.write(data)
            return
        import os

        sys.stdout.flush()  # keep order with print()
        mv = memoryview(data)
        while len(mv):
            n = os.write(1, mv)
            mv = mv[n:]

    def discard_input(self):
        n = 0
        scratch = bytearray(64)
        while True:
            got = self.readinto(scratch, 0)
            if not got:
                return n
            n += got

    def close(self):
        if self._saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSANOW, self._saved)
            self._saved = None
