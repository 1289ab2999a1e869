# The center-station link frame (../shared/specs/center-station.md, version 2).
#
#   header 16: b"MG" | version u8 | type u8 | device_id u32 | counter u32 | body_len u32
#   body:      IV(16) || AES-128-CBC(K_enc, IV, PKCS#7(plaintext))
#   tag 16:    HMAC-SHA256(K_mac, dir || nonce_g || nonce_c || header || body)[:16]
#
# dir names the sender (GATEWAY b"G", CENTER b"C"): a frame bounced back to the side that
# sealed it never verifies there. Version 1 (no dir) is refused like any other version.
#
# This module only builds and checks frames and raises; the uplink (gateway/center/uplink.py) and
# the center emulator decide what to do about an error (both end the connection).
import json
import struct

from hal import crypto
from hal.compat import const

_MAGIC = const(b"MG")
_VERSION = const(2)
HEADER_LEN = const(16)
_TAG_LEN = const(16)
_IV_LEN = const(16)
MAX_BODY = const(262144)
# Largest plaintext whose body fits MAX_BODY: IV + padded ciphertext (padding adds 1..16).
MAX_PLAINTEXT = const(262144 - 16 - 1)
ZERO_NONCE = bytes(16)
GATEWAY = b"G"
CENTER = b"C"
# Seqs and command ids stay below 2^31 (the spec): a plain int, not const(), since a
# 32-bit board's small ints end at 2^30.
SEQ_LIMIT = 0x80000000

HELLO = const(1)
WELCOME = const(2)
RECORDS = const(3)
ACK = const(4)
COMMAND = const(5)
RESULT = const(6)
PING = const(7)
PONG = const(8)
ERROR = const(9)

NAMES = {1: "HELLO", 2: "WELCOME", 3: "RECORDS", 4: "ACK", 5: "COMMAND", 6: "RESULT",
         7: "PING", 8: "PONG", 9: "ERROR"}

_HEADER = const(">2sBBIII")


class FrameError(ValueError):
    """A frame that must not be acted on; the connection ends. `code` is a short word
    (fit for an ERROR frame), the message says what was wrong."""

    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code


class Keys:
    """The two working keys derived from the 32-byte device key K. K itself is not kept."""

    def __init__(self, key):
        if len(key) != 32:
            raise ValueError("device key must be 32 bytes")
        self.enc = crypto.sha256(bytes(key) + b"enc")[:16]
        self.mac = crypto.Hmac(crypto.sha256(bytes(key) + b"mac"))


def pack_header(ftype, device_id, counter, body_len):
    return struct.pack(_HEADER, _MAGIC, _VERSION, ftype, device_id, counter, body_len)


def parse_header(buf):
    """(type, device_id, counter, body_len) from the first 16 bytes of buf, or FrameError.
    Everything that can be judged before the body arrives is judged here, so an oversized
    frame ends the connection before anything of its size is allocated."""
    magic, version, ftype, device_id, counter, body_len = struct.unpack_from(_HEADER, buf, 0)
    if magic != _MAGIC:
        raise FrameError("bad_magic", "frame does not start with MG")
    if version != _VERSION:
        raise FrameError("bad_version", "version %d, expected %d" % (version, _VERSION))
    if body_len > MAX_BODY:
        raise FrameError("too_big", "body_len %d over %d" % (body_len, MAX_BODY))
    # IV plus at least one cipher block, whole blocks: anything else cannot be a sealed body.
    if body_len < _IV_LEN + 16 or body_len % 16:
        raise FrameError("bad_length", "body_len %d is not IV + whole AES blocks" % body_len)
    return ftype, device_id, counter, body_len


def unpad(data):
    if not data or len(data) % 16:
        raise FrameError("bad_padding", "ciphertext is not whole blocks")
    n = data[-1]
    if not 1 <= n <= 16:
        raise FrameError("bad_padding", "pad byte %d" % n)
    for i in range(len(data) - n, len(data)):
        if data[i] != n:
            raise FrameError("bad_padding", "pad bytes differ")
    return data[: len(data) - n]


