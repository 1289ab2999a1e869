# The real gateway from a flash.py image (.mpy files) on the real MicroPython unix port
# with a capped heap (-X heapsize), against the emulated collector (RTU over TCP) and
# center, with the CLI port on a pty and a technician's session: it keeps polling and
# uploading, never runs out of memory, and the CLI's code is gone again after the
# session. bench/memory.py has the figures and the smallest heap that runs.
import os

import pytest

from tests.harness import memsite

pytestmark = [pytest.mark.e2e, pytest.mark.lane2]

HEAP_K = 352  # what runs with a margin of ~50 KB at the session's peak (docs/memory.md)
RUN_S = 60


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return memsite.build_image(str(tmp_path_factory.mktemp("image") / "image"))


@pytest.mark.timeout(300)
def test_the_flashed_gateway_runs_in_a_capped_heap_with_a_technician_session(image, tmp_path):
    r = memsite.run(str(tmp_path), image, "%dK" % HEAP_K, RUN_S, session_at=12)
    tail = r.out[-3000:]
    assert r.rc == 0, tail
    assert "MemoryError" not in r.out and "Traceback" not in r.out, tail
    assert r.session, r.screen[-1000:]
    # Polling and uploading went on all along: a prod record every 10 s reached the center.
    assert r.prod >= RUN_S // 10 - 2, (r.prod, r.records)
    fig = r.fig
    assert fig["reports"] >= RUN_S // 5 - 2, tail
    assert fig["live_max"] < (HEAP_K - 32) * 1024, fig  # the session's peak, with a margin
    # The session ended 30 s before the last probe: the CLI's modules were forgotten.
    assert "gateway.cli.session" not in fig["modules"], fig
    assert "gateway.cli.port" in fig["modules"], fig
    assert "gateway.config" not in fig["modules"], fig


def test_the_probe_reads_the_figures():
    out = ("PROBE started live=1000\nPROBE live=2000 free=3 top=4000 live_max=0 modules=a,b\n"
           "PROBE live=2500 free=3 top=4100 live_max=2500 modules=a\n")
    fig = memsite.figures(out)
    assert fig == {"started": [1000], "reports": 2, "live": 2500, "top": 4100, "live_max": 2500,
                   "free_min": 3, "modules": ["a"]}
    assert os.path.basename(memsite.MICROPYTHON) == "micropython"
