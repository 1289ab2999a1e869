# Helpers shared by the core tests, usable under pytest and under tests/mprun.py.
import os


try:
    import pytest

    SkipTest = pytest.skip.Exception  # a skip under pytest
except ImportError:

    class SkipTest(Exception):
        pass


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
