# AES-128-CBC (encryption in place: whole blocks of a writable buffer), SHA-256,
# HMAC-SHA256 and random bytes.
# pycryptodome on CPython, cryptolib + hashlib on MicroPython; byte-identical results.
import hashlib
import os

from hal.compat import MICROPYTHON, const

if MICROPYTHON:
    import cryptolib

    _CBC = const(2)

    def aes_cbc_encrypt_into(key, iv, buf):
        cryptolib.aes(key, _CBC, iv).encrypt(buf, buf)

    def aes_cbc_decrypt(key, iv, data):
        return cryptolib.aes(key, _CBC, iv).decrypt(data)

else:
    from hal.pc import aes_cbc_decrypt, aes_cbc_encrypt_into  # noqa: F401


def sha256(data):
    return hashlib.sha256(data).digest()


_IPAD = bytes(0x36 for _ in range(64))
_OPAD = bytes(0x5C for _ in range(64))


def _xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


class Hmac:
    """HMAC-SHA256 (RFC 2104). MicroPython has no hmac module; the pads are
    computed once per key so sealing a frame costs two hash runs only."""

    def __init__(self, key):
        if len(key) > 64:
            key = sha256(key)
        key = key + bytes(64 - len(key))
        self._ipad = _xor(key, _IPAD)
        self._opad = _xor(key, _OPAD)

    def digest(self, *parts):
        h = hashlib.sha256(self._ipad)
        for p in parts:
            h.update(p)
        return hashlib.sha256(self._opad + h.digest()).digest()


def hmac_sha256(key, msg):
    return Hmac(key).digest(msg)


def compare_digest(a, b):
    """Constant time for equal lengths: the time does not depend on where they differ."""
    if len(a) != len(b):
        return False
    r = 0
    for x, y in zip(a, b):
        r |= x ^ y
    return r == 0


def random_bytes(n):
    return os.urandom(n)
