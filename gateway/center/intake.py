# Taking in and applying the center's commands, for gateway/center/commands.py: loaded for
# each command (Commands.submit), for retrying waiting ones (Commands.run) and for loading
# the state at start (Commands.start), and forgotten after (gateway/ondemand.py). The
# functions work through the Commands object's public state (top, waiting, done, counters);
# the state's format is in gateway/center/commands.py.
import json

from gateway.center.commands import Busy
from gateway.errors import UserError
from hal.compat import const

_KEEP_DONE = const(16)  # finished commands remembered with their op (and a small RESULT)
# A kept RESULT costs the heap its JSON's length: one longer than this is not kept (a
# repeat then gets "duplicate", or, for a read-only op, a fresh RESULT).
_KEEP_RESULT_BYTES = const(256)
_MAX_PENDING = const(16)
# The spec's ops that change nothing: their RESULT is not kept, a repeat is answered afresh.
_READ_ONLY = const(("status", "get_params"))
_MAX_WAIT_ARGS_BYTES = const(512)  # a waiting command's arguments stay on the heap
# Ids are below 2^31 (the spec); not const(): a 32-bit board's small ints end at 2^30.
_ID_LIMIT = 0x80000000


def _error(cmd_id, reason):
    return {"id": cmd_id, "ok": False, "error": reason}


def _queued(cmd_id):
    # "queued" at the top level and in the result, so a center that looks in either finds it.
    return {"id": cmd_id, "ok": True, "queued": True, "result": {"queued": True}}