def seq_ok(v):
    """True for an int that may be a seq or a command id on the wire: 0 <= v < 2^31."""
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < SEQ_LIMIT


def tag(keys, sender, nonce_g, nonce_c, header, body):
    return keys.mac.digest(sender, nonce_g, nonce_c, header, body)[:_TAG_LEN]


def seal(keys, ftype, device_id, counter, plaintext, sender, nonce_g, nonce_c, iv=None):
    """The whole frame (header, body, tag) for plaintext bytes. iv is for test vectors only;
    normally it is 16 fresh random bytes. Built in one buffer, padded (PKCS#7), encrypted
    and MACed in place: a RECORDS frame is the largest buffer on the board, and a small
    heap may not hold several copies of it."""
    n = len(plaintext)
    if n > MAX_PLAINTEXT:
        raise FrameError("too_big", "plaintext of %d bytes over %d" % (n, MAX_PLAINTEXT))
    if iv is None:
        iv = crypto.random_bytes(_IV_LEN)
    pad = 16 - n % 16
    ct_at = HEADER_LEN + _IV_LEN
    end = ct_at + n + pad
    frame = bytearray(end + _TAG_LEN)
    struct.pack_into(_HEADER, frame, 0, _MAGIC, _VERSION, ftype, device_id, counter,
                     end - HEADER_LEN)
    mv = memoryview(frame)
    mv[HEADER_LEN:ct_at] = iv
    mv[ct_at:ct_at + n] = plaintext
    for i in range(ct_at + n, end):
        frame[i] = pad
    crypto.aes_cbc_encrypt_into(keys.enc, iv, mv[ct_at:end])
    mac = keys.mac.digest(sender, nonce_g, nonce_c, mv[:HEADER_LEN], mv[HEADER_LEN:end])
    mv[end:] = mac[:_TAG_LEN]
    return frame


def open_body(keys, header, body, frame_tag, sender, nonce_g, nonce_c):
    """The plaintext bytes of a frame whose header was already parsed, sealed by sender.
    The tag is checked first and in constant time; nothing is decrypted from a frame that
    fails it."""
    want = tag(keys, sender, nonce_g, nonce_c, header, body)
    if not crypto.compare_digest(want, frame_tag):
        raise FrameError("bad_tag", "tag does not verify")
    iv = bytes(body[:_IV_LEN])
    return unpad(crypto.aes_cbc_decrypt(keys.enc, iv, bytes(body[_IV_LEN:])))


def encode(obj):
    return json.dumps(obj).encode()


def decode(plaintext):
    """The JSON object of a plaintext, or FrameError."""
    try:
        obj = json.loads(str(plaintext, "utf-8"))
    except ValueError:  # bad UTF-8 (UnicodeError) or bad JSON
        raise FrameError("bad_json", "plaintext is not UTF-8 JSON")
    except RuntimeError:  # CPython's RecursionError: nested deeper than its parser goes
        raise FrameError("bad_json", "plaintext nested too deep")
    if not isinstance(obj, dict):
        raise FrameError("bad_json", "plaintext is not a JSON object")
    return obj


class Frame:
    """One received frame, authenticated or not yet: header bytes, parsed fields, body, tag."""

    def __init__(self, header, ftype, device_id, counter, body, frame_tag):
        self.header = header
        self.type = ftype
        self.device_id = device_id
        self.counter = counter
        self.body = body
        self.tag = frame_tag


