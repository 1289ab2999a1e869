# The PC side of hal: what MicroPython has built in, made from CPython's modules and the
# libraries of the design card (crcmod, pycryptodome). Imported on CPython only, so none
# of its names costs a MicroPython heap anything.
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
# its own thread: one thread's ondemand.forget must not drop a module another is importing.
ondemand_lock = threading.RLock()
