# A technician's terminal on the master side of a pty: type (key by key, at a human pace
# if asked) and wait for text to appear. CPython only.
import os
import re
import select
import time


class Timeout(AssertionError):
    pass


class PtyTerm:
    def __init__(self, master_fd):
        self.fd = master_fd
        self.screen = ""  # everything received, CR/LF kept
        self._mark = 0

    @classmethod
    def open(cls, raw=True):
        """A pty pair: (terminal on the master side, path of the slave side)."""
        import tty

        master, slave = os.openpty()
        if raw:
            tty.setraw(slave)
        path = os.ttyname(slave)
        term = cls(master)
        term._slave = slave  # kept open so the pty survives until the peer opens it
        return term, path

    def close(self):
        for fd in (self.fd, getattr(self, "_slave", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def pump(self, timeout_s=0.0):
        """Take what has arrived; wait up to timeout_s for the first byte."""
        got = False
        while True:
            r, _, _ = select.select([self.fd], [], [], timeout_s)
            if not r:
                return got
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return got
            if not data:
                return got
            self.screen += data.decode("utf-8", "replace")
            got = True
            timeout_s = 0

    def send(self, data, key_delay_s=0.0):
        if isinstance(data, str):
            data = data.encode()
        if key_delay_s <= 0:
            view = memoryview(data)
            while len(view):
                _, w, _ = select.select([], [self.fd], [], 5)
                if not w:
                    raise Timeout("terminal does not take input")
                n = os.write(self.fd, view[:1024])
                view = view[n:]
                self.pump()
            return
        for i in range(len(data)):
            os.write(self.fd, data[i : i + 1])
            self.pump(key_delay_s)
            time.sleep(key_delay_s)

    def expect(self, pattern, timeout_s=10.0):
        """Wait until pattern (a regex) appears after the last match; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while True:
            m = rx.search(self.screen, self._mark)
            if m:
                self._mark = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("%r not seen in %.0f s; screen ends with:\n%s"
                              % (pattern, timeout_s, self.screen[-1500:]))
            self.pump(min(left, 0.1))

    def since_mark(self):
        return self.screen[self._mark :]

    def line(self, text, key_delay_s=0.0):
        self.send(text + "\r", key_delay_s)
