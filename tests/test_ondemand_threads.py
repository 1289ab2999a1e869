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
