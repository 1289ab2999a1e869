# The technician's port, watched by a small resident job. The CLI itself (gateway.cli's
# session, terminal, commands, syntax, auth and gateway.control: ~55 KB of heap on the
# unix port, where bytecode lives in RAM) is loaded when the first byte arrives and
# unloaded once nobody is logged in, nothing is under way and the terminal has been
# quiet for _UNLOAD_MS. What was typed reaches the CLI unchanged; the terminal cannot
# tell it was away. It also says at start-up when there are no technician accounts.
from gateway import FIRMWARE_VERSION, ondemand
from hal.compat import const, mem_free

_UNLOAD_MS = const(30000)
_RETRY_MS = const(1000)  # pause after a stream error
_READ_CHUNK = const(64)
_CLI_HEAP = const(72 * 1024)
ACCOUNTS_FILE = "accounts.json"  # in the data directory; flash.py writes it
_NO_MEMORY = const(b"\r\nerror: out of memory, the CLI is not loaded; try again\r\ngw> ")


def _room():
    """Whether the heap has room for the CLI (~55 KB where its bytecode loads into RAM,
    with a margin for the gateway's own bursts); always on CPython."""
    free = mem_free()
    return free is None or free >= _CLI_HEAP


def banner(device_id):
    return "coal output substation gateway %s, device %s; help lists the commands" % (
        FIRMWARE_VERSION, device_id)


class CliPort:
    """A loop job on the CLI stream. make_cli() returns a gateway.cli.session.Cli on that stream
    (not started); it is called when input arrives and dropped when the CLI is at rest."""

    def __init__(self, stream, clock, device_id, make_cli, flash=None, name="cli"):
        self.stream = stream
        self.flash = flash  # where the technician accounts are (None: not checked)
        self.clock = clock
        self.device_id = device_id
        self.name = name
        self.cli = None  # the loaded CLI, or None
        self.loads = 0
        self.errors = 0  # stream errors while no CLI was loaded
        self._make = make_cli
        self._before = None  # our modules before the CLI was loaded
        self._state = {}  # the CLI's snapshot while it is not loaded
        self._state_ms = clock.ticks_ms()
        self._rx = bytearray(_READ_CHUNK)
        self._retry_at = None

    def start(self):
        if self.flash is not None and not self.flash.exists(ACCOUNTS_FILE):
            print("cli: no technician accounts on this device (%s in the data directory, "
                  "written by flash.py): reading is open, nobody can log in" % ACCOUNTS_FILE)
        try:
            self.stream.write(("%s\r\ngw> " % banner(self.device_id)).encode())
        except OSError:  # no terminal yet: the banner is lost, the port is not
            self.errors += 1

    def apply_params(self, params):
        if self.cli is not None:
            self.cli.apply_params(params)

    def snapshot(self):
        return self.cli.snapshot() if self.cli is not None else self._state

    def restore(self, state):
        self._state = state
        self._state_ms = self.clock.ticks_ms()
        if self.cli is not None:
            self.cli.restore(state)

    def run(self, now_ms):
        cli = self.cli
        if cli is not None:
            cli.run(now_ms)
            if cli.at_rest(now_ms, _UNLOAD_MS):
                self._unload(now_ms)
            return
        clock = self.clock
        if self._retry_at is not None:
            if clock.ticks_diff(now_ms, self._retry_at) < 0:
                return
            self._retry_at = None
        try:
            n = self.stream.readinto(self._rx, 0)
        except OSError:  # UartError: the terminal went away; try again later
            self.errors += 1
            self._retry_at = clock.ticks_add(now_ms, _RETRY_MS)
            return
        if n:
            self._load(bytes(self._rx[:n]), now_ms)

    def _load(self, typed, now_ms):
        # A heap too full for the CLI now: say so and try again on the next input; the
        # gateway itself goes on. An import cut short by MemoryError can leave garbage
        # the GC cannot take back, so it is not even tried without room for it.
        if not _room():
            self._no_memory()
            return
        self._before = ondemand.loaded()
        try:
            cli = self._make()
        except MemoryError:
            ondemand.forget(self._before)  # what was half loaded
            self._no_memory()
            return
        # A lockout restored at start-up has been running since then.
        cli.restore(self._state, self.clock.ticks_diff(now_ms, self._state_ms))
        cli.start(greet=False)
        cli.take(typed, now_ms)
        self.cli = cli
        self.loads += 1
        cli.run(now_ms)

    def _no_memory(self):
        self.errors += 1
        try:
            self.stream.write(_NO_MEMORY)
        except OSError:
            pass

    def _unload(self, now_ms):
        self._state = self.cli.snapshot()
        self._state_ms = now_ms
        self.cli = None
        # Nothing refers to the CLI's modules any more: forget them, the GC takes them back.
        ondemand.forget(self._before)
        self._before = None
