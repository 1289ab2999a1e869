# Rare features (the technician CLI, calibration procedures, the configuration schema)
# are imported when they are needed and forgotten after. Where bytecode runs from RAM
# (the unix port, a board without frozen modules) a module's code then costs heap only
# while it is in use: once nothing refers to it any more, the GC takes it back.
#   before = ondemand.loaded()      # our modules now
#   ... import and use the feature ...
#   ondemand.forget(before)         # after dropping every reference to it
# Exception types that callers catch across a reload live in gateway/errors.py, so that
# a fresh import of a module never makes a second class of the same error.
import gc
import sys

from hal.compat import MICROPYTHON, const

_OURS = const(("gateway.", "protocols.", "drivers.", "hal."))

if MICROPYTHON:
    _lock = None  # the gateway is one thread
else:
    # Gateways in threads of one process (hal/pc.py): each forgets what it loaded.
    from hal.pc import loaded_here as _mine
    from hal.pc import ondemand_lock as _lock


def loaded():
    """The names of our modules imported so far."""
    return set(k for k in _modules() if k.startswith(_OURS))


def _modules():
    # CPython: other threads import meanwhile, and a dict that changes size under an
    # iteration ends it with RuntimeError; list() copies it in one step.
    return sys.modules if _lock is None else list(sys.modules)


def forget(before):
    """Forget every module of ours imported since `before` (a loaded() result), then
    collect. The caller must hold no reference to them (objects, classes, functions).
    Its bookkeeping needs a few bytes, no set or list: after a MemoryError it must still
    drop the modules, or their code would hold the heap for good."""
    if _lock is not None:  # CPython frees the code by itself; heap room is no concern there
        with _lock:
            _forget(before, _mine)
        return
    gc.collect()  # whatever the failed or finished call left, before the bookkeeping
    _forget(before)
    gc.collect()  # the forgotten code back to the heap


def _forget(before, mine=None):
    name = _new_since(before, mine)
    while name is not None:
        _drop(name)
        name = _new_since(before, mine)


def _drop(name):
    sys.modules.pop(name, None)
    pkg, _, attr = name.rpartition(".")
    parent = sys.modules.get(pkg)
    if parent is not None and hasattr(parent, attr):
        delattr(parent, attr)  # the package keeps its submodules as attributes


def _new_since(before, mine):
    for name in _modules():
        if name not in before and name.startswith(_OURS) and (mine is None or mine(name)):
            return name
    return None


def _import(module):
    if _lock is None:
        return __import__(module, None, None, ("x",))
    with _lock:
        return __import__(module, None, None, ("x",))


def call(module, fn, *args):
    """module.fn(*args), with the module imported for this call only."""
    before = loaded()
    try:
        mod = _import(module)
        return getattr(mod, fn)(*args)
    finally:
        mod = None
        forget(before)


def once(module, fn, *args):
    """module.fn(*args) for a step that makes objects to keep (start-up): the module is
    forgotten after the call, what it imported is not (the objects it made use that)."""
    try:
        mod = _import(module)
        return getattr(mod, fn)(*args)
    finally:
        mod = None
        if _lock is None:
            _drop(module)
            gc.collect()
        else:
            with _lock:
                _drop(module)
