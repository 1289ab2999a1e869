# Center commands: intake, idempotency by id across restarts, and the queue of commands
# that cannot be applied yet. The uplink hands every COMMAND to submit() and sends back
# what it returns as RESULT; results that become final later wait in the outbox.
#
# State in one slots object (two-slot file on flash):
#   {"v": 1, "cmds": [entry, ...]}   oldest first
#   entry: {"id", "op", "args", "st": "pending" | "running" | "done", "res": RESULT or None,
#           "sent": bool, "t": unix s received}
# "running" is written before a handler runs: a restart that finds it knows the command
# may have been half applied and answers its id with an error instead of running it again.

_KEEP_RESULTS = 32  # recent commands keep their full RESULT for repeats
_KEEP_IDS = 256  # older ones keep their id only: a repeat is refused, never re-run
_MAX_PENDING = 16
# Retrying a waiting command costs two small flash writes (running, then pending again),
# so retries back off from 1 s to 60 s; wake() (collector back online, say) retries now.
_RETRY_FIRST_MS = 1000
_RETRY_MAX_MS = 60000


class CommandError(Exception):
    """An invalid command (unknown op, bad arguments): nothing was changed."""


class Busy(Exception):
    """The command cannot be applied now (collector offline, say): keep it and retry."""


def _error(cmd_id, reason):
    return {"id": cmd_id, "ok": False, "error": reason}


def _queued(cmd_id):
    # "queued" at the top level and in the result, so a center that looks in either finds it.
    return {"id": cmd_id, "ok": True, "queued": True, "result": {"queued": True}}


class Commands:
    """handlers: op -> callable(args) returning a result dict; it raises CommandError for
    an invalid command, Busy when it cannot be applied now. A handler that changes state
    persists the change before returning (the RESULT is sent after it returns)."""

    name = "commands"

    def __init__(self, slots, handlers, clock):
        self._slots = slots
        self._handlers = handlers
        self._clock = clock
        self._cmds = []  # entries, oldest first
        self._by_id = {}
        self.executed = 0
        self.unsent = 0  # final RESULTs in the outbox
        self._retry_ms = _RETRY_FIRST_MS
        self._retry_at = None

    def start(self):
        saved = self._slots.load()
        cmds = saved.get("cmds") if isinstance(saved, dict) else None
        self._cmds = []
        self._by_id = {}
        interrupted = False
        for e in cmds or ():
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
        self._slots.save({"v": 1, "cmds": self._cmds})

    def _trim(self):
        done = [e for e in self._cmds if e["st"] == "done"]
        for e in done[: max(0, len(done) - _KEEP_RESULTS)]:
            if e.get("res") is not None and e.get("sent", True):
                e["res"] = None
                e["args"] = None
        while len(self._cmds) > _KEEP_IDS:
            old = None
            for e in self._cmds:
                if e["st"] == "done" and e.get("sent", True):
                    old = e
                    break
            if old is None:
                break
            self._cmds.remove(old)
            del self._by_id[old["id"]]

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
        known = self._by_id.get(cmd_id)
        if known is not None:
            res = self.result(cmd_id)
            if res is None:
                return _error(cmd_id, "duplicate id %d: already executed, result no longer kept"
                              % cmd_id)
            return res
        op = msg.get("op")
        args = msg.get("args", {})
        if not isinstance(op, str) or op not in self._handlers:
            return self._finish_new(cmd_id, op, args, _error(cmd_id, "unknown op %r" % (op,)))
        if not isinstance(args, dict):
            return self._finish_new(cmd_id, op, args, _error(cmd_id, "args must be an object"))
        e = {"id": cmd_id, "op": op, "args": args, "st": "running", "res": None, "sent": True,
             "t": int(self._clock.time())}
        self._cmds.append(e)
        self._by_id[cmd_id] = e
        res = self._apply(e)
        if res is None:
            if len(self.pending()) > _MAX_PENDING:
                e["st"] = "done"
                e["res"] = _error(cmd_id, "too many commands waiting (%d); not applied"
                                  % _MAX_PENDING)
                self._save()
                return e["res"]
            return _queued(cmd_id)
        return res

    def _finish_new(self, cmd_id, op, args, res):
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
        e["st"] = "running"
        self._save()
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


def _valid_id(v):
    return isinstance(v, int) and not isinstance(v, bool)
