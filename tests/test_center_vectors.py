# Cross-interpreter vectors: frames sealed on MicroPython (cryptolib + hashlib) open on
# CPython (pycryptodome, and an independent reading of the spec with the hmac module),
# and frames sealed on CPython open on MicroPython.
import hashlib
import hmac
import json
import os
import struct
import subprocess
import sys

from Crypto.Cipher import AES

from protocols import center_link as cl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MP = os.path.join(os.path.dirname(sys.executable), "micropython")
KEY = bytes(range(100, 132))
DEV = 4000000001

_PRELUDE = """
import sys, json
sys.path.insert(0, '.')
from binascii import hexlify, unhexlify
from protocols import center_link as cl
K = bytes(range(100, 132))
keys = cl.Keys(K)
"""


def _mp(script):
    r = subprocess.run([MP, "-c", _PRELUDE + script], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip().splitlines()


def _spec_open(key, frame, sender, nonce_g, nonce_c):
    """The spec (version 2) read independently of protocols.center_link: header, tag with
    the sender's dir byte, CBC, PKCS#7."""
    k_enc = hashlib.sha256(key + b"enc").digest()[:16]
    k_mac = hashlib.sha256(key + b"mac").digest()
    magic, version, ftype, dev, counter, body_len = struct.unpack(">2sBBIII", frame[:16])
    assert magic == b"MG" and version == 2 and len(frame) == 16 + body_len + 16
    body, tag = frame[16 : 16 + body_len], frame[16 + body_len :]
    want = hmac.new(k_mac, sender + nonce_g + nonce_c + frame[:16] + body,
                    hashlib.sha256).digest()[:16]
    assert hmac.compare_digest(want, tag)
    padded = AES.new(k_enc, AES.MODE_CBC, body[:16]).decrypt(body[16:])
    n = padded[-1]
    assert 1 <= n <= 16 and padded[-n:] == bytes([n]) * n
    return ftype, dev, counter, json.loads(padded[:-n].decode("utf-8"))


def _spec_seal(key, ftype, dev, counter, plaintext, sender, nonce_g, nonce_c, iv, version=2):
    k_enc = hashlib.sha256(key + b"enc").digest()[:16]
    k_mac = hashlib.sha256(key + b"mac").digest()
    n = 16 - len(plaintext) % 16
    body = iv + AES.new(k_enc, AES.MODE_CBC, iv).encrypt(plaintext + bytes([n]) * n)
    header = struct.pack(">2sBBIII", b"MG", version, ftype, dev, counter, len(body))
    mac_in = (sender if version == 2 else b"") + nonce_g + nonce_c + header + body
    tag = hmac.new(k_mac, mac_in, hashlib.sha256).digest()[:16]
    return header + body + tag


def test_fixed_iv_frames_are_byte_identical_on_both_interpreters():
    iv, ng, nc = bytes(range(16)), bytes([7]) * 16, bytes([9]) * 16
    for size, sender in ((0, b"G"), (1, b"C"), (15, b"G"), (16, b"C"), (17, b"G"), (1000, b"C")):
        pt = json.dumps({"records": "x" * size}).encode()
        mp = _mp("print(hexlify(cl.seal(keys, 3, %d, 5, %r, %r, %r, %r, %r)).decode())"
                 % (DEV, pt, sender, ng, nc, iv))[0]
        cp = cl.seal(cl.Keys(KEY), 3, DEV, 5, pt, sender, ng, nc, iv).hex()
        spec = _spec_seal(KEY, 3, DEV, 5, pt, sender, ng, nc, iv).hex()
        assert mp == cp == spec


def test_sealed_on_micropython_opens_on_cpython():
    lines = _mp("""
import os
s = cl.Session(keys, %d, cl.GATEWAY)
s.nonce_g = os.urandom(16)
print(hexlify(s.nonce_g).decode())
print(hexlify(s.seal(cl.HELLO, {"nonce": hexlify(s.nonce_g).decode(), "head": 3})).decode())
s.nonce_c = os.urandom(16)
print(hexlify(s.nonce_c).decode())
recs = [{"seq": 1, "t": 1767225600, "type": "prod", "mass_kg": 1234.5, "note": "\\u7164"}]
print(hexlify(s.seal(cl.RECORDS, {"records": recs})).decode())
""" % DEV)
    ng, hello, nc, records = (bytes.fromhex(x) for x in lines)
    zero = bytes(16)
    assert _spec_open(KEY, hello, b"G", zero, zero) == (cl.HELLO, DEV, 1,
                                                         {"nonce": ng.hex(), "head": 3})
    ftype, dev, counter, msg = _spec_open(KEY, records, b"G", ng, nc)
    assert (ftype, dev, counter) == (cl.RECORDS, DEV, 2)
    assert msg["records"][0]["mass_kg"] == 1234.5 and msg["records"][0]["note"] == "\u7164"
    # And through the codec the center uses, in session order.
    center = cl.Session(cl.Keys(KEY), DEV, cl.CENTER)
    center.nonce_g = ng
    assert center.open(cl.FrameReader().feed(hello)[0])["head"] == 3
    center.tx_counter = 1  # WELCOME went out
    center.nonce_c = nc
    assert center.open(cl.FrameReader().feed(records)[0]) == msg


def test_sealed_on_cpython_opens_on_micropython():
    ng, nc = bytes(range(40, 56)), bytes(range(60, 76))
    s = cl.Session(cl.Keys(KEY), DEV, cl.CENTER)
    s.nonce_g = ng
    s.tx_counter = 1  # the center already sent WELCOME... as if; the counter carries on
    s.nonce_c = nc
    cmd = s.seal(cl.COMMAND, {"id": 42, "op": "set_params",
                              "args": {"params": {"scale.material_factor": 1.01}}})
    ping = s.seal(cl.PING, {})
    spec = _spec_seal(KEY, cl.ACK, DEV, 4, b'{"next": 99}', b"C", ng, nc, bytes(16))
    # What a version-1 center would send, and the gateway's own frame reflected back.
    v1 = _spec_seal(KEY, cl.PING, DEV, 5, b"{}", b"C", ng, nc, bytes(16), version=1)
    mirror = _spec_seal(KEY, cl.PING, DEV, 5, b"{}", b"G", ng, nc, bytes(16))
    lines = _mp("""
g = cl.Session(keys, %d, cl.GATEWAY)
g.nonce_g = unhexlify(%r)
g.nonce_c = unhexlify(%r)
g.rx_counter = 1
r = cl.FrameReader()
for f in r.feed(unhexlify(%r)):
    print(json.dumps(g.open(f)))
bad = bytearray(unhexlify(%r))
bad[-3] ^= 1
try:
    g.open(r.feed(bad)[0])
except cl.FrameError as e:
    print(e.code)
try:
    cl.FrameReader().feed(unhexlify(%r))
except cl.FrameError as e:
    print(e.code)
g.rx_counter = 4
try:
    g.open(cl.FrameReader().feed(unhexlify(%r))[0])
except cl.FrameError as e:
    print(e.code)
""" % (DEV, ng.hex(), nc.hex(), (cmd + ping + spec).hex(), spec.hex(), v1.hex(), mirror.hex()))
    assert json.loads(lines[0]) == {"id": 42, "op": "set_params",
                                    "args": {"params": {"scale.material_factor": 1.01}}}
    assert json.loads(lines[1]) == {}
    assert json.loads(lines[2]) == {"next": 99}
    assert lines[3:] == ["bad_tag", "bad_version", "bad_tag"]