def _id_ok(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v < _ID_LIMIT


def load(cmds, saved):
    """At start: a saved state (one with a command "running", or of version 1) into cmds;
    a command found "running" may have been half applied, so it is answered with an
    error instead of being run again."""
    if not isinstance(saved, dict):
        saved = {}
    top = saved.get("top")
    top = top if _id_ok(top) else 0
    waiting = []
    done = []
    for e in saved.get("wait") or ():
        if (isinstance(e, dict) and _id_ok(e.get("id")) and isinstance(e.get("op"), str)
                and e.get("st") in ("pending", "running")):
            waiting.append(e)
    for d in saved.get("done") or ():
        if isinstance(d, list) and len(d) == 4 and _id_ok(d[0]):
            done.append(d)
    for e in saved.get("cmds") or ():  # version 1's entries; its "ids" only raise top
        if not isinstance(e, dict) or not _id_ok(e.get("id")):
            continue
        if e.get("st") in ("pending", "running") and isinstance(e.get("op"), str):
            waiting.append({"id": e["id"], "op": e["op"], "args": e.get("args"),
                            "st": e["st"], "t": e.get("t", 0)})
        else:
            sent = e.get("sent", True)
            text = json.dumps(e["res"]) if e.get("res") else None
            if sent and text and len(text) > _KEEP_RESULT_BYTES:
                text = None
            done.append([e["id"], e.get("op"), text, sent])
    for i in saved.get("ids") or ():
        if _id_ok(i):
            top = max(top, i)
    for e in waiting:
        top = max(top, e["id"])
    for d in done:
        top = max(top, d[0])
    cmds.top = top
    cmds.waiting = waiting
    cmds.done = done
    interrupted = False
    for e in list(waiting):
        if e["st"] == "running":
            interrupted = True
            waiting.remove(e)
            _finish(cmds, e["id"], e["op"], _error(
                e["id"], "interrupted by a restart while being applied; check the state "
                "before sending it again"), False)
    if interrupted:
        _save(cmds)
    cmds.unsent = len(cmds.outbox())


def _save(cmds):
    """Persist the state; False (and counted) if the flash or the slot refused it."""
    try:
        cmds.slots.save({"v": 2, "top": cmds.top, "wait": cmds.waiting, "done": cmds.done})
    except (OSError, ValueError) as e:  # ValueError: slots.SlotError
        cmds.save_errors += 1
        cmds.last_save_error = str(e)
        return False
    return True


def _finish(cmds, cmd_id, op, res, sent):
    """Remember a finished command. Its RESULT is kept as JSON text if it is small, or
    always while it still has to reach the center (sent False)."""
    text = None
    if not sent or op not in _READ_ONLY:
        text = json.dumps(res)
        if sent and len(text) > _KEEP_RESULT_BYTES:
            text = None
    done = cmds.done
    done.append([cmd_id, op, text, sent])
    if not sent:
        cmds.unsent += 1
    i = 0
    while len(done) > _KEEP_DONE and i < len(done):
        if done[i][3]:
            done.pop(i)  # only its id's place below top is left: a repeat is "duplicate"
        else:
            i += 1


def submit(cmds, msg):
    """The RESULT plaintext for one COMMAND plaintext (already authenticated)."""
    cmd_id = msg.get("id")
    if not isinstance(cmd_id, int) or isinstance(cmd_id, bool):
        return _error(None, "id must be an integer")
    if not _id_ok(cmd_id):
        return _error(cmd_id, "id must be 1..2147483647")
    for e in cmds.waiting:
        if e["id"] == cmd_id:
            return _queued(cmd_id)
    for d in cmds.done:
        if d[0] == cmd_id:
            if d[2]:
                return json.loads(d[2])
            if d[1] in _READ_ONLY:
                return _read_only(cmds, cmd_id, d[1], msg.get("args", {}))
            return _error(cmd_id, "duplicate")
    if cmd_id <= cmds.top:
        return _error(cmd_id, "duplicate")  # taken in before; never again
    op = msg.get("op")
    args = msg.get("args", {})
    if not isinstance(op, str) or op not in cmds.handlers:
        return _refuse(cmds, cmd_id, op, _error(cmd_id, "unknown op %r" % (op,)))
    if not isinstance(args, dict):
        return _refuse(cmds, cmd_id, op, _error(cmd_id, "args must be an object"))
    if op in _READ_ONLY:
        cmds.top = cmd_id
        res = _read_only(cmds, cmd_id, op, args)
        _finish(cmds, cmd_id, op, res, True)
        _save(cmds)
        return res
    top = cmds.top
    cmds.top = cmd_id
    e = {"id": cmd_id, "op": op, "args": args, "st": "running", "t": int(cmds.clock.time())}
    cmds.waiting.append(e)
    try:
        res = _apply(cmds, e, True)
    except _NotSaved as err:
        cmds.top = top  # never recorded: the same id may come again and run then
        return _error(cmd_id, "not applied: command state could not be saved (%s)" % err)
    if res is not None:
        return res
    if len(cmds.pending()) > _MAX_PENDING or len(json.dumps(args)) > _MAX_WAIT_ARGS_BYTES:
        # Busy changed nothing, so it can still be refused: waiting is bounded.
        cmds.waiting.remove(e)
        res = _error(cmd_id, "too many commands waiting (%d) or arguments too large to "
                     "keep; not applied" % _MAX_PENDING)
        _finish(cmds, cmd_id, op, res, True)
        _save(cmds)
        return res
    return _queued(cmd_id)


def _refuse(cmds, cmd_id, op, res):
    cmds.top = cmd_id
    _finish(cmds, cmd_id, op if isinstance(op, str) else None, res, True)
    _save(cmds)
    return res


def _read_only(cmds, cmd_id, op, args):
    """Run an op that changes nothing: no running mark, nothing kept but its id."""
    try:
        result = cmds.handlers[op](args if isinstance(args, dict) else {})
        return {"id": cmd_id, "ok": True, "result": result if result is not None else {}}
    except UserError as err:  # CommandError, or a ConfigError, AlarmError... of the op
        return _error(cmd_id, str(err))
    except Exception as err:  # a handler bug (or no memory) must still get an answer
        return _error(cmd_id, "failed: %s" % err)


class _NotSaved(Exception):
    pass


def _apply(cmds, e, sent):
    """Run the handler of entry e; the final RESULT, or None if it stays pending.
    The entry is persisted as running first, and with its outcome after. While ready(op)
    says it cannot be applied, its handler changes nothing (it checks the arguments, then
    says Busy), so it runs without the running mark: a cut then leaves it waiting, not
    interrupted. A new command whose running mark cannot be saved raises _NotSaved."""
    was = e["st"]
    op = e["op"]
    marked = cmds.ready is None or cmds.ready(op)
    if marked:
        e["st"] = "running"
        if not _save(cmds):
            # Without the running mark a restart could run it twice: do not run it at all.
            if was == "pending":
                e["st"] = "pending"
                return None
            cmds.waiting.remove(e)
            raise _NotSaved(cmds.last_save_error)
    try:
        result = cmds.handlers[op](e["args"])
        res = {"id": e["id"], "ok": True, "result": result if result is not None else {}}
    except Busy:
        e["st"] = "pending"
        if marked or was != "pending":
            _save(cmds)
        return None
    except UserError as err:  # CommandError, or a ConfigError, AlarmError... of the op
        res = _error(e["id"], str(err))
    except Exception as err:  # a handler bug must still get an answer and be kept
        res = _error(e["id"], "failed: %s" % err)
    cmds.waiting.remove(e)
    cmds.executed += 1
    _finish(cmds, e["id"], op, res, sent)
    _save(cmds)
    return res


def retry(cmds, waiting):
    """Apply the waiting entries again; a final RESULT goes to the outbox. Returns how
    many still wait."""
    still = 0
    for e in waiting:
        if _apply(cmds, e, False) is None:
            still += 1
    return still
