# Serial ports. One small interface for every way a byte reaches RS485:
#   write(data)                  send now
#   readinto(buf, timeout_ms)    wait up to timeout_ms for the first byte, then return
#                                what has arrived (at most len(buf)); 0 on timeout
#   discard_input()              drop stale bytes; returns how many (at least 1 if any)
#   close()
# Parity: "N" (8N1, the collector) or "E" / "O" (8E1 / 8O1, the power terminals).
# URLs: CPython takes any pyserial URL (/dev/ttyUSB0, a pty path, socket://host:port):
# hal/uart_pyserial.py. MicroPython: "uart:N" is machine.UART(N) on a board
# (hal/uart_machine.py); on the unix port "socket://h:p" is a TCP serial server and a path
# is a tty driven through termios (hal/uart_polled.py). Only the variant in use is
# imported: on a board without frozen modules, code costs RAM.
#
# A port may be absent when the gateway starts or vanish later (a USB adapter unplugged, the
# serial server down): every variant opens lazily, raises UartError while the port is not
# there, and opens it again on the next call after an error. Nothing here crashes the caller
# or blocks longer than the call's own timeout (a TCP connect: at most CONNECT_MS).
from hal.compat import MICROPYTHON

DISCARD_READS = 8  # bounded: a line may babble without end
CONNECT_MS = 200  # a TCP serial server's connect


class UartError(OSError):
    pass


def _split_socket_url(url):
    hostport = url[len("socket://") :].split("/")[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UartError("bad socket URL %r, want socket://host:port" % url)
    return host, int(port)


def open_uart(url, baud, parity="N"):
    if parity not in ("N", "E", "O"):
        raise UartError("parity %r, want N, E or O" % (parity,))
    if not MICROPYTHON:
        from hal.uart_pyserial import PySerialUart

        return PySerialUart(url, baud, parity)
    if url.startswith("uart:"):
        from hal.uart_machine import MachineUart

        return MachineUart(int(url[5:]), baud, parity)
    from hal.uart_polled import SocketUart, TtyUart

    if url.startswith("socket://"):
        return SocketUart(*_split_socket_url(url))  # the serial server sets the line
    return TtyUart(url, baud, parity)
