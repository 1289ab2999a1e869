# The center-link codec (version 2), with fixed vectors computed independently (CPython's
# hmac module and pycryptodome, not this code), so both interpreters are held to the same
# bytes.
from binascii import hexlify, unhexlify

from hal import crypto
from protocols import center_link as cl
from tests.core.util import raises

K = bytes(range(32))
IV = bytes(range(0x10, 0x20))
NG = bytes([0xA5]) * 16
NC = bytes([0x5A]) * 16
DEV = 0x01020304

# An ACK from the center (dir b"C").
ACK_FRAME = (
    "4d470204010203040000000700000020101112131415161718191a1b1c1d1e1f"
    "52318e092c2fdc48bed4cf2100d0a80985301941e6233ec32423459c64a52553"
)
HELLO_PT = (
    b'{"nonce": "a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5", "fw": "t", "head": 0, "oldest": 1, '
    b'"time": 1767225600}'
)
# A HELLO from the gateway (dir b"G").
HELLO_FRAME = (
    "4d470201010203040000000100000080101112131415161718191a1b1c1d1e1f"
    "62d2a8cf7aaccad287f8fb021350e925492776c181b17273c64629dfc9053f1b"
    "873eb37a511055021060ce2dd2582a644cc6ebba8a1a7a26e56d83abd2acb03c"
    "3da7da1ab161e9f3f522766fe44d436ad8eaa87aa73163bcea8bae6ec69ef4ff"
    "1c1fc26a40a4a6166f127d468592cc6bc270e46a61a5f80d5a7c7656414c0d65"
)


def _hex(b):
    return hexlify(b).decode()


def _reader_frame(raw):
    frames = cl.FrameReader().feed(raw)
    assert len(frames) == 1
    return frames[0]


def test_key_derivation_vector():
    k = cl.Keys(K)
    assert _hex(k.enc) == "ad3b7c16c0786e1ff61347164d65de0c"
    # K_mac is only kept inside the HMAC; check it through a known tag instead.
    assert raises(ValueError, cl.Keys, bytes(31))


def test_seal_fixed_vectors():
    k = cl.Keys(K)
    assert _hex(cl.seal(k, cl.ACK, DEV, 7, b'{"next": 42}', cl.CENTER, NG, NC, IV)) == ACK_FRAME
    # HELLO is MACed with both nonces zero.
    zero = cl.ZERO_NONCE
    assert _hex(cl.seal(k, cl.HELLO, DEV, 1, HELLO_PT, cl.GATEWAY, zero, zero, IV)) == HELLO_FRAME


def test_open_fixed_vector():
    f = _reader_frame(unhexlify(ACK_FRAME))
    assert (f.type, f.device_id, f.counter, len(f.body)) == (cl.ACK, DEV, 7, 32)
    pt = cl.open_body(cl.Keys(K), f.header, f.body, f.tag, cl.CENTER, NG, NC)
    assert pt == b'{"next": 42}'
    assert cl.decode(pt) == {"next": 42}


def test_every_flipped_bit_is_refused():
    k = cl.Keys(K)
    raw = bytearray(unhexlify(ACK_FRAME))
    for i in range(len(raw)):
        for bit in (0x01, 0x80):
            raw[i] ^= bit
            r = cl.FrameReader()
            try:
                frames = r.feed(raw)
                if not frames:  # a larger body_len: still waiting, nothing acted on
                    assert r.pending() and 8 <= i < 16
                    raw[i] ^= bit
                    continue
                f = frames[0]
                e = raises(cl.FrameError, cl.open_body, k, f.header, f.body, f.tag, cl.CENTER,
                           NG, NC)
            except cl.FrameError as header_error:  # magic, version or length byte hit
                e = header_error
            assert e.code in ("bad_tag", "bad_magic", "bad_version", "too_big", "bad_length")
            raw[i] ^= bit


