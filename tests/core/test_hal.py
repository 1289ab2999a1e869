# The hal primitives give the same answers on both interpreters.
from binascii import hexlify, unhexlify

from hal import crc, crypto
from hal.virtualclock import VirtualClock


def test_crc16_modbus_reference():
    # Read 2 input registers from slave 1 at 0: the CRC every Modbus document quotes.
    assert crc.crc16_modbus(unhexlify("010400000002")) == 0xCB71  # on the wire: 71 CB
    assert crc.crc16_modbus(b"123456789") == 0x4B37  # the CRC catalogue check value


def test_crc32_check_value():
    assert crc.crc32(b"123456789") == 0xCBF43926


def test_sha256_and_hmac_rfc4231_case2():
    assert hexlify(crypto.sha256(b"abc")).decode().startswith("ba7816bf")
    tag = crypto.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert hexlify(tag).decode() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_hmac_long_key_rfc4231_case6():
    key = bytes([0xAA]) * 131
    msg = b"Test Using Larger Than Block-Size Key - Hash Key First"
    assert hexlify(crypto.hmac_sha256(key, msg)).decode() == (
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    )


def test_aes_cbc_nist_sp800_38a():
    key = unhexlify("2b7e151628aed2a6abf7158809cf4f3c")
    iv = unhexlify("000102030405060708090a0b0c0d0e0f")
    pt = unhexlify("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
    buf = bytearray(8) + pt
    crypto.aes_cbc_encrypt_into(key, iv, memoryview(buf)[8:])  # in place, inside a larger buffer
    assert buf[:8] == bytes(8)
    assert hexlify(buf[8:]).decode() == (
        "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
    )
    assert crypto.aes_cbc_decrypt(key, iv, bytes(buf[8:])) == pt


def test_compare_digest():
    assert crypto.compare_digest(b"abcd", b"abcd")
    assert not crypto.compare_digest(b"abcd", b"abce")
    assert not crypto.compare_digest(b"abcd", b"abc")


def test_random_bytes_differ():
    a, b = crypto.random_bytes(16), crypto.random_bytes(16)
    assert len(a) == 16 and a != b


def test_virtual_clock_wraps_ticks_and_moves_wall_time():
    c = VirtualClock(start_s=1000.0, ticks_start=-5)
    t0 = c.ticks_ms()
    c.sleep_ms(20)
    assert c.ticks_diff(c.ticks_ms(), t0) == 20
    assert c.time() == 1000.02
    step = c.set_time(2000.0)
    assert 999.9 < step < 1000.0 and c.time() == 2000.0
