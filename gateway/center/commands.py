# Center commands: intake, idempotency by id across restarts, and the queue of commands
# that cannot be applied yet. The uplink hands every COMMAND to submit() and sends back
# what it returns as RESULT; results that become final later wait in the outbox.
#
# Ids increase (../shared/specs/center-station.md): the highest id received (`top`) is
# kept for good, and an id at or below it is never taken in as new. Recent commands keep
# their RESULT as JSON text (a string costs the heap its length, a parsed result several
# times that), only if it is small; read-only ops keep none and answer a repeat afresh.
#
# State in one slots object (gateway/store/slots.py, two copies on flash):
#   {"v": 2, "top": id, "wait": [entry, ...], "done": [[id, op, result text or None,
#    sent], ...]}
#   entry (a command not yet applied): {"id", "op", "args", "st": "pending" | "running",
#   "t": unix s received}
# "running" is written before a handler runs: a restart that finds it knows the command
# may have been half applied and answers its id with an error instead of running it again.
#
# Taking a command in and applying it (submit, retries, loading the state at start) is in
# gateway/center/intake.py, loaded for those calls only (gateway/ondemand.py): commands
# are rare, and where bytecode lives in RAM that code then costs heap only while it runs.
import json

from gateway import ondemand
from gateway.errors import UserError
from hal.compat import const

# A waiting command is retried only once ready(op) says it can be applied; without that
# check a retry costs two small flash writes (running, then pending again). Retries back
# off from 1 s to 60 s; wake() (collector back online, say) retries now.
_RETRY_FIRST_MS = const(1000)
_RETRY_MAX_MS = const(60000)
_INTAKE = const("gateway.center.intake")


class CommandError(UserError):
    """An invalid command (unknown op, bad arguments): nothing was changed."""


class Busy(Exception):
    """The command cannot be applied now (collector offline, say): keep it and retry.
    A handler raises it before changing anything."""


class Commands:
    """handlers: op -> callable(args) returning a result dict; it raises CommandError for
    an invalid command, Busy when it cannot be applied now. A handler that changes state
    persists the change before returning (the RESULT is sent after it returns).

    The state intake.py works on, as this object's public interface: `top` (highest id
    received), `waiting` (entries not yet applied, oldest first), `done` (recent finished
    commands, [id, op, result text or None, sent], oldest first) and the counters below."""

    name = "commands"

    def __init__(self, slots, handlers, clock, ready=None):
        self.slots = slots
        self.handlers = handlers
        # ready(op) -> False while an op cannot be applied (collector offline): the command
        # waits without being marked running, so a cut meanwhile leaves it waiting.
        self.ready = ready
        self.clock = clock
        self.top = 0
        self.waiting = []
        self.done = []
        self.executed = 0
        self.unsent = 0  # final RESULTs in the outbox
        self.save_errors = 0
        self.last_save_error = None
        self._retry_ms = _RETRY_FIRST_MS
        self._retry_at = None

    def start(self):
        """Load the state; answer what a restart interrupted (intake.load: loaded only
        then, or for an older state, so that a usual start costs no code load)."""
        saved = self.slots.load()
        if not saved:
            return
        if saved.get("v") == 2 and not [e for e in saved["wait"] if e["st"] == "running"]:
            self.top, self.waiting, self.done = saved["top"], saved["wait"], saved["done"]
            self.unsent = len(self.outbox())
        else:
            ondemand.call(_INTAKE, "load", self, saved)

    def submit(self, msg):
        """The RESULT plaintext for one COMMAND plaintext (already authenticated)."""
        return ondemand.call(_INTAKE, "submit", self, msg)

    def pending(self):
        return [e["id"] for e in self.waiting if e["st"] == "pending"]

    def wake(self):
        """Retry waiting commands at the next run (what blocked them may have cleared)."""
        self._retry_ms = _RETRY_FIRST_MS
        self._retry_at = None

    def run(self, now_ms):
        """Retry the commands that were waiting; their final RESULT goes to the outbox."""
        waiting = [e for e in self.waiting if e["st"] == "pending"]
        if not waiting:
            self._retry_ms = _RETRY_FIRST_MS
            self._retry_at = None
            return
        clock = self.clock
        if self._retry_at is not None and clock.ticks_diff(now_ms, self._retry_at) < 0:
            return
        ready = self.ready
        if ready is not None:
            waiting = [e for e in waiting if ready(e["op"])]
            if not waiting:
                return  # nothing can be applied yet: no module load, no flash write
        if ondemand.call(_INTAKE, "retry", self, waiting):
            self._retry_at = clock.ticks_add(now_ms, self._retry_ms)
            self._retry_ms = min(self._retry_ms * 2, _RETRY_MAX_MS)

    def outbox(self):
        """Final RESULTs not yet handed to a connection, oldest first."""
        return [json.loads(d[2]) for d in self.done if not d[3] and d[2]]

    def mark_sent(self, cmd_id):
        # Persisted with the next save: losing the flag only sends the RESULT once more.
        for d in self.done:
            if d[0] == cmd_id and not d[3]:
                d[3] = True
                self.unsent -= 1
