# make bench's areas are not run by make test (minutes, and figures rather than verdicts),
# but each must still import and offer rows(): a moved module once left one failing.
import importlib
import json

import pytest

from bench import __main__ as bench


@pytest.mark.parametrize("name", bench.areas(()))
def test_every_bench_area_imports_and_has_rows(name):
    mod = importlib.import_module("bench." + name)
    assert callable(getattr(mod, "rows", None)), name


def test_a_run_of_some_areas_keeps_the_other_areas_rows(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"rows": [{"area": "store", "name": "a", "value": 1},
                                         {"area": "uplink", "name": "b", "value": 2}]}))
    assert bench._kept_rows(str(path), {"store"}) == [{"area": "uplink", "name": "b", "value": 2}]
    path.write_text("{not json")
    assert bench._kept_rows(str(path), {"store"}) == []
    assert bench._kept_rows(str(tmp_path / "missing.json"), {"store"}) == []
