# The end-to-end harness's judgement (tests/harness/e2e.py) on made-up runs: it must catch every
# way the center can disagree with the flash or with the truth, and accept a run that is right.
import pytest

from tests.harness import e2e

_T0 = 1800000000.0
_RATE = 200.0  # kg/s crossing the frame in the made-up runs


class _Center:
    def __init__(self, recs, gaps=(), duplicates=0):
        self.recs = recs
        self.gaps = list(gaps)
        self.duplicates = duplicates

    def summary(self, device):
        mass = sum(r["mass_kg"] for r in self.recs if r["type"] == "prod")
        return {"next": len(self.recs) + 1, "gaps": self.gaps, "records": len(self.recs),
                "duplicates": self.duplicates, "prod_mass_kg": mass}

    def records(self, device):
        return [dict(r) for r in self.recs]


class _Truth(e2e.TrueMass):
    def __init__(self, t_on, t_off):
        super().__init__(None)
        for i in range(2000):
            t = _T0 + i * 0.1
            self.t.append(t)
            self.kg.append(_RATE * min(max(t - t_on, 0.0), t_off - t_on))


class _Site:
    bridge = 0.05

    def __init__(self, recs, **kw):
        self.center = _Center(recs, **kw)
        self.truth = _Truth(_T0 + 10, _T0 + 110)
        self.end_t = _T0 + 150


def _prod(seq, t0, g, total):
    return {"seq": seq, "t": t0 + 10, "type": "prod", "t0": t0, "t1": t0 + 10,
            "mass_kg": g / 1000, "total_kg": total / 1000, "mass_g": g, "total_g": total}


def _records(masses_g):
    recs = [{"seq": 1, "t": int(_T0), "type": "event", "code": "gateway_start", "detail": {}}]
    total = 0
    for i, g in enumerate(masses_g):
        total += g
        recs.append(_prod(len(recs) + 1, int(_T0) + 10 * i, g, total))
    return recs


def _unit(tmp_path, recs, kills=(), **kw):
    u = e2e.Unit("u", "cpython", kills=0)
    u.site = _Site(recs, **kw)
    u.device_id = 1
    u.log_path = str(tmp_path / "gateway.log")
    open(u.log_path, "w").close()
    u.starts = [_T0]
    u.stored = {r["seq"]: dict(r) for r in recs}
    u.kills = list(kills)
    u.final_rc = 0
    return u


def _right():
    # 100 s at 200 kg/s = 20 t, in interval records of 10 s.
    return _records([0] + [2000000] * 10 + [0, 0])


def test_a_right_run_passes(tmp_path):
    fig = _unit(tmp_path, _right()).verify()
    assert fig["true_kg"] == 20000 and fig["err_kg"] == 0


def test_total_off_by_more_than_the_accuracy_fails(tmp_path):
    recs = _records([0] + [2000000] * 9 + [2000000 + 21000, 0, 0])
    with pytest.raises(e2e.Mismatch, match="outside"):
        _unit(tmp_path, recs).verify()
    recs = _records([0] + [2000000] * 9 + [2000000 - 21000, 0, 0])
    with pytest.raises(e2e.Mismatch, match="outside"):
        _unit(tmp_path, recs).verify()


def test_a_cut_allows_its_window_only_when_it_was_not_bridged(tmp_path):
    short = _records([0] + [2000000] * 9 + [2000000 - 1500000, 0, 0])  # 7.5 s missing
    kill = {"t": _T0 + 60, "up_s": 50.0, "head": 7, "caught_up_t": _T0 + 61, "final": False,
            "bridged": False}
    fig = _unit(tmp_path, short, kills=[dict(kill)]).verify()
    assert fig["lost_kg"] > 1500
    with pytest.raises(e2e.Mismatch, match="outside"):
        _unit(tmp_path, short, kills=[dict(kill, bridged=True)]).verify()
    # Counted twice is never allowed, cut or not.
    extra = _records([0] + [2000000] * 9 + [2000000 + 1500000, 0, 0])
    with pytest.raises(e2e.Mismatch, match="outside"):
        _unit(tmp_path, extra, kills=[dict(kill)]).verify()


def test_a_record_stored_but_not_at_the_center_fails(tmp_path):
    recs = _right()
    u = _unit(tmp_path, recs[:-1])
    u.stored[len(recs)] = recs[-1]
    with pytest.raises(e2e.Mismatch, match="never reached the center"):
        u.verify()


def test_a_record_that_differs_fails(tmp_path):
    recs = _right()
    u = _unit(tmp_path, recs)
    u.stored[3] = dict(recs[2], rate_tph=1.0)
    with pytest.raises(e2e.Mismatch, match="differs"):
        u.verify()


def test_gaps_and_broken_totals_fail(tmp_path):
    with pytest.raises(e2e.Mismatch, match="declared records lost"):
        _unit(tmp_path, _right(), gaps=[[3, 4]]).verify()
    recs = _right()
    recs[5]["total_g"] += 1
    recs[5]["total_kg"] = recs[5]["total_g"] / 1000
    with pytest.raises(e2e.Mismatch, match="total_g"):
        _unit(tmp_path, recs).verify()


def test_an_interval_counted_twice_fails(tmp_path):
    recs = _right()
    recs[6]["t0"] -= 5
    with pytest.raises(e2e.Mismatch, match="counted twice"):
        _unit(tmp_path, recs).verify()


def test_errors_printed_by_the_gateway_fail(tmp_path):
    u = _unit(tmp_path, _right())
    with open(u.log_path, "w") as f:
        f.write("job checkpoint failed:\nMemoryError: memory allocation failed\n")
    with pytest.raises(e2e.Mismatch, match="reported errors"):
        u.verify()


def test_bridged_or_not_is_read_from_the_checkpoint_and_the_log():
    ck = {"measurement": {"scale": {"have": True}, "production": {"iv": {"t0": 100}}}}
    before = {5: {"seq": 5, "type": "prod", "t0": 90, "total_g": 1}}
    after = {5: {"seq": 5, "type": "prod", "t0": 100, "total_g": 1}}
    assert e2e.bridges(ck, before)
    assert e2e.bridges(ck, after)  # written after the checkpoint: the rest is bridged
    assert not e2e.bridges(None, before)
    assert not e2e.bridges({"measurement": {"scale": {"have": False},
                                            "production": {"iv": None}}}, {})


def test_true_mass_over_spans_merges_overlaps():
    truth = _Truth(_T0 + 10, _T0 + 110)
    assert truth.over([(_T0 + 20, _T0 + 30), (_T0 + 25, _T0 + 40)]) == pytest.approx(4000)
    assert truth.over([(_T0, _T0 + 5), (_T0 + 120, _T0 + 130)]) == 0
