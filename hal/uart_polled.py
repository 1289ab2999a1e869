# Serial ports on MicroPython, waited on with select.poll (hal/uart.py has the interface):
# the base every MicroPython variant shares, a tty through termios and a TCP serial
# server (the unix port's two).
import select

from hal.compat import const
from hal.uart import CONNECT_MS, DISCARD_READS, UartError

_VTIME = const(5)  # indices into termios' control characters
_VMIN = const(6)
# Linux's c_cflag parity bits and the speeds the unix port's termios does not name.
_PARENB = const(0o400)
_PARODD = const(0o1000)
_SPEEDS = {1200: 0o11, 2400: 0o13, 4800: 0o14}


class PolledStream:
    """Shared by the MicroPython variants: open on first use, wait with select.poll, read
    what is there; after an error, close and open again on the next call."""

    _poll = None

    def _ready_stream(self):
        if self._poll is None:
            self._open()
        return self._poll

    def _fail(self, e):
        self._close()
        return UartError("%s: %s" % (self._name, e))

    def _wait(self, timeout_ms):
        for _, ev in self._ready_stream().poll(max(timeout_ms, 0)):
            if ev & (select.POLLERR | select.POLLHUP) and not ev & select.POLLIN:
                raise self._fail("hung up")
            return True
        return False

    def readinto(self, buf, timeout_ms):
        if not self._wait(timeout_ms):
            return 0
        return self._read_ready(buf)

    def _read_ready(self, buf):
        try:
            n = self._obj.readinto(buf)
        except OSError as e:
            if e.errno == 11:  # EAGAIN: nothing after all
                return 0
            raise self._fail(e)
        if n is None:  # non-blocking and empty
            return 0
        if n == 0:  # readable but empty: the other end is gone
            raise self._fail("closed")
        return n

    def write(self, data):
        self._ready_stream()
        try:
            self._write(data)
        except OSError as e:
            raise self._fail(e)

    def _write(self, data):
        self._obj.write(data)

    def discard_input(self):
        n = 0
        scratch = bytearray(64)
        for _ in range(DISCARD_READS * 16):  # bounded: a line may babble without end
            if not self._wait(0):
                break
            got = self._read_ready(scratch)
            if not got:
                break
            n += got
        return n

    def _close(self):
        obj, self._obj, self._poll = self._obj, None, None
        if obj is not None:
            try:
                obj.close()
            except OSError:
                pass

    def close(self):
        self._close()


class TtyUart(PolledStream):
    def __init__(self, path, baud, parity="N"):
        self._name = path
        self._baud = baud
        self._parity = parity
        self._obj = None

    def _open(self):
        import termios

        try:
            f = open(self._name, "r+b")
        except OSError as e:
            raise UartError("cannot open %s: %s" % (self._name, e))
        try:
            fd = f.fileno()
            termios.setraw(fd)
            attr = termios.tcgetattr(fd)
            speed = getattr(termios, "B%d" % self._baud, None) or _SPEEDS.get(self._baud)
            if speed is not None:
                attr[4] = attr[5] = speed
            cflag = attr[2] & ~(_PARENB | _PARODD)
            if self._parity != "N":
                cflag |= _PARENB | (_PARODD if self._parity == "O" else 0)
            attr[2] = cflag
            # VMIN=0, VTIME=0: a read returns what is buffered instead of waiting for a count.
            attr[6][_VMIN] = 0
            attr[6][_VTIME] = 0
            termios.tcsetattr(fd, termios.TCSANOW, attr)
        except OSError as e:
            f.close()
            raise UartError("cannot set up %s: %s" % (self._name, e))
        poll = select.poll()
        poll.register(f, select.POLLIN)
        self._obj = f
        self._poll = poll


class SocketUart(PolledStream):
    """RTU frames carried byte for byte over TCP (an RS485-to-Ethernet serial server).
    Connects on first use; a dropped connection raises UartError once and is made again
    on the next call."""

    _WRITE_MS = 200

    def __init__(self, host, port):
        self._addr = (host, port)
        self._name = "%s:%d" % self._addr
        self._obj = None

    def _open(self):
        import socket

        try:
            ai = socket.getaddrinfo(self._addr[0], self._addr[1], 0, socket.SOCK_STREAM)[0]
            s = socket.socket(ai[0], socket.SOCK_STREAM)
        except OSError as e:
            raise UartError("connect %s: %s" % (self._name, e))
        s.setblocking(False)
        try:
            s.connect(ai[-1])
        except OSError as e:
            if e.errno != 115:  # EINPROGRESS
                s.close()
                raise UartError("connect %s: %s" % (self._name, e))
        p = select.poll()
        p.register(s, select.POLLOUT)
        ev = p.poll(CONNECT_MS)
        if not ev or ev[0][1] & (select.POLLERR | select.POLLHUP):
            s.close()
            raise UartError("connect %s: no answer" % self._name)
        p.modify(s, select.POLLIN)
        self._obj = s
        self._poll = p

    def _write(self, data):
        # A non-blocking socket may take part of it; a frame is small, so this is rare.
        mv = memoryview(data)
        sent = 0
        while sent < len(mv):
            n = self._obj.write(mv[sent:])
            if n:
                sent += n
                continue
            p = select.poll()
            p.register(self._obj, select.POLLOUT)
            if not p.poll(self._WRITE_MS):
                raise OSError("write timed out")
