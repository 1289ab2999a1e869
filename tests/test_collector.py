# The collector driver against the pymodbus emulator over a real pty (pyserial) and over
# TCP (RTU over TCP), on CPython and under the real micropython; line faults; collector
# events; a port that is absent at start.
import json
import os
import subprocess
import sys
import time

import pytest

from drivers.collector import Collector
from emulator.belt import Belt
from emulator.collector import CollectorEmulator
from hal.clock import Clock
from hal.uart import UartError
from hal.uart_pyserial import PySerialUart

pytestmark = pytest.mark.realtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")


@pytest.fixture
def emu():
    e = CollectorEmulator(Belt(seed=5), speed=2.0, seed=5)
    e.start()
    yield e
    e.stop()


class Run:
    def __init__(self, url, **kw):
        self.clock = Clock()
        self.uart = PySerialUart(url, 115200)
        kw.setdefault("baud", 115200)
        self.coll = Collector(self.uart, self.clock, **kw)
        self.samples = []
        self.captures = []
        self.idents = []
        self.restarts = []
        self.coll.on_sample = self._sample
        self.coll.on_capture = self._capture
        self.coll.on_identity = lambda ident: self.idents.append(dict(ident))
        self.coll.on_restart = self._restart

    def _capture(self, wave, rate):
        self.captures.append((self.coll.sample.wave_seq, list(wave)))

    def _sample(self, s):
        self.samples.append(
            (s.block_seq, list(s.cells), s.pulses, s.status, s.config_counter, s.uptime_s)
        )

    def _restart(self, uptime):
        self.restarts.append((uptime, len(self.samples)))

    def drive(self, seconds, until=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.coll.run(self.clock.ticks_ms())
            if until is not None and until():
                return True
            time.sleep(0.002)
        return False

    def close(self):
        self.uart.close()


def _check_against_truth(emu, samples):
    """Every sample is exactly what the emulator published for that block_seq."""
    assert samples
    for seq, cells, pulses, status, _, _ in samples:
        truth = emu.history[seq]
        assert cells == truth["cells"] and pulses == truth["pulses"], seq


def _check_captures(emu, captures):
    for wave_seq, wave in captures:
        assert emu.captures[wave_seq] == wave, wave_seq


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_driver_against_emulator(emu, transport):
    url = emu.start_pty() if transport == "pty" else "socket://%s:%d" % emu.start_tcp()
    r = Run(url, identity_s=300, capture_s=2)
    r.coll.write_output(1, True)
    r.drive(3.5)
    r.close()
    assert 28 <= len(r.samples) <= 36  # 10 Hz
    _check_against_truth(emu, r.samples)
    assert r.idents[0]["serial"] == emu.serial and r.idents[0]["sensors"] == emu.sensor_serials
    assert r.idents[0]["fw_version"] == 203
    assert emu.coils == [True, False] and r.coll.outputs == [True, False]
    assert r.captures
    _check_captures(emu, r.captures)
    c = r.coll.counters()
    assert c["state"] == "ok" and c["timeouts"] == 0 and c["crc_errors"] == 0
    assert c["latency_ms_max"] < 100


def test_line_faults_never_give_a_wrong_value(emu):
    host, port = emu.start_tcp()
    r = Run("socket://%s:%d" % (host, port), capture_s=2, timeout_ms=60)
    f = emu.faults
    f.crc, f.drop, f.late, f.late_ms, f.busy = 0.15, 0.1, 0.05, 120, 0.05
    f.garbage, f.wrong_address, f.batch_ms = 0.2, 0.05, 16
    r.drive(5.0)
    _check_against_truth(emu, r.samples)
    _check_captures(emu, r.captures)
    c = r.coll.counters()
    assert c["crc_errors"] and c["timeouts"] and c["busy"] and c["wrong_address"]
    assert len(r.samples) > 15  # still polling through it all
    f.clean()
    n, polls = len(r.samples), r.coll.polls
    assert r.drive(2.0, until=lambda: len(r.samples) > n)
    assert r.coll.polls - polls <= 3
    r.drive(1.0)
    r.close()
    _check_against_truth(emu, r.samples)


def test_collector_events(emu):
    r = Run(emu.start_pty(), identity_s=1)
    r.drive(1.0)
    assert r.samples[-1][4] == 0 and r.samples[-1][3] == 0
    old = list(emu.sensor_serials)
    emu.swap_sensor(2)
    emu.change_settings()
    emu.open_cell(1)
    assert r.drive(3.0, until=lambda: len(r.idents) >= 2 and r.idents[-1]["sensors"] != old)
    assert r.idents[-1]["sensors"][2] not in old and r.idents[-1]["sensors"][:2] == old[:2]
    r.drive(0.3)
    seq, cells, _, status, config, _ = r.samples[-1]
    assert config == 1 and status & 0x2 and cells[1] == -(1 << 31)
    r.coll.write_output(2, True)
    r.drive(0.3)
    assert emu.coils == [False, True]
    emu.restart()
    assert r.drive(2.0, until=lambda: not emu.restarted and emu.coils[1])
    assert len(r.restarts) == 1
    r.drive(0.5)
    r.close()
    uptime, at = r.restarts[0]
    assert uptime <= 1 and r.samples[at][2] < 1000  # the pulse counter restarted from 0
    assert r.samples[-1][0] < 40  # and block_seq
    _check_against_truth(emu, r.samples[at:])


def test_port_absent_at_start_then_present(emu, tmp_path):
    # A pty behind a symlink that does not exist yet: the USB adapter not plugged in.
    link = str(tmp_path / "ttyUSB0")
    uart = PySerialUart(link, 115200)
    with pytest.raises(UartError):
        uart.readinto(bytearray(8), 10)
    r = Run(link)
    r.drive(1.0)
    assert not r.samples and r.coll.link.state == "lost"
    assert r.coll.counters()["uart_errors"] >= 3
    os.symlink(emu.start_pty(), link)
    assert r.drive(4.0, until=lambda: len(r.samples) >= 3)
    r.close()
    _check_against_truth(emu, r.samples)


def test_tcp_server_down_then_up(emu):
    from emulator.collector import _free_port

    port = _free_port()
    r = Run("socket://127.0.0.1:%d" % port)
    r.drive(1.0)
    assert not r.samples and r.coll.counters()["uart_errors"] >= 1
    emu.start_tcp("127.0.0.1", port)
    assert r.drive(4.0, until=lambda: len(r.samples) >= 3)
    r.close()
    _check_against_truth(emu, r.samples)


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_driver_under_micropython(emu, transport):
    url = emu.start_pty() if transport == "pty" else "socket://%s:%d" % emu.start_tcp()
    r = subprocess.run(
        [MICROPYTHON, "tests/harness/mp_collector_run.py", url, "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    samples = [(s[0], s[1], s[2], s[3], 0, 0) for s in out["samples"]]
    assert len(samples) >= 25
    _check_against_truth(emu, samples)
    assert out["identity"]["serial"] == emu.serial
    assert out["identity"]["sensors"] == emu.sensor_serials
    assert out["captures"]
    _check_captures(emu, [(c[0], c[2]) for c in out["captures"]])
    assert out["outputs"] == [False, True] and emu.coils == [False, True]
    assert out["counters"]["state"] == "ok"


def test_port_lost_and_back(emu, tmp_path):
    # The USB adapter is pulled out and put back (a new pty behind the same name), and the
    # serial server drops the TCP connection: the driver carries on by itself both times.
    link = str(tmp_path / "ttyUSB0")
    os.symlink(emu.start_pty(), link)
    r = Run(link)
    assert r.drive(2.0, until=lambda: len(r.samples) >= 3)
    emu.unplug_pty()
    os.remove(link)
    r.drive(0.5)
    assert r.coll.counters()["uart_errors"] >= 1
    os.symlink(emu.start_pty(), link)
    n = len(r.samples)
    assert r.drive(4.0, until=lambda: len(r.samples) >= n + 3)
    r.close()
    host, port = emu.start_tcp()
    r = Run("socket://%s:%d" % (host, port))
    assert r.drive(2.0, until=lambda: len(r.samples) >= 3)
    emu.drop_tcp_clients()
    n = len(r.samples)
    assert r.drive(4.0, until=lambda: len(r.samples) >= n + 3)
    assert r.coll.counters()["uart_errors"] >= 1
    r.close()
    _check_against_truth(emu, r.samples)


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_micropython_port_lost_and_back(emu, transport, tmp_path):
    link = str(tmp_path / "ttyUSB0")
    if transport == "pty":
        os.symlink(emu.start_pty(), link)
        url = link
    else:
        url = "socket://%s:%d" % emu.start_tcp()
    p = subprocess.Popen(
        [MICROPYTHON, "tests/harness/mp_collector_run.py", url, "4"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    if transport == "pty":
        emu.unplug_pty()
        os.remove(link)
        time.sleep(0.5)
        os.symlink(emu.start_pty(), link)
    else:
        emu.drop_tcp_clients()
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, out + err
    d = json.loads(out.splitlines()[-1])  # after the line that says the port would not open
    assert d["counters"]["uart_errors"] >= 1
    seqs = [s[0] for s in d["samples"]]
    assert len(seqs) >= 20 and max(seqs) - min(seqs) >= 30  # samples before and after
    assert d["counters"]["state"] == "ok"
    _check_against_truth(emu, [(s[0], s[1], s[2], s[3], 0, 0) for s in d["samples"]])
