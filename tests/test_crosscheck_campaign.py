# The cross-check in simulated time against a belt and drive whose energy comes from the
# physics (emulator/crosscheck_sim.py): a month of normal operation raises nothing, each
# tamper is raised in time, and docs/crosscheck.md shows these very figures.
import os

import pytest

from emulator import crosscheck_sim as cs

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                   "crosscheck.md")
WINDOW_S = cs.FLAT["crosscheck.window_min"] * 60


@pytest.fixture(scope="module")
def runs():
    return cs.results()


def test_thirty_days_of_normal_operation_raise_nothing(runs):
    normal, _ = runs
    for n in normal:
        assert n["raised"] == 0, n
        assert n["restarts"] == 4 and n["windows"] > 500
        assert n["max_dev"] < cs.FLAT["crosscheck.tolerance_pct"]
        assert n["longest_without_s"] < 20  # the power-without-output hold


def test_tampers_raised_within_two_windows(runs):
    _, detected = runs
    for tamper, found in detected.items():
        assert len(found) == 36 and all(f[0] is not None for f in found), tamper
        if tamper != "speed_sensor":
            assert max(f[1] for f in found) <= 2 * WINDOW_S, tamper


def test_speed_sensor_disconnected_raised_within_a_minute(runs):
    _, detected = runs
    assert max(f[0] for f in detected["speed_sensor"]) <= 60


def test_docs_show_these_figures(runs):
    with open(DOC) as f:
        text = f.read()
    for line in cs.table(*runs):
        assert line in text, line
