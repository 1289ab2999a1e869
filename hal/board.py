# hwconfig: every hardware object is made here, once, from the configuration, and
# handed to the gateway (a hal.Hardware). A board variant or the emulator replaces this,
# nothing else. Loaded for the start only (gateway/boot.py) and forgotten: nothing it
# makes refers to its code.
from hal import Hardware
from hal.clock import Clock
from hal.compat import MICROPYTHON, const
from hal.fs import Flash
from hal.net import TcpConnector
from hal.uart import UartError, _split_socket_url
from hal.watchdog import Watchdog

_WATCHDOG_MS = const(8000)


def _display(screen):
    # A board with a panel builds hal.display.SSD1306 on its I2C bus here. The PC and the
    # unix port have no panel: a framebuffer that the monitor prints, made only for
    # --screen (the LCD job's code is loaded only where there is a display).
    if MICROPYTHON:
        try:
            from machine import I2C  # noqa: F401  (a board: no panel configured on this variant)

            return None
        except ImportError:
            pass  # the unix port: its machine module has no I2C
    if not screen:
        return None
    from hal.display import TerminalDisplay

    # Below the panel: the figures and a legend (gateway/panel/monitor.py), 6 rows.
    return TerminalDisplay(style="fit", spare_rows=6)


def open_uart(url, baud, parity="N"):
    """The serial port at url (hal/uart.py has the interface), 8 data bits, parity "N",
    "E" or "O", 1 stop bit. "uart:N" is machine.UART(N),
    on a board (gateway.config.load refuses it elsewhere). Otherwise CPython takes any
    pyserial URL (/dev/ttyUSB0, a pty path, socket://host:port); the unix port a tty path
    (driven through termios) or socket:// (a TCP serial server). Only the variant in use
    is imported: on a board without frozen modules, code costs RAM."""
    if parity not in ("N", "E", "O"):
        raise UartError("parity %r, want N, E or O" % (parity,))
    if url.startswith("uart:"):
        from hal.uart_machine import MachineUart

        return MachineUart(int(url[5:]), baud, parity)
    if not MICROPYTHON:
        from hal.uart_pyserial import PySerialUart

        return PySerialUart(url, baud, parity)
    from hal.uart_polled import SocketUart, TtyUart

    if url.startswith("socket://"):
        return SocketUart(*_split_socket_url(url))  # the serial server sets the line
    return TtyUart(url, baud, parity)


def _port(url, baud):
    if not url:
        return None
    if url == "console":
        from hal.console import Console

        return Console()
    return open_uart(url, baud)


def build(cfg, screen=False):
    flash = Flash(cfg["data_dir"])
    return Hardware(
        clock=Clock(),
        flash=flash,
        collector_uart=_port(cfg["collector.port"], cfg["collector.baud"]),
        center_connect=TcpConnector(cfg["center.host"], cfg["center.port"]),
        cli_uart=_port(cfg["cli.port"], 115200),
        watchdog=Watchdog(_WATCHDOG_MS, flash),
        display=_display(screen),
        meter_uart=open_uart(cfg["meters.port"], cfg["meters.baud"], cfg["meters.parity"])
        if cfg["meters.port"] and cfg["meters.terminals"] else None,
    )
