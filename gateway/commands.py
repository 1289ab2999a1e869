# Center commands: intake, idempotency by id across restarts, and the queue of commands
# that cannot be applied yet. The uplink hands every COMMAND to submit() and sends back
# what it returns as RESULT; results that become final later wait in the outbox.
#
# State in one slots object (gateway/slots.py, two copies on flash):
#   {"v": 1, "cmds": [entry, ...], "ids": [older id, ...]}
#   entry: {"id", "op", "args", "st": "pending" | "running" | "done", "res": RESULT or None,
#           "sent": bool, "t": unix s received}
# "running" is written before a handler runs: a restart that finds it knows the command
# may have been half applied and answers its id with an error instead of running it again.
# Older commands keep only their id in "ids", so a repeat is refused, never re-run.
import json

_KEEP_RESULTS = 16  # recent commands keep their full RESULT for repeats
_KEEP_IDS = 256  # older ones keep their id only
_MAX_PENDING = 16
_MAX_STATE_BYTES = 48000  # well inside a slot (64 KiB): large results are dropped first
# A waiting command is retried only once ready(op) says it can be applied; without that
# check a retry costs two small flash writes (running, then pending again). Retries back
# off from 1 s to 60 s; wake() (collector back online, say) retries now.
_RETRY_FIRST_MS = 1000
_RETRY_MAX_MS = 60000


class CommandError(Exception):
    """An invalid command (unknown op, bad arguments): nothing was changed."""


class Busy(Exception):
    """The command cannot be applied now (collector offline, say): keep it and retry.
    A handler raises it before changing anything."""


def _error(cmd_id, reason):
    return {"id": cmd_id, "ok": False, "error": reason}


def _queued(cmd_id):
    # "queued" at the top level and in the result, so a center that looks in either finds it.
    return {"id": cmd_id, "ok": True, "queued": True, "result": {"queued": True}}


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
                e["st"] = "done"
                e["res"] = _error(e["id"], "interrupted by a restart while being applied; "
                                  "check the state before sending it again")
                e["sent"] = False
                interrupted = True
            self._cmds.append(e)
            self._by_id[e["id"]] = e
        self.unsent = len(self.outbox())
        if interrupted:
            self._save()

    def _save(self):
        """Persist; False (and counted) if the flash or the slot refused it."""
        state = {"v": 1, "cmds": self._cmds, "ids": self._old_ids}
        while len(json.dumps(state)) > _MAX_STATE_BYTES and self._forget_oldest():
            pass
        try:
            self._slots.save(state)
        except (OSError, ValueError) as e:  # ValueError: slots.SlotError
            self.save_errors += 1
            self.last_save_error = str(e)
            return False
        return True

    def _forget_oldest(self):
        """Keep only the id of the oldest finished command; False if none can go."""
        for e in self._cmds:
            if e["st"] == "done" and e.get("sent", True):
                self._cmds.remove(e)
                del self._by_id[e["id"]]
                self._old_ids.append(e["id"])
                if len(self._old_ids) > _KEEP_IDS:
                    self._old_ids.pop(0)
                return True
        return False

    def _trim(self):
        done = 0
        for e in self._cmds:
            if e["st"] == "done" and e.get("sent", True):
                done += 1
        while done > _KEEP_RESULTS and self._forget_oldest():
            done -= 1

    def pending(self):
        return [e["id"] for e in self._cmds if e["st"] == "pending"]

    def result(self, cmd_id):
        """The stored RESULT for an id (None if unknown or no longer kept)."""
        e = self._by_id.get(cmd_id)
        if e is None:
            return None
        if e["st"] == "pending":
            return _queued(cmd_id)
        return e.get("res")

    def submit(self, msg):
        """The RESULT plaintext for one COMMAND plaintext (already authenticated)."""
        cmd_id = msg.get("id")
        if not _valid_id(cmd_id):
            return _error(None, "id must be an integer")
        if cmd_id in self._by_id:
            return self.result(cmd_id)
        if cmd_id in self._old_ids:
            return _error(cmd_id, "duplicate id %d: already executed, result no longer kept"
                          % cmd_id)
        op = msg.get("op")
        args = msg.get("args", {})
        if not isinstance(op, str) or op not in self._handlers:
            return self._finish_new(cmd_id, op, _error(cmd_id, "unknown op %r" % (op,)))
        if not isinstance(args, dict):
            return self._finish_new(cmd_id, op, _error(cmd_id, "args must be an object"))
        e = {"id": cmd_id, "op": op, "args": args, "st": "running", "res": None, "sent": True,
             "t": int(self._clock.time())}
        self._cmds.append(e)
        self._by_id[cmd_id] = e
        res = self._apply(e)
        if res is not None:
            return res
        if len(self.pending()) > _MAX_PENDING:
            # Busy changed nothing, so it can still be refused: waiting commands are bounded.
            e["st"] = "done"
            e["res"] = _error(cmd_id, "too many commands waiting (%d); not applied"
                              % _MAX_PENDING)
            e["args"] = None
            self._save()
            return e["res"]
        return _queued(cmd_id)

    def _finish_new(self, cmd_id, op, res):
        e = {"id": cmd_id, "op": op if isinstance(op, str) else None, "args": None,
             "st": "done", "res": res, "sent": True, "t": int(self._clock.time())}
        self._cmds.append(e)
        self._by_id[cmd_id] = e
        self._trim()
        self._save()
        return res

    def _apply(self, e):
        """Run the handler of entry e; the final RESULT, or None if it stays pending.
        The entry is persisted as running first, and with its outcome after."""
        was = e["st"]
        if self._ready is not None and not self._ready(e["op"]):
            e["st"] = "pending"
            if was != "pending":
                self._save()  # a new command: persisted as waiting
            return None
        e["st"] = "running"
        if not self._save():
            # Without the running mark a restart could run it twice: do not run it at all.
            if was == "pending":
                e["st"] = "pending"
                return None
            self._cmds.remove(e)
            del self._by_id[e["id"]]
            return _error(e["id"], "not applied: command state could not be saved (%s)"
                          % self.last_save_error)
        try:
            result = self._handlers[e["op"]](e["args"])
            res = {"id": e["id"], "ok": True, "result": result if result is not None else {}}
        except Busy:
            e["st"] = "pending"
            self._save()
            return None
        except CommandError as err:
            res = _error(e["id"], str(err))
        except Exception as err:  # a handler bug must still get an answer and be kept
            res = _error(e["id"], "failed: %s" % err)
        e["st"] = "done"
        e["res"] = res
        e["args"] = None  # not needed any more; keeps the slot small
        self.executed += 1
        self._trim()
        self._save()
        return res

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
        still = 0
        for e in waiting:
            e["sent"] = False  # a final RESULT made here still has to reach the center
            if self._apply(e) is None:
                still += 1
            else:
                self.unsent += 1
        if still:
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
