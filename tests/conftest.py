# pytest only: the core tests also run under MicroPython (tests/mprun.py) without this.
import os

import pytest


@pytest.fixture(scope="session")
def scenarios(request, tmp_path_factory):
    """The end-to-end campaign (tests/harness/e2erig.py): the rigs of every collected module that
    has E2E_RIGS, played all at once, so that the slowest scenario sets the wall time.
    E2E_ONLY=name,name limits it to those rigs."""
    from tests.harness.e2erig import campaign

    rigs = {}
    modules = {getattr(item, "module", None) for item in request.session.items}
    for mod in sorted(modules - {None}, key=lambda m: m.__name__):
        rigs.update(getattr(mod, "E2E_RIGS", {}))
    only = os.environ.get("E2E_ONLY")
    if only:
        rigs = {k: v for k, v in rigs.items() if k in only.split(",")}
    yield from campaign(rigs, tmp_path_factory.mktemp("scenarios"))


@pytest.fixture(scope="session", autouse=True)
def e2e_background(request):
    """The power-cut runs of tests/test_e2e.py, started with the session's first test when
    they are among the tests to run, in the background: minutes of real time, little CPU,
    while the other tests run. Their files stay when a test failed."""
    session = request.session
    if not any(item.nodeid.startswith("tests/test_e2e.py::") for item in session.items):
        yield None
        return
    from tests.test_e2e import Background

    bg = Background()
    try:
        yield bg
    finally:
        bg.stop(keep=session.testsfailed > 0)
