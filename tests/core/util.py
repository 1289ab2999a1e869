# Helpers shared by the core tests, usable under pytest and under tests/mprun.py.
import os

try:
    import pytest

    SkipTest = pytest.skip.Exception  # a skip under pytest
except ImportError:

    class SkipTest(Exception):
        pass


class Rng:
    """A small xorshift generator: the same values from a seed on both interpreters."""

    def __init__(self, seed):
        self.s = (seed * 2654435761 + 12345) & 0xFFFFFFFF or 1

    def next(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def below(self, n):
        return self.next() % n

    def chance(self, percent):
        return self.below(100) < percent

    def bytes(self, n):
        return bytes(self.below(256) for _ in range(n))


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception it raised; fail if it raised nothing or another type."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("%s not raised" % exc_type.__name__)


def rmtree(path):
    try:
        entries = os.listdir(path)
    except OSError:
        return
    for name in entries:
        p = path + "/" + name
        if os.stat(p)[0] & 0x4000:
            rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def tmpdir(tag="t"):
    """A fresh empty directory under /tmp."""
    import binascii

    path = "/tmp/gwtest-%s-%s" % (tag, binascii.hexlify(os.urandom(4)).decode())
    rmtree(path)
    os.mkdir(path)
    return path


def heap_lock():
    """MicroPython's (heap_lock, heap_unlock): any allocation between them raises
    MemoryError. SkipTest on CPython and on a port without them."""
    try:
        import micropython

        return micropython.heap_lock, micropython.heap_unlock
    except (ImportError, AttributeError):
        raise SkipTest("heap_lock is MicroPython's")


def holds_secret(secret, tree):
    """True if the secret (a PIN, a key) is stored anywhere in tree.

    Numbers count when equal to it, long hex strings when their bytes hold it, and other
    text when it holds it with no digit either side: a timestamp, a random salt or a
    longer number ("10000 t") that happens to contain the same digits is no leak.
    """
    import binascii

    if isinstance(tree, dict):
        return any(holds_secret(secret, k) or holds_secret(secret, v) for k, v in tree.items())
    if isinstance(tree, (list, tuple)):
        return any(holds_secret(secret, v) for v in tree)
    if isinstance(tree, bool) or tree is None:
        return False
    if isinstance(tree, (int, float)):
        return str(tree) == secret
    if isinstance(tree, str) and len(tree) >= 16 and len(tree) % 2 == 0:
        try:
            return secret.encode() in binascii.unhexlify(tree)
        except ValueError:
            pass
    return _holds_whole(secret, str(tree))


def _holds_whole(secret, text):
    i = text.find(secret)
    while i >= 0:
        j = i + len(secret)
        if not (i > 0 and text[i - 1].isdigit()) and not (j < len(text) and text[j].isdigit()):
            return True
        i = text.find(secret, i + 1)
    return False


def write_key(path, text):
    """A device key file as provisioning writes it: readable by its owner only (the
    gateway refuses one that group or others may read). MicroPython's os has no chmod."""
    import os

    with open(path, "w") as f:
        f.write(text)
    if hasattr(os, "chmod"):
        os.chmod(path, 0o600)
    elif os.system("chmod 600 '%s'" % path) != 0:
        raise OSError("chmod 600 %s failed" % path)
