# Taking in and applying the center's commands, for gateway/center/commands.py: loaded for each
# command (Commands.submit), for retrying waiting ones (Commands.run) and for answering
# commands a restart interrupted (Commands.start), and forgotten after (gateway/ondemand.py).
# The functions work on a Commands object's state (its _cmds, _by_id, _old_ids, counters),
# as its own methods would; the state's format is in gateway/center/commands.py.
import json

from gateway.center.commands import Busy, _valid_id
from gateway.errors import UserError
from hal.compat import const

_KEEP_RESULTS = const(16)  # recent commands keep their full RESULT for repeats
_KEEP_IDS = const(256)  # older ones keep their id only
_MAX_PENDING = const(16)
_MAX_STATE_BYTES = const(48000)  # well inside a slot (64 KiB): large results are dropped first


def _error(cmd_id, reason):
    return {"id": cmd_id, "ok": False, "error": reason}


def _queued(cmd_id):
    # "queued" at the top level and in the result, so a center that looks in either finds it.
    return {"id": cmd_id, "ok": True, "queued": True, "result": {"queued": True}}


def interrupted(cmds):
    """At start: a command found "running" may have been half applied; it is answered
    with an error instead of being run again."""
    for e in cmds._cmds:
        if e.get("st") == "running":
            e["st"] = "done"
            e["res"] = _error(e["id"], "interrupted by a restart while being applied; "
                              "check the state before sending it again")
            e["sent"] = False
    _save(cmds)


def _save(cmds):
    """Persist; False (and counted) if the flash or the slot refused it."""
    state = {"v": 1, "cmds": cmds._cmds, "ids": cmds._old_ids}
    while len(json.dumps(state)) > _MAX_STATE_BYTES and _forget_oldest(cmds):
        pass
    try:
        cmds._slots.save(state)
    except (OSError, ValueError) as e:  # ValueError: slots.SlotError
        cmds.save_errors += 1
        cmds.last_save_error = str(e)
        return False
    return True


def _forget_oldest(cmds):
    """Keep only the id of the oldest finished command; False if none can go."""
    for e in cmds._cmds:
        if e["st"] == "done" and e.get("sent", True):
            cmds._cmds.remove(e)
            del cmds._by_id[e["id"]]
            cmds._old_ids.append(e["id"])
            if len(cmds._old_ids) > _KEEP_IDS:
                cmds._old_ids.pop(0)
            return True
    return False


def _trim(cmds):
    done = 0
    for e in cmds._cmds:
        if e["st"] == "done" and e.get("sent", True):
            done += 1
    while done > _KEEP_RESULTS and _forget_oldest(cmds):
        done -= 1


def _result(cmds, cmd_id):
    """The stored RESULT for a known id."""
    e = cmds._by_id[cmd_id]
    if e["st"] == "pending":
        return _queued(cmd_id)
    return e.get("res")


def submit(cmds, msg):
    """The RESULT plaintext for one COMMAND plaintext (already authenticated)."""
    cmd_id = msg.get("id")
    if not _valid_id(cmd_id):
        return _error(None, "id must be an integer")
    if cmd_id in cmds._by_id:
        return _result(cmds, cmd_id)
    if cmd_id in cmds._old_ids:
        return _error(cmd_id, "duplicate id %d: already executed, result no longer kept"
                      % cmd_id)
    op = msg.get("op")
    args = msg.get("args", {})
    if not isinstance(op, str) or op not in cmds._handlers:
        return _finish_new(cmds, cmd_id, op, _error(cmd_id, "unknown op %r" % (op,)))
    if not isinstance(args, dict):
        return _finish_new(cmds, cmd_id, op, _error(cmd_id, "args must be an object"))
    e = {"id": cmd_id, "op": op, "args": args, "st": "running", "res": None, "sent": True,
         "t": int(cmds._clock.time())}
    cmds._cmds.append(e)
    cmds._by_id[cmd_id] = e
    res = _apply(cmds, e)
    if res is not None:
        return res
    if len(cmds.pending()) > _MAX_PENDING:
        # Busy changed nothing, so it can still be refused: waiting commands are bounded.
        e["st"] = "done"
        e["res"] = _error(cmd_id, "too many commands waiting (%d); not applied"
                          % _MAX_PENDING)
        e["args"] = None
        _save(cmds)
        return e["res"]
    return _queued(cmd_id)


def _finish_new(cmds, cmd_id, op, res):
    e = {"id": cmd_id, "op": op if isinstance(op, str) else None, "args": None,
         "st": "done", "res": res, "sent": True, "t": int(cmds._clock.time())}
    cmds._cmds.append(e)
    cmds._by_id[cmd_id] = e
    _trim(cmds)
    _save(cmds)
    return res


def _apply(cmds, e):
    """Run the handler of entry e; the final RESULT, or None if it stays pending.
    The entry is persisted as running first, and with its outcome after. While ready(op)
    says it cannot be applied, its handler changes nothing (it checks the arguments, then
    says Busy), so it runs without the running mark: a cut then leaves it waiting, not
    interrupted."""
    was = e["st"]
    marked = cmds._ready is None or cmds._ready(e["op"])
    if marked:
        e["st"] = "running"
        if not _save(cmds):
            # Without the running mark a restart could run it twice: do not run it at all.
            if was == "pending":
                e["st"] = "pending"
                return None
            cmds._cmds.remove(e)
            del cmds._by_id[e["id"]]
            return _error(e["id"], "not applied: command state could not be saved (%s)"
                          % cmds.last_save_error)
    try:
        result = cmds._handlers[e["op"]](e["args"])
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
    e["st"] = "done"
    e["res"] = res
    e["args"] = None  # not needed any more; keeps the slot small
    cmds.executed += 1
    _trim(cmds)
    _save(cmds)
    return res


def retry(cmds, waiting):
    """Apply the waiting entries again; a final RESULT goes to the outbox. Returns how
    many still wait."""
    still = 0
    for e in waiting:
        e["sent"] = False  # a final RESULT made here still has to reach the center
        if _apply(cmds, e) is None:
            still += 1
        else:
            cmds.unsent += 1
    return still