def test_wrong_nonce_or_key_is_refused():
    f = _reader_frame(unhexlify(ACK_FRAME))
    e = raises(cl.FrameError, cl.open_body, cl.Keys(K), f.header, f.body, f.tag, cl.CENTER,
               NC, NG)
    assert e.code == "bad_tag"
    other = cl.Keys(bytes(32))
    e = raises(cl.FrameError, cl.open_body, other, f.header, f.body, f.tag, cl.CENTER, NG, NC)
    assert e.code == "bad_tag"
    # The center's own frame taken as the gateway's (a reflection) does not verify.
    e = raises(cl.FrameError, cl.open_body, cl.Keys(K), f.header, f.body, f.tag, cl.GATEWAY,
               NG, NC)
    assert e.code == "bad_tag"


def test_header_checks():
    assert cl.parse_header(cl.pack_header(3, 9, 1, 48)) == (3, 9, 1, 48)
    e = raises(cl.FrameError, cl.parse_header, b"XG" + cl.pack_header(3, 9, 1, 48)[2:])
    assert e.code == "bad_magic"
    assert cl.pack_header(3, 9, 1, 48)[2] == 2
    for version in (0, 1, 3, 255):  # version 1 (no dir in the MAC) is refused
        bad_version = bytearray(cl.pack_header(3, 9, 1, 48))
        bad_version[2] = version
        assert raises(cl.FrameError, cl.parse_header, bad_version).code == "bad_version"
    too_big = cl.pack_header(3, 9, 1, 262160)
    assert raises(cl.FrameError, cl.parse_header, too_big).code == "too_big"
    assert cl.parse_header(cl.pack_header(3, 9, 1, 262144))[3] == 262144
    assert raises(cl.FrameError, cl.parse_header, cl.pack_header(3, 9, 1, 40)).code == "bad_length"
    assert raises(cl.FrameError, cl.parse_header, cl.pack_header(3, 9, 1, 16)).code == "bad_length"


def test_oversized_header_ends_before_allocation():
    r = cl.FrameReader()
    hdr = cl.pack_header(cl.RECORDS, DEV, 1, 0xFFFFFFF0)
    buf = r.buffer()
    assert len(buf) == cl.HEADER_LEN
    buf[:] = hdr
    e = raises(cl.FrameError, r.advance, cl.HEADER_LEN)
    assert e.code == "too_big"
    assert r._rest is None  # nothing of the announced size was allocated


def test_reader_byte_by_byte_and_back_to_back():
    raw = unhexlify(ACK_FRAME) + unhexlify(HELLO_FRAME)
    r = cl.FrameReader()
    got = []
    for i in range(len(raw)):
        got += r.feed(raw[i : i + 1])
        if i == 10:
            assert r.pending()
    assert [f.type for f in got] == [cl.ACK, cl.HELLO]
    assert not r.pending()
    assert bytes(got[1].body) == unhexlify(HELLO_FRAME)[16:-16]


