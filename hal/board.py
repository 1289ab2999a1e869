# hwconfig: every hardware object is made here, once, from the configuration, and
# handed to the gateway. A board variant or the emulator replaces this, nothing else.
from hal.clock import Clock
from hal.fs import Flash
from hal.uart import open_uart
from hal.watchdog import Watchdog


class Hardware:
    def __init__(self, clock, flash, collector_uart, cli_uart=None, watchdog=None):
        self.clock = clock
        self.flash = flash
        self.collector_uart = collector_uart
        self.cli_uart = cli_uart
        self.watchdog = watchdog


def _cli_stream(port):
    if not port:
        return None
    if port == "console":
        from hal.console import Console

        return Console()
    return open_uart(port, 115200)


def build(cfg):
    cli = cfg["cli.port"]
    flash = Flash(cfg["data_dir"])
    return Hardware(
        clock=Clock(),
        flash=flash,
        collector_uart=open_uart(cfg["collector.port"], cfg["collector.baud"]),
        cli_uart=_cli_stream(cli),
        watchdog=Watchdog(8000, flash),  # flash: where it leaves its reset marker
    )
