# hal: the only package that knows which interpreter and which hardware it runs on.
# Nothing here touches hardware at import time; hal.board.build() makes the objects.


class Hardware:
    """What hal.board.build() makes and the gateway is handed (tests make their own)."""

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
