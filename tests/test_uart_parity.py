# The HAL's UART takes parity (8E1 for the power terminals, 8N1 for the collector): pyserial
# and the unix port's tty set it on the line, machine.UART gets it as its argument.
import os
import subprocess
import sys
import termios
import types

import pytest

from hal.uart import UartError, open_uart

BIN = os.path.dirname(sys.executable)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def pty():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    yield path, slave
    os.close(master)
    os.close(slave)


def _parity(cflag):
    if cflag & termios.PARENB:
        return "O" if cflag & termios.PARODD else "E"
    return "N"


# A pty takes the speed but Linux clears the parity bits of a pty: what the port asked
# the kernel for is recorded at tcsetattr.
def test_pyserial_sets_even_parity_at_2400(pty, monkeypatch):
    path, fd = pty
    asked = []
    real = termios.tcsetattr

    def record(f, when, attr):
        asked.append(attr)
        return real(f, when, attr)

    monkeypatch.setattr(termios, "tcsetattr", record)
    u = open_uart(path, 2400, "E")
    u.write(b"\xfe")
    assert _parity(asked[-1][2]) == "E" and termios.tcgetattr(fd)[4] == termios.B2400
    u.close()
    u = open_uart(path, 9600)
    u.write(b"\xfe")
    assert _parity(asked[-1][2]) == "N" and termios.tcgetattr(fd)[4] == termios.B9600
    u.close()


_MP_TTY = """
import sys
sys.path.insert(0, '.')
import termios
asked = []
class T:
    TCSANOW = termios.TCSANOW
    B9600 = termios.B9600
    def setraw(self, fd):
        termios.setraw(fd)
    def tcgetattr(self, fd):
        return termios.tcgetattr(fd)
    def tcsetattr(self, fd, when, attr):
        asked.append(attr)
        termios.tcsetattr(fd, when, attr)
sys.modules['termios'] = T()
from hal.uart_polled import TtyUart
for parity in ('E', 'O', 'N'):
    u = TtyUart(%r, 2400, parity)
    u.write(b'\\xfe')
    u.close()
    print(asked[-1][2], asked[-1][4])
"""


def test_micropython_tty_sets_even_parity_at_2400(pty):
    path, fd = pty
    out = subprocess.run([os.path.join(BIN, "micropython"), "-c", _MP_TTY % path], cwd=ROOT,
                         capture_output=True, text=True, timeout=20)
    lines = out.stdout.split()
    assert len(lines) == 6, out.stdout + out.stderr
    assert [_parity(int(c)) for c in lines[0::2]] == ["E", "O", "N"]
    assert all(int(s) == termios.B2400 for s in lines[1::2])
    assert termios.tcgetattr(fd)[4] == termios.B2400


def test_machine_uart_gets_parity(monkeypatch):
    made = []

    class UART:
        def __init__(self, uart_id, **kw):
            made.append(kw)

    monkeypatch.setitem(sys.modules, "machine", types.SimpleNamespace(UART=UART))
    from hal import uart_machine

    monkeypatch.setattr(uart_machine, "select", types.SimpleNamespace(
        poll=lambda: types.SimpleNamespace(register=lambda *a: None), POLLIN=1))
    for parity, want in (("E", 0), ("O", 1), ("N", None)):
        uart_machine.MachineUart(2, 2400, parity)._open()
        assert made[-1]["parity"] == want and made[-1]["baudrate"] == 2400


def test_bad_parity_is_refused():
    with pytest.raises(UartError):
        open_uart("/dev/null", 2400, "X")
