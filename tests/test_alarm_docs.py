# docs/alarms.md documents every code with the class and delays of the engine's table,
# and docs/config.md every alarms.* key.
import os
import re

from gateway import config
from gateway.health import alarms
from gateway.power import energy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(name):
    with open(os.path.join(ROOT, "docs", name)) as f:
        return f.read()


def _rows():
    rows = {}
    for line in _read("alarms.md").splitlines():
        m = re.match(r"\| `([a-z0-9_N]+)` \| (\w+) \| ([FW]) \| ([^|]+) \|", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3), m.group(4).strip())
    return rows


def _doc_code(code):
    return re.sub(r"^cell\d_", "cellN_", code)


def test_every_code_is_documented_with_its_class_level_and_delays():
    table = dict(alarms.TABLE, **energy.ALARMS)  # the power codes join where there are terminals
    rows = _rows()
    for code, (cls, level, kind, raise_ms, clear_ms, _) in table.items():
        row = rows.get(_doc_code(code))
        assert row is not None, code
        if kind == alarms.EVENT:
            delays = "hold %d" % (clear_ms // 1000)
        else:
            delays = "%d / %d" % (raise_ms // 1000, clear_ms // 1000)
        assert row == (cls, level, delays), (code, row)
    documented = set(rows)
    assert documented == {_doc_code(c) for c in table}


def test_every_alarms_key_is_in_config_md():
    text = _read("config.md")
    for key, _, _, _, default, settable in config.SCHEMA:
        if key.startswith("alarms."):
            assert "| `%s` |" % key[len("alarms."):] in text, key
            assert settable, key
