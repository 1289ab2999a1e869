# The PC side of hal: what MicroPython has built in, made from CPython's modules and the
# libraries of the design card (crcmod, pycryptodome). Imported on CPython only, so none
# of its names costs a MicroPython heap anything.
import builtins
import sys
import threading
import time
import traceback

import crcmod.predefined
from Crypto.Cipher import AES


def const(x):
    return x


# Same wrap-around arithmetic as MicroPython's ticks (period 2**30), so code that is
# wrong about wrapping fails on CPython too.
_PERIOD = 1 << 30
_HALF = 1 << 29


def ticks_ms():
    return (time.monotonic_ns() // 1000000) & (_PERIOD - 1)


def ticks_add(t, delta):
    return (t + delta) & (_PERIOD - 1)


def ticks_diff(a, b):
    return ((a - b + _HALF) & (_PERIOD - 1)) - _HALF


def sleep_ms(ms):
    if ms > 0:
        time.sleep(ms / 1000)


def mem_free():
    return None  # CPython: the footprint is the process's, not a heap of ours


def print_exception(exc, file=sys.stderr):
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=file)


_crc16 = crcmod.predefined.mkCrcFun("modbus")


def crc16_modbus(data):
    return _crc16(bytes(data))


def aes_cbc_encrypt_into(key, iv, buf):
    AES.new(bytes(key), AES.MODE_CBC, bytes(iv)).encrypt(buf, output=buf)


def aes_cbc_decrypt(key, iv, data):
    return AES.new(bytes(key), AES.MODE_CBC, bytes(iv)).decrypt(bytes(data))


# On a PC several gateways may share one process (tests, the emulator's tools), each in
# its own thread, and sys.modules is the process's. gateway/ondemand.py's forget must
# drop only what its own thread imported: a module another thread is importing (importlib
# then fails with KeyError) or imported as a plain import (it would load a second copy,
# with other classes, the next time) stays. So every import of our packages holds one
# lock, and the thread that loaded each of our modules is noted.
ondemand_lock = threading.RLock()
_OURS = ("gateway", "protocols", "drivers", "hal")
_loaded_by = {}  # module name -> (thread ident, id of the module object it loaded)
_import = builtins.__import__


def _noting_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level or name.partition(".")[0] not in _OURS:
        return _import(name, globals, locals, fromlist, level)
    with ondemand_lock:
        n = len(sys.modules)
        mod = _import(name, globals, locals, fromlist, level)
        if len(sys.modules) != n:
            me = threading.get_ident()
            for k, m in list(sys.modules.items()):
                if k.partition(".")[0] in _OURS and _loaded_by.get(k, (0, 0))[1] != id(m):
                    _loaded_by[k] = (me, id(m))
        return mod


builtins.__import__ = _noting_import


def loaded_here(name):
    """Whether this thread loaded our module `name` (or no thread is known to have)."""
    who = _loaded_by.get(name)
    m = sys.modules.get(name)
    return who is None or who[0] == threading.get_ident() or who[1] != id(m)
