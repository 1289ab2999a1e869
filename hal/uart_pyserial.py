# The serial port on CPython: any pyserial URL (hal/uart.py has the interface).
import select

from hal.uart import CONNECT_MS, DISCARD_READS, UartError


class PySerialUart:
    def __init__(self, url, baud, parity="N"):
        import serial

        self._serial = serial
        self._url = url
        self._baud = baud
        self._parity = parity  # pyserial's PARITY_NONE / EVEN / ODD are "N" / "E" / "O"
        self._s = None

    def _port(self):
        if self._s is None:
            serial = self._serial
            if self._url.startswith("socket://"):
                # pyserial waits 5 s for a TCP connect (its only use of this constant): a
                # serial server that is off would hold the whole loop that long.
                from serial.urlhandler import protocol_socket

                protocol_socket.POLL_TIMEOUT = CONNECT_MS / 1000
            try:
                self._s = serial.serial_for_url(
                    self._url, baudrate=self._baud, parity=self._parity, timeout=0,
                    write_timeout=1,
                )
            except (serial.SerialException, ValueError, OSError) as e:
                raise UartError("cannot open %s: %s" % (self._url, e))
        return self._s

    def _fail(self, e):
        # Forget the port: the next call opens it again.
        s, self._s = self._s, None
        if s is not None:
            try:
                s.close()
            except (self._serial.SerialException, OSError):
                pass
        return UartError("%s: %s" % (self._url, e))

    def write(self, data):
        s = self._port()
        try:
            s.write(data)
        except (self._serial.SerialException, OSError) as e:
            raise self._fail(e)

    def readinto(self, buf, timeout_ms):
        s = self._port()
        try:
            # select on the descriptor: changing pyserial's timeout would reconfigure the port.
            ready = select.select([s.fileno()], [], [], max(timeout_ms, 0) / 1000)[0]
            if not ready:
                return 0
            data = s.read(len(buf))
        except (self._serial.SerialException, OSError, ValueError) as e:
            raise self._fail(e)
        n = len(data)
        buf[:n] = data
        return n

    def discard_input(self):
        s = self._port()
        try:
            n = 0
            for _ in range(DISCARD_READS):  # bounded: a line may babble without end
                if not select.select([s.fileno()], [], [], 0)[0]:
                    break
                got = len(s.read(4096))
                if not got:
                    break
                n += got
        except (self._serial.SerialException, OSError, ValueError) as e:
            raise self._fail(e)
        return n

    def close(self):
        if self._s is not None:
            self._s.close()
            self._s = None
