# gateway/ondemand.py: a module loaded for one call is forgotten after it, whatever the call
# did, out of memory included (a module left loaded would hold its code's heap for good).
import sys

import gateway
from gateway import ondemand
from tests.core.util import raises


class _OutOfMemory:
    def __getattr__(self, name):
        raise MemoryError("memory allocation failed, allocating 592 bytes")


def _fresh(name):
    sys.modules.pop(name, None)
    if hasattr(gateway, name.rpartition(".")[2]):
        delattr(gateway, name.rpartition(".")[2])


def test_a_call_that_runs_out_of_memory_forgets_its_module():
    _fresh("gateway.diagreport")
    before = ondemand.loaded()
    raises(MemoryError, ondemand.call, "gateway.diagreport", "report", _OutOfMemory(), False)
    assert "gateway.diagreport" not in sys.modules
    assert not hasattr(gateway, "diagreport")
    assert ondemand.loaded() == before


def test_forget_drops_only_what_came_after_before():
    _fresh("gateway.diagreport")
    before = ondemand.loaded()
    from gateway import diagreport  # noqa: F401

    assert "gateway.diagreport" in ondemand.loaded()
    kept = set(before)
    ondemand.forget(before)
    assert ondemand.loaded() == kept and "gateway.diagreport" not in sys.modules
