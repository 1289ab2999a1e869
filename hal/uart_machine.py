# machine.UART on a board (hal/uart.py has the interface).
import select

from hal.uart import UartError
from hal.uart_polled import PolledStream


_PARITY = {"N": None, "E": 0, "O": 1}  # machine.UART's parity argument


class MachineUart(PolledStream):
    def __init__(self, uart_id, baud, parity="N"):
        self._id = uart_id
        self._baud = baud
        self._parity = _PARITY[parity]
        self._name = "uart:%d" % uart_id
        self._obj = None

    def _open(self):
        import machine

        try:
            u = machine.UART(self._id, baudrate=self._baud, bits=8, parity=self._parity, stop=1,
                             timeout=0)
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
