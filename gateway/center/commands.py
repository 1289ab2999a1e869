# Center commands: intake, idempotency by id across restarts, and the queue of commands
# that cannot be applied yet. The uplink hands every COMMAND to submit() and sends back
# what it returns as RESULT; results that become final later wait in the outbox.
#
# State in one slots object (gateway/store/slots.py, two copies on flash):
#   {"v": 1, "cmds": [entry, ...], "ids": [older id, ...]}
#   entry: {"id", "op", "args", "st": "pending" | "running" | "done", "res": RESULT or None,
#           "sent": bool, "t": unix s received}
# "running" is written before a handler runs: a restart that finds it knows the command
# may have been half applied and answers its id with an error instead of running it again.
# Older commands keep only their id in "ids", so a repeat is refused, never re-run.
#
# Taking a command in and applying it (submit, retries, trimming the state) is in
# gateway/center/intake.py, loaded for each command only (gateway/ondemand.py): commands
# are rare, and where bytecode lives in RAM that code then costs heap only while it runs.
from gateway import ondemand
from gateway.errors import UserError
from hal.compat import const

# A waiting command is retried only once ready(op) says it can be applied; without that
# check a retry costs two small flash writes (running, then pending again). Retries back
# off from 1 s to 60 s; wake() (collector back online, say) retries now.
_RETRY_FIRST_MS = const(1000)
_RETRY_MAX_MS = const(60000)


class CommandError(UserError):
    """An invalid command (unknown op, bad arguments): nothing was changed."""


class Busy(Exception):
    """The command cannot be applied now (collector offline, say): keep it and retry.
    A handler raises it before changing anything."""


def _valid_id(v):
    return isinstance(v, int) and not isinstance(v, bool)


class Commands:
    """handlers: op -> callable(args) returning a result dict; it raises CommandError for
    an invalid command, Busy when it cannot be applied now. A handler that changes state
    persists the change before returning (the RESULT is sent after it returns)."""

    name = "commands"

    def __init__(self, slots, handlers, clock, ready=None):
        self._slots = slots
        self._handlers = handlers
        # ready(op) -> False while an op cannot be applied (collector offline): the command
        # waits without being marked running, so a cut meanwhile leaves it waiting.
        self._ready = ready
        self._clock = clock
        self._cmds = []  # entries, oldest first
        self._by_id = {}
        self._old_ids = []  # done, result no longer kept
        self.executed = 0
        self.unsent = 0  # final RESULTs in the outbox
        self.save_errors = 0
        self.last_save_error = None
        self._retry_ms = _RETRY_FIRST_MS
        self._retry_at = None

    def start(self):
        saved = self._slots.load()
        if not isinstance(saved, dict):
            saved = {}
        self._cmds = []
        self._by_id = {}
        self._old_ids = [i for i in saved.get("ids") or () if _valid_id(i)]
        interrupted = False
        for e in saved.get("cmds") or ():
            if not isinstance(e, dict) or not _valid_id(e.get("id")):
                continue
            if e.get("st") == "running":
                interrupted = True
            self._cmds.append(e)
            self._by_id[e["id"]] = e
        if interrupted:
            ondemand.call("gateway.center.intake", "interrupted", self)
        self.unsent = len(self.outbox())

    def submit(self, msg):
        """The RESULT plaintext for one COMMAND plaintext (already authenticated)."""
        return ondemand.call("gateway.center.intake", "submit", self, msg)

    def pending(self):
        return [e["id"] for e in self._cmds if e["st"] == "pending"]

    def wake(self):
        """Retry waiting commands at the next run (what blocked them may have cleared)."""
        self._retry_ms = _RETRY_FIRST_MS
        self._retry_at = None

    def run(self, now_ms):
        """Retry the commands that were waiting; their final RESULT goes to the outbox."""
        waiting = [e for e in self._cmds if e["st"] == "pending"]
        if not waiting:
            self._retry_ms = _RETRY_FIRST_MS
            self._retry_at = None
            return
        clock = self._clock
        if self._retry_at is not None and clock.ticks_diff(now_ms, self._retry_at) < 0:
            return
        ready = self._ready
        if ready is not None:
            waiting = [e for e in waiting if ready(e["op"])]
            if not waiting:
                return  # nothing can be applied yet: no module load, no flash write
        if ondemand.call("gateway.center.intake", "retry", self, waiting):
            self._retry_at = clock.ticks_add(now_ms, self._retry_ms)
            self._retry_ms = min(self._retry_ms * 2, _RETRY_MAX_MS)

    def outbox(self):
        """Final RESULTs not yet handed to a connection, oldest first."""
        return [e["res"] for e in self._cmds if not e.get("sent", True) and e.get("res")]

    def mark_sent(self, cmd_id):
        # Persisted with the next save: losing the flag only sends the RESULT once more.
        e = self._by_id.get(cmd_id)
        if e is not None and not e.get("sent", True):
            e["sent"] = True
            self.unsent -= 1
