# Attacks that need a real socket or a process (CPython): a replayed HELLO against the
# emulated center, a bad key file at start-up. The attacks on the gateway itself run on
# both interpreters in tests/core/test_security.py.
import os
import socket
import stat
import subprocess
import sys

import pytest

from emulator.center import Center
from protocols import center_link as cl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = bytes(range(7, 39))
DEV = 4242


@pytest.fixture
def center(tmp_path):
    c = Center(str(tmp_path / "center.db"), {DEV: KEY}, silence_s=3, ping_s=1).start_thread()
    yield c
    c.stop()


class _Gateway:
    """A gateway end over a blocking socket; keeps every frame it receives."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.session = cl.Session(cl.Keys(KEY), DEV, cl.GATEWAY)
        self.reader = cl.FrameReader()
        self.inbox = []

    def hello(self):
        s = self.session
        s.nonce_g = os.urandom(16)
        frame = s.seal(cl.HELLO, {"nonce": s.nonce_g.hex(), "fw": "t", "head": 0,
                                  "oldest": 1, "time": 0})
        self.sock.sendall(frame)
        s.nonce_c = bytes.fromhex(self.next(cl.WELCOME)["nonce"])
        return frame

    def next(self, ftype):
        """The next frame of a type (others are answered as a gateway would, or kept)."""
        while True:
            while self.inbox:
                f = self.inbox.pop(0)
                msg = self.session.open(f)
                if f.type == ftype:
                    return msg
                if f.type == cl.PING:
                    self.sock.sendall(self.session.seal(cl.PONG, {}))
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the center")
            self.inbox += self.reader.feed(data)

    def records(self, first, n):
        recs = [{"seq": s, "t": 1767225600 + 60 * s, "type": "prod", "mass_kg": 1.0}
                for s in range(first, first + n)]
        self.sock.sendall(self.session.seal(cl.RECORDS, {"records": recs}))
        return self.next(cl.ACK)["next"]


def test_a_replayed_hello_does_not_drop_the_live_connection(center):
    # Anyone who captured one HELLO could make the center drop the gateway's live link,
    # again and again. Version 2: the live connection stays until a new connection's
    # first frame after WELCOME verifies, which only the gateway can make.
    live = _Gateway(center.port)
    recorded = live.hello()
    assert live.records(1, 5) == 6
    replays = []
    for _ in range(3):
        r = socket.create_connection(("127.0.0.1", center.port), timeout=5)
        r.sendall(recorded)
        assert r.recv(65536)  # a WELCOME the replayer cannot use
        replays.append(r)
        assert live.records(len(replays) * 5 + 1, 5) == len(replays) * 5 + 6  # still served
    assert center.summary(DEV)["online"] and center.record_count(DEV) == 20
    assert not any("replaces" in text for _, _, text in center.events)
    # The gateway itself reconnecting does replace its old connection, at its first frame.
    again = _Gateway(center.port)
    again.hello()
    assert again.records(21, 1) == 22
    assert any("replaces" in text for _, _, text in center.events)
    with pytest.raises(OSError):  # ConnectionError included
        for _ in range(3):
            live.records(22, 1)
    # A replayed connection sends nothing that verifies: the center ends it on silence.
    for r in replays:
        assert _closed_within(r, 8)
        r.close()
    assert center.record_count(DEV) == 21


def _closed_within(sock, seconds):
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        return False
    return True


def _config(tmp_path, key_text=None, key_bytes=None, mode=0o600):
    key = tmp_path / "device.key"
    if key_bytes is not None:
        key.write_bytes(key_bytes)
    else:
        key.write_text(key_text)
    os.chmod(key, mode)
    cfg = tmp_path / "config.json"
    cfg.write_text('{"device_id": 5, "key_file": "%s", "data_dir": "%s", '
                   '"collector": {"port": "-"}, "center": {"host": "127.0.0.1", "port": 1}}'
                   % (key, tmp_path / "data"))
    return str(cfg)


def _run(exe, cfg, seconds="0.5"):
    return subprocess.run(exe + ["-m", "gateway", "run", "--config", cfg, "--seconds", seconds],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")


@pytest.mark.parametrize("exe", [[sys.executable], [MICROPYTHON]], ids=["cpython", "micropython"])
def test_a_key_file_that_is_not_a_hex_key_is_one_line_without_key_material(tmp_path, exe):
    raw = bytes(range(0x80, 0xA0))  # 32 raw bytes: not UTF-8, not hex
    for content in (raw, b"\xff" * 64 + b"\n", b"zz" * 32, b"ab" * 31):
        r = _run(exe, _config(tmp_path, key_bytes=content))
        out = r.stdout + r.stderr
        assert r.returncode == 2, out
        assert out.count("\n") == 1 and "key_file" in out and "Traceback" not in out, out
        assert "\\x" not in out and "0x" not in out, out  # no byte of it, escaped
        text = content.decode("latin-1")
        for i in range(len(text) - 3):
            assert text[i : i + 4] not in out, (text[i : i + 4], out)


def test_a_key_file_readable_by_others_is_refused(tmp_path):
    cfg = _config(tmp_path, key_text="ab" * 32 + "\n", mode=0o644)
    r = _run([sys.executable], cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "key_file" in out and "chmod 600" in out, out
    assert "ab" * 32 not in out
    assert stat.S_IMODE(os.stat(tmp_path / "device.key").st_mode) == 0o644  # not changed
