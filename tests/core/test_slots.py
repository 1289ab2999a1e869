# Two-slot state files: the old copy or the new one after any cut, never a mix.
from gateway.store.slots import SlotError, Slots
from hal.fs import Flash
from tests.core.faultfs import EIO, FaultFlash, PowerCut
from tests.core.util import raises, rmtree, tmpdir


def test_empty_then_saved_then_loaded():
    ff = FaultFlash()
    s = Slots(ff, "params")
    assert s.load() is None and s.generation == 0 and s.bad == 0
    s.save({"a": 1, "b": [1.5, "x", None]})
    assert s.generation == 1
    t = Slots(ff, "params")
    assert t.load() == {"a": 1, "b": [1.5, "x", None]} and t.generation == 1


def test_saves_alternate_between_the_two_files():
    ff = FaultFlash()
    s = Slots(ff, "cp")
    for g in range(1, 6):
        s.save({"g": g})
    assert sorted(ff.listdir()) == ["cp.a", "cp.b"]
    assert Slots(ff, "cp").load() == {"g": 5}
    # The other file holds the generation before.
    ff.remove("cp.a" if Slots(ff, "cp")._read(0)[0] == 5 else "cp.b")
    assert Slots(ff, "cp").load() == {"g": 4}


def test_save_without_load_continues_the_generations():
    ff = FaultFlash()
    Slots(ff, "p").save({"g": 1})
    Slots(ff, "p").save({"g": 2})  # loads first, so it does not overwrite the current copy
    s = Slots(ff, "p")
    assert s.load() == {"g": 2} and s.generation == 2


def test_damaged_copy_is_ignored_and_counted():
    ff = FaultFlash()
    s = Slots(ff, "p")
    s.save({"g": 1})
    s.save({"g": 2})
    newest = "p.b"
    ff.flip(newest, 20, 2)
    t = Slots(ff, "p")
    assert t.load() == {"g": 1} and t.bad == 1 and t.generation == 1
    t.save({"g": 3})  # over the damaged copy, not over the good one
    assert Slots(ff, "p").load() == {"g": 3}
    ff.flip("p.a", 2, 0)
    ff.flip("p.b", 2, 0)
    u = Slots(ff, "p")
    assert u.load() is None and u.bad == 2


def test_cut_at_every_step_of_a_save_leaves_old_or_new():
    for keep in ("synced", "written"):
        for torn in (0.0, 0.5, 1.0):
            n = 1
            while True:
                ff = FaultFlash()
                s = Slots(ff, "p")
                s.save({"v": "old", "n": [1, 2, 3]})
                ff.cut_after = ff.ops + n
                ff.torn = torn
                try:
                    s.save({"v": "new", "n": [4, 5, 6, 7]})
                    break  # n is past the last step
                except PowerCut:
                    pass
                got = Slots(ff.restart(keep), "p").load()
                assert got in ({"v": "old", "n": [1, 2, 3]}, {"v": "new", "n": [4, 5, 6, 7]}), got
                n += 1
            assert n > 3  # open, write, sync were each cut


def test_a_copy_is_its_header_and_the_json_text():
    # The body goes to the file in pieces of 256 bytes: bodies shorter than a piece, of
    # several (one token longer than a piece), and short again.
    import json
    import struct
    from binascii import crc32

    bodies = [{"g": 1}, {"text": "x" * 700, "n": list(range(60))}, {"g": 3, "s": "\u00e9"}]
    ff = FaultFlash()
    s = Slots(ff, "cp")
    for gen, obj in enumerate(bodies, 1):
        s.save(obj)
        f = ff.open("cp" + (".a", ".b")[s._cur], "rb")
        data = f.read()
        f.close()
        body = json.dumps(obj).encode()
        crc = crc32(body, crc32(struct.pack("<II", gen, len(body))))
        assert data == b"GWSL" + struct.pack("<III", gen, len(body), crc) + body
        assert Slots(ff, "cp").load() == obj


def test_cut_at_every_step_of_a_long_save_leaves_old_or_new():
    old = {"v": "old", "n": [1, 2, 3]}
    new = {"v": "new", "n": list(range(200))}  # several pieces
    for torn in (0.0, 0.5):
        n = 1
        while True:
            ff = FaultFlash()
            s = Slots(ff, "p")
            s.save(old)
            ff.cut_after = ff.ops + n
            ff.torn = torn
            try:
                s.save(new)
                break
            except PowerCut:
                pass
            assert Slots(ff.restart("written"), "p").load() in (old, new)
            n += 1
        assert n > 5  # open, room for the header, pieces of the body, the header, sync


def test_failed_save_keeps_the_current_copy():
    ff = FaultFlash()
    s = Slots(ff, "p")
    s.save({"g": 1})
    ff.fail(EIO, count=1, partial=0.5)
    raises(OSError, s.save, {"g": 2})
    assert s.generation == 1
    assert Slots(ff.restart("written"), "p").load() == {"g": 1}


def test_bad_objects_are_refused():
    s = Slots(FaultFlash(), "p")
    raises(SlotError, s.save, {"x": object()})
    raises(SlotError, s.save, {"x": "y" * 70000})
    assert s.generation == 0


def test_real_directory():
    d = tmpdir("slots")
    try:
        Slots(Flash(d), "commands").save({"pending": [{"id": 7, "op": "set_output"}]})
        assert Slots(Flash(d), "commands").load() == {"pending": [{"id": 7, "op": "set_output"}]}
    finally:
        rmtree(d)
