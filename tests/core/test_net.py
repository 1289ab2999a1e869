# hal.net on the interpreter at hand: non-blocking connect, send, receive, close, refusal.
import socket

from hal.net import NetError, TcpConnector
from tests.core.util import Rng, raises


def _listener():
    # MicroPython sockets have no getsockname(): try ports until one binds, the same
    # sequence every run (a port taken by another run is passed over).
    rng = Rng(4000)
    for _ in range(50):
        port = 40000 + rng.below(20000)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        except OSError:
            s.close()
            continue
        s.listen(1)
        return s, port
    raise OSError("no free port")


def _wait_ready(conn):
    for _ in range(1000):
        if conn.ready():
            return
    raise AssertionError("never connected")


def test_connect_send_receive_close():
    srv, port = _listener()
    try:
        conn = TcpConnector("127.0.0.1", port)()
        peer, _ = srv.accept()
        _wait_ready(conn)
        buf = bytearray(64)
        assert conn.recv_into(buf) == 0  # nothing there: no wait, no error
        assert conn.send(b"hello center") == 12
        got = b""
        while len(got) < 12:
            got += peer.recv(64)
        assert got == b"hello center"
        peer.send(b"welcome")
        n = 0
        for _ in range(100000):
            n = conn.recv_into(memoryview(buf)[:4])
            if n:
                break
        assert bytes(buf[:n]) == b"welc"[:n] and n > 0
        peer.close()
        e = None
        for _ in range(100000):
            try:
                conn.recv_into(buf)
            except NetError as err:
                e = err
                break
        assert e is not None and "closed by peer" in str(e)
        conn.close()
    finally:
        srv.close()


def test_refused_connect_is_a_net_error():
    srv, port = _listener()
    srv.close()  # nobody listens there now
    try:
        conn = TcpConnector("127.0.0.1", port)()
    except NetError as e:
        assert "ECONNREFUSED" in str(e)
        return
    e = None
    for _ in range(100000):
        try:
            if conn.ready():
                break
        except NetError as err:
            e = err
            break
    assert e is not None and "ECONNREFUSED" in str(e)


def test_unresolvable_host_is_a_net_error():
    assert isinstance(raises(NetError, TcpConnector("no-such-host.invalid", 1)), NetError)
