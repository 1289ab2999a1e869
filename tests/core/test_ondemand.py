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
