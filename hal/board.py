# hwconfig: every hardware object is made here, once, from the configuration, and
# handed to the gateway. A board variant or the emulator replaces this, nothing else.
from hal.clock import Clock
from hal.compat import MICROPYTHON, const
from hal.fs import Flash
from hal.net import TcpConnector
from hal.uart import open_uart
from hal.watchdog import Watchdog

_WATCHDOG_MS = const(8000)


class Hardware:
    def __init__(self, clock, flash, collector_uart, center_connect, cli_uart=None,
                 watchdog=None, display=None, meter_uart=None):
        self.clock = clock
        self.flash = flash
        self.collector_uart = collector_uart
        self.center_connect = center_connect
        self.cli_uart = cli_uart
        self.watchdog = watchdog
        self.display = display
        self.meter_uart = meter_uart  # the power terminals' RS485 (8E1), or None


def _display(screen):
    # A board with a panel builds hal.display.SSD1306 on its I2C bus here. The PC and the
    # unix port have no panel: a framebuffer that the monitor prints, made only for
    # --screen (the LCD job's code is loaded only where there is a display).
    if MICROPYTHON:
        try:
            import machine  # noqa: F401  (a board: no panel configured on this variant)

            return None
        except ImportError:
            pass
    if not screen:
        return None
    from hal.display import TerminalDisplay

    return TerminalDisplay()


def _cli_stream(port):
    if not port:
        return None
    if port == "console":
        from hal.console import Console

        return Console()
    return open_uart(port, 115200)


def build(cfg, screen=False):
    flash = Flash(cfg["data_dir"])
    cli = cfg["cli.port"]
    return Hardware(
        clock=Clock(),
        flash=flash,
        collector_uart=open_uart(cfg["collector.port"], cfg["collector.baud"]),
        center_connect=TcpConnector(cfg["center.host"], cfg["center.port"]),
        cli_uart=_cli_stream(cli),
        watchdog=Watchdog(_WATCHDOG_MS, flash),
        display=_display(screen),
        meter_uart=open_uart(cfg["meters.port"], cfg["meters.baud"], cfg["meters.parity"])
        if cfg["meters.port"] and cfg["meters.terminals"] else None,
    )
