# Serial ports. One small interface for every way a byte reaches RS485:
#   write(data)                  send now
#   readinto(buf, timeout_ms)    wait up to timeout_ms for the first byte, then return
#                                what has arrived (at most len(buf)); 0 on timeout
#   discard_input()              drop stale bytes; returns how many
#   close()
# URLs: CPython takes any pyserial URL (/dev/ttyUSB0, a pty path, socket://host:port).
# MicroPython: "uart:N" is machine.UART(N) on a board; on the unix port "socket://h:p"
# is a TCP serial server and a path is a tty driven through termios.
import select

from hal.compat import MICROPYTHON


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

        try:
            self._s = serial.serial_for_url(url, baudrate=baud, timeout=0, write_timeout=1)
        except (serial.SerialException, ValueError) as e:
            raise UartError("cannot open %s: %s" % (url, e))
        self._serial = serial

    def write(self, data):
        try:
            self._s.write(data)
        except self._serial.SerialException as e:
            raise UartError(str(e))

    def readinto(self, buf, timeout_ms):
        s = self._s
        try:
            s.timeout = max(timeout_ms, 0) / 1000
            first = s.read(1)
            if not first:
                return 0
            s.timeout = 0
            rest = s.read(min(len(buf) - 1, s.in_waiting)) if len(buf) > 1 else b""
        except self._serial.SerialException as e:
            raise UartError(str(e))
        n = 1 + len(rest)
        buf[0] = first[0]
        buf[1:n] = rest
        return n

    def discard_input(self):
        try:
            n = self._s.in_waiting
            self._s.reset_input_buffer()
        except self._serial.SerialException as e:
            raise UartError(str(e))
        return n

    def close(self):
        self._s.close()


class _PolledStream:
    """Shared by the MicroPython variants: wait with select.poll, then read what is there."""

    def _wait(self, timeout_ms):
        return bool(self._poll.poll(max(timeout_ms, 0)))

    def readinto(self, buf, timeout_ms):
        if not self._wait(timeout_ms):
            return 0
        return self._read_ready(buf)

    def discard_input(self):
        n = 0
        scratch = bytearray(64)
        while self._wait(0):
            got = self._read_ready(scratch)
            if not got:
                break
            n += got
        return n


class TtyUart(_PolledStream):
    # VMIN=0, VTIME=0: a read returns what is buffered instead of waiting for a count.
    _VTIME = 5
    _VMIN = 6

    def __init__(self, path, baud):
        import termios

        try:
            self._f = open(path, "r+b")
        except OSError as e:
            raise UartError("cannot open %s: %s" % (path, e))
        fd = self._f.fileno()
        termios.setraw(fd)
        attr = termios.tcgetattr(fd)
        speed = getattr(termios, "B%d" % baud)
        attr[4] = attr[5] = speed
        attr[6][self._VMIN] = 0
        attr[6][self._VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attr)
        self._poll = select.poll()
        self._poll.register(self._f, select.POLLIN)

    def _read_ready(self, buf):
        return self._f.readinto(buf) or 0

    def write(self, data):
        self._f.write(data)

    def close(self):
        self._f.close()


class SocketUart(_PolledStream):
    """RTU frames carried byte for byte over TCP (an RS485-to-Ethernet serial server).
    A dropped connection is re-made on the next write; the caller sees a timeout meanwhile."""

    _CONNECT_MS = 200

    def __init__(self, host, port):
        self._addr = (host, port)
        self._sock = None
        self._poll = select.poll()

    def _connect(self):
        import socket

        ai = socket.getaddrinfo(self._addr[0], self._addr[1], 0, socket.SOCK_STREAM)[0]
        s = socket.socket(ai[0], socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(ai[-1])
        except OSError as e:
            if e.errno != 115:  # EINPROGRESS
                s.close()
                raise UartError("connect %s:%d: %s" % (self._addr + (e,)))
        p = select.poll()
        p.register(s, select.POLLOUT)
        ev = p.poll(self._CONNECT_MS)
        if not ev or ev[0][1] & (select.POLLERR | select.POLLHUP):
            s.close()
            raise UartError("connect %s:%d: no answer" % self._addr)
        self._sock = s
        self._poll = select.poll()
        self._poll.register(s, select.POLLIN)

    def _drop(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _wait(self, timeout_ms):
        if self._sock is None:
            return False
        return bool(self._poll.poll(max(timeout_ms, 0)))

    def _read_ready(self, buf):
        try:
            n = self._sock.readinto(buf)
        except OSError:
            n = 0
        if not n:  # peer closed or reset: reconnect on the next write
            self._drop()
            return 0
        return n

    def write(self, data):
        if self._sock is None:
            self._connect()
        try:
            self._sock.write(data)
        except OSError as e:
            self._drop()
            raise UartError("write: %s" % e)

    def close(self):
        self._drop()


class MachineUart(_PolledStream):
    def __init__(self, uart_id, baud):
        import machine

        self._u = machine.UART(uart_id, baudrate=baud, bits=8, parity=None, stop=1, timeout=0)
        self._poll = select.poll()
        self._poll.register(self._u, select.POLLIN)

    def _read_ready(self, buf):
        return self._u.readinto(buf) or 0

    def write(self, data):
        self._u.write(data)

    def close(self):
        self._u.deinit()

