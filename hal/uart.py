# Serial ports. One small interface for every way a byte reaches RS485:
#   write(data)                  send now
#   readinto(buf, timeout_ms)    wait up to timeout_ms for the first byte, then return
#                                what has arrived (at most len(buf)); 0 on timeout
#   discard_input()              drop stale bytes; returns how many (at least 1 if any)
#   close()
# URLs: CPython takes any pyserial URL (/dev/ttyUSB0, a pty path, socket://host:port).
# MicroPython: "uart:N" is machine.UART(N) on a board; on the unix port "socket://h:p"
# is a TCP serial server and a path is a tty driven through termios.
#
# A port may be absent when the gateway starts or vanish later (a USB adapter unplugged, the
# serial server down): every variant opens lazily, raises UartError while the port is not
# there, and opens it again on the next call after an error. Nothing here crashes the caller
# or blocks longer than the call's own timeout (a TCP connect: at most _CONNECT_MS).
import select

from hal.compat import MICROPYTHON


_DISCARD_READS = 8


class UartError(OSError):
    pass


def _split_socket_url(url):
    hostport = url[len("socket://") :].split("/")[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UartError("bad socket URL %r, want socket://host:port" % url)
    return host, int(port)


def open_uart(url, baud):
    if not MICROPYTHON:
        return PySerialUart(url, baud)
    if url.startswith("uart:"):
        return MachineUart(int(url[5:]), baud)
    if url.startswith("socket://"):
        return SocketUart(*_split_socket_url(url))
    return TtyUart(url, baud)


class PySerialUart:
    def __init__(self, url, baud):
        import serial

        self._serial = serial
        self._url = url
        self._baud = baud
        self._s = None

    def _port(self):
        if self._s is None:
            serial = self._serial
            if self._url.startswith("socket://"):
                # pyserial waits 5 s for a TCP connect (its only use of this constant): a
                # serial server that is off would hold the whole loop that long.
                from serial.urlhandler import protocol_socket

                protocol_socket.POLL_TIMEOUT = SocketUart._CONNECT_MS / 1000
            try:
                self._s = serial.serial_for_url(
                    self._url, baudrate=self._baud, timeout=0, write_timeout=1
                )
            except (serial.SerialException, ValueError, OSError) as e:
                raise UartError("cannot open %s: %s" % (self._url, e))
        return self._s

    def _fail(self, e):
        # Forget the port: the next call opens it again.
        s, self._s = self._s, None
        if s is not None:
            try:
                s.close()
            except (self._serial.SerialException, OSError):
                pass
        return UartError("%s: %s" % (self._url, e))

    def write(self, data):
        s = self._port()
        try:
            s.write(data)
        except (self._serial.SerialException, OSError) as e:
            raise self._fail(e)

    def readinto(self, buf, timeout_ms):
        s = self._port()
        try:
            # select on the descriptor: changing pyserial's timeout would reconfigure the port.
            ready = select.select([s.fileno()], [], [], max(timeout_ms, 0) / 1000)[0]
            if not ready:
                return 0
            data = s.read(len(buf))
        except (self._serial.SerialException, OSError, ValueError) as e:
            raise self._fail(e)
        n = len(data)
        buf[:n] = data
        return n

    def discard_input(self):
        s = self._port()
        try:
            n = 0
            for _ in range(_DISCARD_READS):  # bounded: a line may babble without end
                if not select.select([s.fileno()], [], [], 0)[0]:
                    break
                got = len(s.read(4096))
                if not got:
                    break
                n += got
        except (self._serial.SerialException, OSError, ValueError) as e:
            raise self._fail(e)
        return n

    def close(self):
        if self._s is not None:
            self._s.close()
            self._s = None


class _PolledStream:
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
        for _ in range(_DISCARD_READS * 16):  # bounded: a line may babble without end
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


class TtyUart(_PolledStream):
    # VMIN=0, VTIME=0: a read returns what is buffered instead of waiting for a count.
    _VTIME = 5
    _VMIN = 6

    def __init__(self, path, baud):
        self._name = path
        self._baud = baud
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
            speed = getattr(termios, "B%d" % self._baud, None)
            if speed is not None:  # the unix port's termios lacks 19200 and 38400
                attr[4] = attr[5] = speed
            attr[6][self._VMIN] = 0
            attr[6][self._VTIME] = 0
            termios.tcsetattr(fd, termios.TCSANOW, attr)
        except OSError as e:
            f.close()
            raise UartError("cannot set up %s: %s" % (self._name, e))
        poll = select.poll()
        poll.register(f, select.POLLIN)
        self._obj = f
        self._poll = poll


class SocketUart(_PolledStream):
    """RTU frames carried byte for byte over TCP (an RS485-to-Ethernet serial server).
    Connects on first use; a dropped connection raises UartError once and is made again
    on the next call."""

    _CONNECT_MS = 200
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
        ev = p.poll(self._CONNECT_MS)
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


class MachineUart(_PolledStream):
    def __init__(self, uart_id, baud):
        self._id = uart_id
        self._baud = baud
        self._name = "uart:%d" % uart_id
        self._obj = None

    def _open(self):
        import machine

        try:
            u = machine.UART(self._id, baudrate=self._baud, bits=8, parity=None, stop=1, timeout=0)
        except (OSError, ValueError) as e:
            raise UartError("cannot open %s: %s" % (self._name, e))
        poll = select.poll()
        poll.register(u, select.POLLIN)
        self._obj = u
        self._poll = poll

    def _close(self):
        u, self._obj, self._poll = self._obj, None, None
        if u is not None:
            u.deinit()