class FrameReader:
    """Reassembles frames from a byte stream without copying: the caller reads from its
    socket straight into buffer() and reports the count to advance(n). The header is
    judged as soon as its 16 bytes are in (parse_header); only then is the body's buffer
    allocated, of the size the header announced, which is at most MAX_BODY + 16."""

    def __init__(self):
        self._header = bytearray(HEADER_LEN)
        self._header_mv = memoryview(self._header)
        self._fields = None
        self._rest = None  # body + tag, once the header is in
        self._rest_mv = None
        self._have = 0

    def buffer(self):
        """Where the next bytes go (a memoryview of what is still missing of this part)."""
        if self._rest_mv is None:
            return self._header_mv[self._have :]
        return self._rest_mv[self._have :]

    def pending(self):
        """True while part of a frame has arrived (a stream that ends now ends mid-frame)."""
        return self._have > 0 or self._rest is not None

    def advance(self, n):
        """Account for n bytes written into buffer(); a Frame when one is complete, else None.
        Raises FrameError for a header that must end the connection."""
        self._have += n
        if self._rest is None:
            if self._have < HEADER_LEN:
                return None
            self._fields = parse_header(self._header)
            try:
                self._rest = bytearray(self._fields[3] + _TAG_LEN)
            except MemoryError:  # a legal size a small board cannot hold: end, don't crash
                raise FrameError("too_big", "no memory for a body of %d bytes"
                                 % self._fields[3])
            self._rest_mv = memoryview(self._rest)
            self._have = 0
            return None
        if self._have < len(self._rest):
            return None
        ftype, device_id, counter, body_len = self._fields
        rest = self._rest_mv
        frame = Frame(bytes(self._header), ftype, device_id, counter, rest[:body_len],
                      rest[body_len:])
        self._fields = self._rest = self._rest_mv = None
        self._have = 0
        return frame

    def feed(self, data):
        """Push bytes that were read elsewhere; returns the list of complete frames."""
        frames = []
        mv = memoryview(data)
        while len(mv):
            buf = self.buffer()
            n = min(len(buf), len(mv))
            buf[:n] = mv[:n]
            mv = mv[n:]
            f = self.advance(n)
            if f is not None:
                frames.append(f)
        return frames


class Session:
    """One end of one connection: the nonces, both counters, and sealing and opening in
    the order the spec fixes. Both ends use it alike; side is GATEWAY or CENTER, the end
    this session seals for. It never retries: any FrameError means the connection must
    end."""

    def __init__(self, keys, device_id, side):
        self.keys = keys
        self.device_id = device_id
        self.side = side
        self.nonce_g = ZERO_NONCE
        self.nonce_c = ZERO_NONCE
        self.tx_counter = 0
        self.rx_counter = 0

    def _nonces(self, ftype):
        # HELLO is MACed with both nonces zero, WELCOME with nonce_c zero.
        if ftype == HELLO:
            return ZERO_NONCE, ZERO_NONCE
        if ftype == WELCOME:
            return self.nonce_g, ZERO_NONCE
        return self.nonce_g, self.nonce_c

    def seal(self, ftype, obj, iv=None):
        plaintext = obj if isinstance(obj, (bytes, bytearray)) else encode(obj)
        g, c = self._nonces(ftype)
        frame = seal(self.keys, ftype, self.device_id, self.tx_counter + 1, plaintext, self.side,
                     g, c, iv)
        self.tx_counter += 1
        return frame

    def open(self, frame):
        """The plaintext object of a received frame, or FrameError. Checks, in order: the
        tag (constant time), the counter (exactly one more than the last), the device id."""
        g, c = self._nonces(frame.type)
        peer = CENTER if self.side == GATEWAY else GATEWAY
        plaintext = open_body(self.keys, frame.header, frame.body, frame.tag, peer, g, c)
        if frame.counter != self.rx_counter + 1:
            raise FrameError("bad_counter", "counter %d, expected %d (replay or loss)"
                             % (frame.counter, self.rx_counter + 1))
        if frame.device_id != self.device_id:
            raise FrameError("bad_device", "device id %d on a link of %d"
                             % (frame.device_id, self.device_id))
        self.rx_counter += 1
        return decode(plaintext)
