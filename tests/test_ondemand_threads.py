# gateway/ondemand.py on a PC, where several gateways (or a gateway and a test's own reads
# of a flash copy) share one process in threads: one thread's forget must not drop a module
# that another is importing (CI once saw KeyError: 'gateway.health.report' from importlib).
import threading

from gateway import ondemand


def test_threads_loading_on_demand_never_break_each_others_imports():
    errors = []

    def worker(module, fn, *args):
        for _ in range(300):
            try:
                ondemand.call(module, fn, *args)
            except Exception as e:  # noqa: BLE001 (any failure is the finding)
                errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=("gateway.config", "settable", "x.y")),
               threading.Thread(target=worker, args=("gateway.cli.syntax", "tokenize", "a b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def _drop(name):
    import sys

    sys.modules.pop(name, None)
    pkg, _, attr = name.rpartition(".")
    if hasattr(sys.modules.get(pkg), attr):
        delattr(sys.modules[pkg], attr)


def test_a_forget_keeps_what_another_thread_imported():
    # A gateway in one thread holds `before` (a CLI session, a call); another gateway
    # imports a module of ours the plain way meanwhile. The first one's forget must leave
    # it: dropped, the other would load a second copy (other classes) at its next import.
    import sys

    name = "gateway.health.report"
    _drop(name)
    box = {}
    took = threading.Event()
    imported = threading.Event()

    def session():
        box["before"] = ondemand.loaded()
        took.set()
        imported.wait(10)
        ondemand.forget(box["before"])

    t = threading.Thread(target=session)
    t.start()
    took.wait(10)
    import gateway.health.report as report

    imported.set()
    t.join(10)
    assert sys.modules.get(name) is report
    # What the thread itself loads it still forgets.
    _drop(name)
    before = ondemand.loaded()
    import gateway.health.report  # noqa: F401, F811

    ondemand.forget(before)
    assert name not in sys.modules


def test_plain_imports_while_another_thread_forgets():
    # A gateway starting (its plain imports) while another loads and forgets on demand:
    # the forget never pulls a module out from under an import (importlib's KeyError).
    import importlib

    errors = []
    stop = threading.Event()

    def on_demand():
        while not stop.is_set():
            try:
                ondemand.call("gateway.config", "settable", "x.y")
            except Exception as e:  # noqa: BLE001 (any failure is the finding)
                errors.append(repr(e))

    t = threading.Thread(target=on_demand)
    t.start()
    try:
        for _ in range(300):
            for name in ("gateway.power.energy", "drivers.meters", "protocols.dlt645"):
                _drop(name)
            try:
                importlib.invalidate_caches()
                __import__("gateway.power.energy")
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
    finally:
        stop.set()
        t.join(10)
    assert errors == []
