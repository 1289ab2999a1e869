# The fault-injecting flash keeps its promises: what is synced survives, what is not may
# not, a cut tears the write it interrupts, and the dead device stays dead.
from tests.core.faultfs import EIO, ENOSPC, FaultFlash, PowerCut
from tests.core.util import raises


def _write(ff, name, data, sync=True, mode="wb"):
    f = ff.open(name, mode)
    f.write(data)
    if sync:
        ff.sync(f)
    f.close()


def test_same_api_as_hal_fs():
    ff = FaultFlash()
    _write(ff, "a", b"hello")
    _write(ff, "a", b" world", mode="ab")
    assert ff.exists("a") and ff.size("a") == 11 and ff.size("nope") == -1
    f = ff.open("a", "rb")
    assert f.read(5) == b"hello" and f.tell() == 5
    buf = bytearray(3)
    assert f.readinto(buf) == 3 and buf == bytearray(b" wo")
    f.seek(-2, 2)
    assert f.read() == b"ld"
    f.close()
    ff.rename("a", "b")
    assert ff.listdir() == ["b"] and ff.path("b").endswith("b")
    ff.remove("b")
    assert ff.listdir() == []
    raises(OSError, ff.open, "b", "rb")
    raises(OSError, ff.remove, "b")
    with ff.open("t", "w") as f:
        f.write("text")
    with ff.open("t", "r") as f:
        assert f.read() == "text"


def test_only_synced_bytes_survive_a_synced_restart():
    ff = FaultFlash()
    f = ff.open("a", "wb")
    f.write(b"durable")
    ff.sync(f)
    f.write(b" volatile")
    f.flush()
    f.close()
    assert ff.restart("synced").image() == {"a": b"durable"}
    ff = FaultFlash({"a": b"x"})
    _write(ff, "a", b"new", sync=False)  # the truncation is durable, the data is not
    assert ff.restart("synced").image() == {"a": b""}


def test_cut_tears_the_write_and_kills_the_device():
    ff = FaultFlash(cut_after=3, torn=0.5)
    f = ff.open("a", "wb")  # op 1
    f.write(b"12345678")  # op 2
    raises(PowerCut, f.write, b"abcdefgh")  # op 3: torn
    assert ff.dead
    raises(PowerCut, ff.listdir)
    raises(PowerCut, ff.open, "a", "rb")
    assert ff.restart("written").image() == {"a": b"12345678abcd"}
    assert ff.restart("synced").image() == {"a": b""}
    assert not isinstance(PowerCut(), Exception)  # no `except Exception` survives it


def test_every_mutating_call_is_a_cut_point():
    for n, what in ((1, "open"), (2, "sync"), (3, "rename"), (4, "remove")):
        ff = FaultFlash({"x": b"1"}, cut_after=n)
        try:
            f = ff.open("a", "wb")
            ff.sync(f)
            ff.rename("a", "b")
            ff.remove("x")
            raise AssertionError("no cut")
        except PowerCut:
            pass
        assert ff.ops == n, what


def test_enospc_keeps_what_fits():
    ff = FaultFlash(capacity=10)
    f = ff.open("a", "wb")
    f.write(b"123456")
    e = raises(OSError, f.write, b"abcdef")
    assert e.args[0] == ENOSPC
    assert ff.image() == {"a": b"123456abcd"} and ff.free_bytes() == 0
    f.seek(0)
    f.write(b"AB")  # overwriting needs no room
    assert ff.image() == {"a": b"AB3456abcd"}


def test_injected_errors_and_bit_flips():
    ff = FaultFlash()
    f = ff.open("a", "wb")
    ff.fail(EIO, count=2, partial=0.5)
    e = raises(OSError, f.write, b"abcd")
    assert e.args[0] == EIO
    raises(OSError, ff.sync, f)
    f.write(b"ef")
    ff.sync(f)
    assert ff.image() == {"a": b"abef"}
    ff.flip("a", 0, 1)
    assert ff.image() == {"a": b"cbef"} and ff.restart("synced").image() == {"a": b"cbef"}
