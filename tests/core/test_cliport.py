# The CLI port watcher (gateway/cli/port.py): the CLI is loaded when input arrives and
# unloaded (its modules forgotten) once the terminal is quiet with nobody logged in.
import json
import sys

from gateway import ondemand
from gateway.cli import auth
from gateway.cli.port import CliPort
from gateway.loop import Loop
from hal.virtualclock import VirtualClock
from tests.core.fakecontrol import FakeControl
from tests.core.test_cli_session import PIN, FakeStream, _accounts
from tests.core.util import heap_lock

_CLI_MODULES = ("gateway.cli.session", "gateway.cli.syntax", "gateway.cli.terminal",
                "gateway.cli.commands", "gateway.control")


class Port:
    def __init__(self, state=None):
        self.clock = VirtualClock()
        self.control = FakeControl(self.clock)
        self.stream = FakeStream()
        self.port = CliPort(self.stream, self.clock, 4242, self._make)
        if state is not None:
            self.port.restore(state)
        self.loop = Loop(self.clock)
        self.loop.add(self.control, 100)
        self.loop.add(self.port, 20)
        self.port.start()
        self.seen = 0

    def _make(self):
        from gateway.cli.session import Cli

        return Cli(self.control, self.stream, auth.Auth(_accounts(), self.clock), self.clock)

    def read(self):
        text = bytes(self.stream.out[self.seen:]).decode()
        self.seen = len(self.stream.out)
        return text

    def cmd(self, line, ms=200):
        self.read()
        self.stream.inq += (line + "\r").encode()
        self.loop.run(ms)
        return self.read()


class _Unloaded:
    """The CLI's modules forgotten for the test (another test may have imported them),
    put back after it."""

    def __enter__(self):
        self.saved = {}
        for name in _CLI_MODULES:
            if name in sys.modules:
                self.saved[name] = sys.modules.pop(name)
        return self

    def __exit__(self, *exc):
        for name in _CLI_MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(self.saved)
        return False


def _cli_loaded():
    return [m for m in _CLI_MODULES if m in sys.modules]


def test_banner_without_the_cli_then_loaded_by_input_and_unloaded_when_quiet():
    with _Unloaded():
        before = ondemand.loaded()
        t = Port()
        out = t.read()
        assert out == ("coal output substation gateway %s, device 4242; help lists the "
                       "commands\r\ngw> " % __import__("gateway").FIRMWARE_VERSION)
        t.loop.run(1000)
        assert t.port.cli is None and not _cli_loaded()
        out = t.cmd("status")
        assert out.startswith("status\r\ntime     ") and out.endswith("gw> ")
        assert t.port.cli is not None and t.port.loads == 1 and _cli_loaded()
        t.loop.run(29 * 1000)
        assert t.port.cli is not None  # not quiet long enough
        t.loop.run(2000)
        assert t.port.cli is None and not _cli_loaded()
        assert ondemand.loaded() - before <= {"gateway.cli.port"}
        assert t.read() == ""  # the terminal still shows its prompt
        out = t.cmd("coef")
        assert out.startswith("coef\r\ncoef 0.95") and t.port.loads == 2


def test_a_session_keeps_the_cli_until_logout_and_quiet():
    with _Unloaded():
        t = Port()
        t.cmd("login 1001")
        assert "logged in as 1001" in t.cmd(PIN)
        t.loop.run(45 * 1000)
        assert t.port.cli is not None  # logged in: stays, however quiet
        assert "logged out" in t.cmd("logout")
        t.loop.run(31 * 1000)
        assert t.port.cli is None and not _cli_loaded()
        assert [e["detail"]["who"] for e in t.control.events("logout")] == ["tech:1001"]


def test_failures_and_lockout_survive_unloading():
    with _Unloaded():
        t = Port()
        for _ in range(4):
            t.cmd("login 1001")
            t.cmd("0000")
        t.loop.run(31 * 1000)
        assert t.port.cli is None
        assert t.port.snapshot()["auth"]["failures"] == 4
        t.cmd("login 1001")
        assert "login locked for 300 s" in t.cmd("0000")
        t.loop.run(200 * 1000)
        assert t.port.cli is not None  # locked: the lock is kept by the loaded CLI
        t.loop.run(101 * 1000 + 31 * 1000)
        assert t.port.cli is None
        assert "logged in as 1001" in (t.cmd("login 1001") + t.cmd(PIN))


def test_a_lockout_restored_at_start_counts_down_while_the_cli_is_away():
    state = json.loads(json.dumps({"auth": {"failures": 5, "lock_left_s": 100}}))
    t = Port(state)
    t.loop.run(60 * 1000)
    assert "login locked for 40 s" in t.cmd("login 1001")
    t.loop.run(41 * 1000)
    t.cmd("login 1001")
    assert "logged in as 1001" in t.cmd(PIN)


def test_a_heap_too_full_for_the_cli_is_said_and_the_next_input_tries_again():
    with _Unloaded():
        t = Port()
        make = t.port._make

        def no_memory():
            import gateway.cli.syntax  # noqa: F401  (half loaded, then out of memory)

            raise MemoryError("memory allocation failed")

        t.port._make = no_memory
        out = t.cmd("status")
        assert out.endswith("error: out of memory, the CLI is not loaded; try again\r\ngw> ")
        assert t.port.cli is None and not _cli_loaded() and t.port.errors == 1
        t.port._make = make
        assert t.cmd("coef").startswith("coef\r\ncoef 0.95")


def test_without_room_on_the_heap_the_cli_is_not_even_tried():
    from gateway.cli import port as cliport

    with _Unloaded():
        t = Port()
        room = cliport._room
        cliport._room = lambda: False
        try:
            out = t.cmd("status")
        finally:
            cliport._room = room
        assert out.endswith("error: out of memory, the CLI is not loaded; try again\r\ngw> ")
        assert t.port.cli is None and not _cli_loaded()
        assert t.cmd("coef").startswith("coef\r\ncoef 0.95")


def test_a_quiet_port_does_not_allocate():
    lock, unlock = heap_lock()
    t = Port()
    t.loop.run(500)
    lock()
    try:
        for _ in range(10):
            t.clock.advance_ms(20)
            t.port.run(t.clock.ticks_ms())
    finally:
        unlock()
    assert t.port.cli is None


class _Flash:
    def __init__(self, names):
        self.names = names

    def exists(self, name):
        return name in self.names


def test_start_up_says_once_that_there_are_no_technician_accounts():
    from gateway.cli import port as cliport

    said = []
    cliport.print = said.append  # the module's print, for this test
    try:
        clock = VirtualClock()
        for names in (("accounts.json",), ()):
            CliPort(FakeStream(), clock, 4242, None, _Flash(names)).start()
    finally:
        del cliport.print
    assert len(said) == 1, said
    assert said[0].startswith("cli: no technician accounts on this device (accounts.json")
    assert "nobody can log in" in said[0]

