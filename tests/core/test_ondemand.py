# gateway/ondemand.py: a module loaded for one call is forgotten after it, whatever the call
# did, out of memory included (a module left loaded would hold its code's heap for good).
import sys

from gateway import ondemand
from tests.core.util import raises


class _OutOfMemory:
    def __getattr__(self, name):
        raise MemoryError("memory allocation failed, allocating 592 bytes")


def _fresh(name):
    sys.modules.pop(name, None)
    pkg, _, attr = name.rpartition(".")
    parent = sys.modules.get(pkg)
    if parent is not None and hasattr(parent, attr):
        delattr(parent, attr)


def _attached(name):
    """Whether the module is still an attribute of its package (if that is loaded)."""
    pkg, _, attr = name.rpartition(".")
    parent = sys.modules.get(pkg)
    return parent is not None and hasattr(parent, attr)


def test_a_call_that_runs_out_of_memory_forgets_its_module():
    _fresh("gateway.health.report")
    before = ondemand.loaded()
    raises(MemoryError, ondemand.call, "gateway.health.report", "report", _OutOfMemory(), False)
    assert "gateway.health.report" not in sys.modules
    assert not _attached("gateway.health.report")
    assert ondemand.loaded() == before


def test_forget_drops_only_what_came_after_before():
    _fresh("gateway.health.report")
    before = ondemand.loaded()
    from gateway.health import report  # noqa: F401

    assert "gateway.health.report" in ondemand.loaded()
    kept = set(before)
    ondemand.forget(before)
    assert ondemand.loaded() == kept and "gateway.health.report" not in sys.modules


def test_once_forgets_the_module_but_not_what_it_imported():
    # A start-up step makes objects of the modules it imports: those must stay loaded
    # (a second import would make second classes), the step's own code must go.
    _fresh("gateway.health.registration")
    _fresh("gateway.health.identity")
    assert ondemand.once("gateway.health.registration", "_fmt", 5) == "5"
    assert "gateway.health.registration" not in sys.modules
    assert not _attached("gateway.health.registration")
    assert "gateway.health.identity" in sys.modules
    raises(MemoryError, ondemand.once, "gateway.health.registration", "start", _OutOfMemory())
    assert "gateway.health.registration" not in sys.modules