def test_pkcs7():
    k = cl.Keys(K)
    for n in range(0, 40):
        data = bytes(range(n))
        frame = cl.seal(k, cl.PING, 7, 1, data, cl.GATEWAY, NG, NC, IV)
        body = frame[cl.HEADER_LEN:-16]
        assert len(body) == 16 + (n // 16 + 1) * 16  # IV, then 1..16 bytes of padding
        padded = crypto.aes_cbc_decrypt(k.enc, IV, bytes(body[16:]))
        assert padded[n:] == bytes([len(padded) - n]) * (len(padded) - n)
        assert cl.unpad(padded) == data
    assert raises(cl.FrameError, cl.unpad, bytes(15) + b"\x00").code == "bad_padding"
    assert raises(cl.FrameError, cl.unpad, bytes(15) + b"\x11").code == "bad_padding"
    assert raises(cl.FrameError, cl.unpad, bytes(14) + b"\x01\x02").code == "bad_padding"
    assert raises(cl.FrameError, cl.unpad, bytes(15)).code == "bad_padding"


def test_valid_tag_over_bad_padding_or_json_is_refused():
    k = cl.Keys(K)
    body = IV + bytes(16)  # decrypts to garbage: the padding cannot be right... or is refused
    hdr = cl.pack_header(cl.ACK, DEV, 1, len(body))
    t = cl.tag(k, cl.CENTER, NG, NC, hdr, body)
    try:
        pt = cl.open_body(k, hdr, body, t, cl.CENTER, NG, NC)
        assert raises(cl.FrameError, cl.decode, pt).code == "bad_json"
    except cl.FrameError as e:
        assert e.code == "bad_padding"
    for text in (b"[1, 2]", b"\xff\xfe", b"{", b"42"):
        frame = cl.seal(k, cl.ACK, DEV, 1, text, cl.CENTER, NG, NC)
        f = _reader_frame(frame)
        pt = cl.open_body(k, f.header, f.body, f.tag, cl.CENTER, NG, NC)
        assert raises(cl.FrameError, cl.decode, pt).code == "bad_json"


def test_seal_refuses_oversized_plaintext():
    k = cl.Keys(K)
    g = cl.GATEWAY
    most = bytes(cl.MAX_PLAINTEXT)
    assert len(cl.seal(k, cl.RECORDS, DEV, 1, most, g, NG, NC)) == 16 + 262144 + 16
    e = raises(cl.FrameError, cl.seal, k, cl.RECORDS, DEV, 1, most + b"x", g, NG, NC)
    assert e.code == "too_big"


def _pair():
    k = cl.Keys(K)
    g, c = cl.Session(k, DEV, cl.GATEWAY), cl.Session(k, DEV, cl.CENTER)
    g.nonce_g = c.nonce_g = NG
    hello = g.seal(cl.HELLO, {"nonce": _hex(NG)})
    assert c.open(_reader_frame(hello)) == {"nonce": _hex(NG)}
    welcome = c.seal(cl.WELCOME, {"nonce": _hex(NC), "next": 1})
    assert g.open(_reader_frame(welcome))["next"] == 1
    g.nonce_c = c.nonce_c = NC
    return g, c


def test_session_counters_and_nonces():
    g, c = _pair()
    f1 = g.seal(cl.RECORDS, {"records": []})
    f2 = g.seal(cl.PING, {})
    assert c.open(_reader_frame(f1)) == {"records": []}
    # Replaying f1 (same connection): counter is stale.
    assert raises(cl.FrameError, c.open, _reader_frame(f1)).code == "bad_counter"
    assert c.open(_reader_frame(f2)) == {}


def test_session_refuses_reordered_and_earlier_connection_frames():
    g, c = _pair()
    f1 = g.seal(cl.PING, {})
    f2 = g.seal(cl.PING, {})
    assert raises(cl.FrameError, c.open, _reader_frame(f2)).code == "bad_counter"
    g2, c2 = _pair()
    c2.nonce_c = bytes([1]) * 16  # a new connection has a new center nonce
    assert raises(cl.FrameError, c2.open, _reader_frame(f1)).code == "bad_tag"


def test_session_refuses_other_device_id():
    k = cl.Keys(K)
    g = cl.Session(k, DEV + 1, cl.GATEWAY)
    c = cl.Session(k, DEV, cl.CENTER)
    frame = g.seal(cl.HELLO, {"nonce": _hex(NG)})
    assert raises(cl.FrameError, c.open, _reader_frame(frame)).code == "bad_device"


def test_a_frame_reflected_to_its_sender_is_refused():
    # A man in the middle without the key bounces the gateway's own PING back to it, with
    # the counter the gateway expects next from the center: version 2 binds the sender.
    g, c = _pair()
    ping = _reader_frame(g.seal(cl.PING, {}))
    assert ping.counter == g.rx_counter + 1  # the counter is the one it expects next
    assert raises(cl.FrameError, g.open, ping).code == "bad_tag"
    pong = _reader_frame(c.seal(cl.PONG, {}))
    assert pong.counter == c.rx_counter + 1
    assert raises(cl.FrameError, c.open, pong).code == "bad_tag"


def test_seq_bounds():
    assert cl.seq_ok(0) and cl.seq_ok(2**31 - 1)
    for bad in (2**31, 2**32 + 5, -1, True, 1.0, "1", None):
        assert not cl.seq_ok(bad), bad
