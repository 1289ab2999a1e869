# Non-blocking TCP for the uplink: connecting, sending and receiving never wait, so a
# center that accepts and then reads nothing costs the loop nothing. The same code runs
# on MicroPython (socket + select.poll) and CPython.
import errno
import select
import socket

_EINPROGRESS = errno.EINPROGRESS
_EAGAIN = errno.EAGAIN


class NetError(OSError):
    pass


def _why(e):
    code = e.errno if isinstance(e, OSError) else None
    if not isinstance(code, int) or not code:  # MicroPython's getaddrinfo puts text there
        return str(e)
    return "%s (errno %d)" % (errno.errorcode.get(code, "error"), code)


class TcpConnection:
    """One TCP connection whose connect() was started without waiting."""

    def __init__(self, sock):
        self._sock = sock
        self._poll = select.poll()
        self._poll.register(sock, select.POLLOUT)
        self._connected = False

    def ready(self):
        """True once connected, False while connecting; NetError if the connect failed."""
        if self._connected:
            return True
        ev = self._poll.poll(0)
        if not ev:
            return False
        if ev[0][1] & (select.POLLERR | select.POLLHUP):
            # A read reports the connect's error (MicroPython has no getsockopt).
            try:
                self._recv(bytearray(1))
            except OSError as e:
                raise NetError("connect: %s" % _why(e))
            raise NetError("connect: failed")
        self._connected = True
        self._poll.unregister(self._sock)
        return True

    def send(self, data):
        """Bytes taken by the kernel from data (0 when its buffer is full)."""
        try:
            n = self._sock.send(data)
        except OSError as e:
            if e.errno == _EAGAIN:
                return 0
            raise NetError("send: %s" % _why(e))
        return n or 0

    def _recv(self, buf):
        if hasattr(self._sock, "recv_into"):
            return self._sock.recv_into(buf)
        return self._sock.readinto(buf)  # MicroPython: None when nothing is there

    def recv_into(self, buf):
        """Bytes read into buf (0 when nothing has arrived); NetError when the peer closed."""
        try:
            n = self._recv(buf)
        except OSError as e:
            if e.errno == _EAGAIN:
                return 0
            raise NetError("recv: %s" % _why(e))
        if n is None:
            return 0
        if n == 0:
            raise NetError("closed by peer")
        return n

    def close(self):
        self._sock.close()


class TcpConnector:
    """connect() -> a TcpConnection whose connect has begun. The address is resolved once,
    on first use: resolving a host name can block, so the configuration should give the
    center as an IP address, which resolves without a lookup."""

    def __init__(self, host, port):
        self.host = host
        self.port = port
        self._addr = None

    def __call__(self):
        if self._addr is None:
            try:
                ai = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0]
            except OSError as e:
                raise NetError("resolve %s: %s" % (self.host, _why(e)))
            self._addr = (ai[0], ai[-1])
        family, addr = self._addr
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(addr)
        except OSError as e:
            if e.errno not in (_EINPROGRESS, _EAGAIN):
                s.close()
                raise NetError("connect %s:%d: %s" % (self.host, self.port, _why(e)))
        return TcpConnection(s)
