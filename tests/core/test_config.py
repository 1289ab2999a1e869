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
