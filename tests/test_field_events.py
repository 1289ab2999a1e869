# Issue 14's field events against the belt model, in simulated time
# (emulator/field_events.py): each scenario ends at its expected figure. CPython only.
import pytest

from emulator import field_events as fe
from emulator.scale_runs import commission


@pytest.fixture(scope="module")
def commissioned():
    return commission()[0]


@pytest.mark.parametrize("name", [n for n, _ in fe.SCENARIOS])
def test_field_event(commissioned, name):
    fn = dict(fe.SCENARIOS)[name]
    row = fn(commissioned)
    assert row["ok"], "%s: expected %s; got %s" % (name, row["expected"], row["result"])
