# The whole gateway end to end, as processes killed with SIGKILL at random moments and
# restarted, against the emulated collector and center in real time (tests/harness/e2e.py,
# docs/e2e.md): MicroPython with a capped heap from a virtual board of .mpy files, CPython,
# MicroPython with the collector on a real pty, and CPython cut many more times (issue 5:
# no stored record lost, at most a checkpoint period of mass per cut). They run side by
# side on one site (one belt, one center): one run's time, about 2.5 minutes, which a
# full test session spends running the other tests (tests/conftest.py).
import json
import shutil
import tempfile
import threading
import traceback

import pytest

from tests.harness import e2e

pytestmark = pytest.mark.e2e

_KILLS = 7  # at random moments: 5 while running, 2 early in a start-up
_EARLY = 2
_WAIT_S = 600


class Background:
    """The site's run on a thread of its own. tests/conftest.py starts it with the
    session: the run is minutes of real time and little CPU, so the other tests run
    meanwhile."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="pytest-e2e-")
        s = self.site = e2e.Site(self.tmp)
        s.add(e2e.Unit("micropython", "micropython", heap=e2e.HEAP, kills=_KILLS, early=_EARLY))
        s.add(e2e.Unit("cpython", "cpython", kills=_KILLS, early=_EARLY))
        s.add(e2e.Unit("micropython_pty", "micropython", heap=e2e.HEAP, kills=3, early=1,
                       pty=True))
        s.add(e2e.Unit("cpython_many_cuts", "cpython", kills=16, early=6, targeted=3))
        self.figures = None
        self.error = None
        self._thread = threading.Thread(target=self._run, name="e2e-site", daemon=True)
        self._thread.start()

    def _run(self):
        try:
            self.figures = self.site.run(flow_revs=1, lead_s=30)
        except BaseException:
            self.error = traceback.format_exc()

    def wait(self):
        self._thread.join(_WAIT_S)
        if self._thread.is_alive():
            raise AssertionError("the end-to-end run did not end within %d s" % _WAIT_S)
        if self.error:
            raise AssertionError(self.error)
        return self.figures

    def stop(self, keep):
        """Stop the site; keep its files (gateway logs, named in failure messages) or not."""
        self.site.stop()
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def site(e2e_background):
    bg = e2e_background  # started with the session (tests/conftest.py)
    try:
        print(json.dumps(bg.wait()))
        yield bg.site
    finally:
        bg.site.stop()  # its files go at the end of the session if nothing failed


def _unit(site, name):
    u = [u for u in site.units if u.name == name][0]
    fig = u.verify()
    print(json.dumps(dict(fig, wall_s=round(site.end_t - u.starts[0], 1))))
    # Real time: the gateway ran at least 2 minutes, killed at least 5 times.
    assert site.end_t - u.starts[0] >= 120
    assert fig["kills"] >= min(5, u.n_kills)
    assert fig["true_kg"] > 10000
    return fig


@pytest.mark.timeout(600)
def test_micropython_small_heap_through_power_cuts(site):
    fig = _unit(site, "micropython")
    assert fig["heap"] == e2e.HEAP


@pytest.mark.timeout(600)
def test_cpython_through_power_cuts(site):
    _unit(site, "cpython")


@pytest.mark.timeout(600)
def test_micropython_collector_on_a_pty(site):
    _unit(site, "micropython_pty")


@pytest.mark.timeout(600)
def test_many_sigkills_lose_no_stored_record_and_at_most_a_checkpoint_period(site):
    # Among them kills right after a prod record reached the center: the moment where the
    # next start could have to adopt the record instead of bridging.
    fig = _unit(site, "cpython_many_cuts")
    assert fig["kills"] >= 15
    assert fig["targeted_kills"] >= 1
