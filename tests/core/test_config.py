import os

from gateway import config
from tests.core.util import raises

_MIN = {
    "device_id": 7,
    "key_file": "/k",
    "data_dir": "/d",
    "collector": {"port": "socket://127.0.0.1:5020"},
    "center": {"host": "127.0.0.1", "port": 7000},
}


def _with(**changes):
    import json

    obj = json.loads(json.dumps(_MIN))
    for dotted, v in changes.items():
        d = obj
        parts = dotted.split("__")
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = v
    return obj


def test_minimal_config_gets_defaults():
    flat = config.validate(_with())
    assert flat["device_id"] == 7
    assert flat["collector.baud"] == 9600
    assert flat["collector.address"] == 1
    assert flat["scale.material_factor"] == 1.0
    assert flat["production.interval_s"] == 60


def test_unknown_key_is_named():
    e = raises(config.ConfigError, config.validate, _with(collector__bauds=9600))
    assert "collector.bauds" in str(e) and "unknown" in str(e)


def test_bad_value_is_named_with_the_problem():
    e = raises(config.ConfigError, config.validate, _with(collector__baud=9601))
    assert str(e).startswith("collector.baud:") and "9601" in str(e)
    e = raises(config.ConfigError, config.validate, _with(device_id="7"))
    assert str(e).startswith("device_id:") and "integer" in str(e)
    e = raises(config.ConfigError, config.validate, _with(collector__address=0))
    assert "collector.address" in str(e) and "range" in str(e)


def test_missing_required_key():
    obj = _with()
    del obj["center"]["port"]
    e = raises(config.ConfigError, config.validate, obj)
    assert "center.port" in str(e) and "missing" in str(e)


def test_check_params_rejects_the_whole_set_on_one_bad_value():
    e = raises(
        config.ConfigError,
        config.check_params,
        {"scale": {"material_factor": 1.01, "pulses_per_m": -3}},
    )
    assert "scale.pulses_per_m" in str(e)
    e = raises(config.ConfigError, config.check_params, {"collector.port": "/dev/x"})
    assert "not settable" in str(e)
    ok = config.check_params({"scale.material_factor": 1.01, "production": {"interval_s": 60}})
    assert ok == {"scale.material_factor": 1.01, "production.interval_s": 60}


def test_linearization_and_shifts_checked():
    raises(config.ConfigError, config.check_params, {"scale.linearization": [[50, 1], [40, 1]]})
    raises(config.ConfigError, config.check_params, {"production.shifts": ["08:00", "07:00"]})
    raises(config.ConfigError, config.check_params, {"production.shifts": ["25:00"]})
    assert config.check_params({"scale.linearization": [[20, 0.5], [80, -0.3]]})


def test_nest():
    assert config.nest({"a.b": 1, "a.c": 2, "d": 3}) == {"a": {"b": 1, "c": 2}, "d": 3}


def _load_text(text, data_dir=None):
    import json

    from tests.core.util import rmtree, tmpdir

    d = tmpdir("cfg")
    try:
        path = d + "/c.json"
        with open(path, "w") as f:
            f.write(text.replace("DATA", json.dumps(data_dir or d + "/data")))
        return config.load(path)
    finally:
        rmtree(d)


_GOOD = ('{"device_id": 7, "key_file": "/k", "data_dir": DATA,\n'
         ' "collector": {"port": "socket://127.0.0.1:5020", "baud": 9600},\n'
         ' "center": {"host": "127.0.0.1", "port": 7000},\n'
         ' "scale": {"linearization": [[20, 0.5], [80.0, -3e-1]]}, "cli": {"port": null}}')


def test_bad_json_is_refused_alike_on_both_interpreters():
    # MicroPython's json.loads takes every one of these (a trailing, doubled or missing
    # comma, a missing colon, numbers with a leading zero or a bare point) as something.
    for text, line, column in (
        ('{"device_id": 2002,}', 1, 20),
        ('{"device_id": 7,, "key_file": "/k"}', 1, 17),
        ('{"device_id": 7 "key_file": "/k"}', 1, 17),
        ('{"device_id" 7}', 1, 14),
        ('{\n "device_id": 07}', 2, 16),
        ('{"device_id": 7.}', 1, 16),
        ('{"collector": {"port": "x", }}', 1, 29),
        ('{"scale": {"linearization": [[20, 0.5],]}}', 1, 40),
        ('{"key_file": "\\q"}', 1, 16),
        ('{"device_id": 7}}', 1, 17),
        ('{"device_id": 7', 1, 16),
    ):
        e = raises(config.ConfigError, _load_text, text)
        want = "is not valid JSON (line %d, column %d:" % (line, column)
        assert want in str(e), (text, str(e))


def test_good_json_with_every_kind_of_value_loads():
    flat = _load_text(_GOOD)
    assert flat["scale.linearization"] == [[20.0, 0.5], [80.0, -0.3]]
    assert flat["cli.port"] is None and flat["collector.baud"] == 9600


def test_data_dir_that_is_a_file_or_cannot_be_made_is_a_config_error():
    from tests.core.util import rmtree, tmpdir

    d = tmpdir("dd")
    try:
        with open(d + "/afile", "w") as f:
            f.write("x")
        e = raises(config.ConfigError, _load_text, _GOOD, d + "/afile")
        assert str(e).startswith("data_dir: %s/afile is a file" % d), str(e)
        e = raises(config.ConfigError, _load_text, _GOOD, d + "/afile/data")
        assert str(e).startswith("data_dir: cannot create %s/afile/data (" % d), str(e)
        assert _load_text(_GOOD, d + "/new/data")["data_dir"] == d + "/new/data"
        assert os.stat(d + "/new/data")[0] & 0x4000
    finally:
        rmtree(d)
def test_relations_between_keys_are_checked_on_the_whole_set():
    e = raises(config.ConfigError, config.validate,
               _with(alarms__cell_min_counts=5, alarms__cell_max_counts=5))
    assert "alarms.cell_min_counts (5) must be below alarms.cell_max_counts (5)" in str(e)
    e = raises(config.ConfigError, config.validate,
               _with(alarms__temp_low_c=20, alarms__temp_high_c=20))
    assert "alarms.temp_low_c" in str(e)
    flat = config.validate(_with())
    # A change is checked with what it leaves in force; both keys at once may pass.
    e = raises(config.ConfigError, config.check_change, flat,
               {"alarms.cell_max_counts": -50000})
    assert "must be below" in str(e)
    changed, _ = config.check_change(flat, {"alarms": {"cell_min_counts": 500000,
                                                       "cell_max_counts": 600000}})
    assert changed["alarms.cell_min_counts"] == 500000
    # A stored run-time pair that no longer holds with the file gives way to the file's.
    got = config.in_force(flat, {"alarms.cell_min_counts": 400000, "scale.damping_s": 5})
    assert got["alarms.cell_min_counts"] == -40000 and got["scale.damping_s"] == 5.0
