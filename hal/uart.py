# Serial ports. One small interface for every way a byte reaches RS485:
#   write(data)                  send now
#   readinto(buf, timeout_ms)    wait up to timeout_ms for the first byte, then return
#                                what has arrived (at most len(buf)); 0 on timeout
#   discard_input()              drop stale bytes; returns how many (at least 1 if any)
#   close()
#   open_error, open_failures    why the port last would not open (None once it is open),
#                                and how many times it would not (diag and status show them)
# Parity: "N" (8N1, the collector) or "E" / "O" (8E1 / 8O1, the power terminals).
# The variants (hal/uart_pyserial.py on CPython; hal/uart_machine.py on a board,
# hal/uart_polled.py on the unix port) share this module's error and limits; which one a
# URL gets is decided in hal/board.py (open_uart): they import this module, never the
# other way round.
#
# A port may be absent when the gateway starts or vanish later (a USB adapter unplugged, the
# serial server down): every variant opens lazily, raises UartError while the port is not
# there, and opens it again on the next call after an error. Nothing here crashes the caller
# or blocks longer than the call's own timeout (a TCP connect: at most CONNECT_MS).
DISCARD_READS = 8  # bounded: a line may babble without end
CONNECT_MS = 200  # a TCP serial server's connect


class UartError(OSError):
    pass


def refused(port, e):
    """port (a variant) would not open: count it and keep why. The first refusal of a run
    is printed, in one line; the next ones are only counted, until the port opens."""
    port.open_failures += 1
    if port.open_error is None:
        print("%s; trying again" % e)
    port.open_error = str(e)


def _split_socket_url(url):
    hostport = url[len("socket://") :].split("/")[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UartError("bad socket URL %r, want socket://host:port" % url)
    return host, int(port)
