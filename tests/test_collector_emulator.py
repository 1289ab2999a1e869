# The emulated collector as an independent client sees it: pymodbus's own client (RTU
# framer over TCP) reads the datasheet's register map; faster-than-real-time running;
# collector events; the command line.
import os
import subprocess
import sys
import time

import pytest

from emulator.belt import WRAP, Belt
from emulator.collector import CollectorEmulator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def emu():
    e = CollectorEmulator(Belt(seed=11), speed=0.0, seed=11)
    e.start()
    e.advance(5.0)
    yield e
    e.stop()


@pytest.fixture
def client(emu):
    from pymodbus.client import ModbusTcpClient
    from pymodbus.framer import FramerType

    host, port = emu.start_tcp()
    c = ModbusTcpClient(host, port=port, framer=FramerType.RTU, timeout=1, retries=0)
    assert c.connect()
    yield c
    c.close()


def _u32(regs, i):
    return regs[i] << 16 | regs[i + 1]


def _i32(regs, i):
    v = _u32(regs, i)
    return v - (1 << 32) if v >= 1 << 31 else v


def test_register_map(emu, client):
    regs = client.read_input_registers(0, count=25, device_id=1).registers
    seq = _u32(regs, 0)
    truth = emu.history[seq]
    assert seq == 50  # 5 s of 100 ms blocks
    assert [_i32(regs, 2 + 2 * i) for i in range(4)] == truth["cells"]
    assert _u32(regs, 10) == emu.belt.pulses  # the counter starts near 2^32 and wraps
    assert _u32(regs, 12) == round(emu.belt.speed_freq_hz() * 100)
    assert regs[15] == 1 and regs[16] == 0  # DI1: motor running; no faults
    assert 11900 <= regs[17] <= 12100 and _u32(regs, 19) == 5
    assert regs[22] == 2 and regs[23] == 256 and regs[24] == 1000  # two captures in 5 s
    wave = client.read_input_registers(100, count=125, device_id=1)
    if wave.isError():  # exception 06 during a copy: not now, nothing is being copied
        pytest.fail("busy outside a copy")
    expect = [v & 0xFFFF for v in emu.captures[2][:125]]
    assert wave.registers == expect
    ident = client.read_holding_registers(1000, count=5, device_id=1).registers
    assert ident[0] == emu.vendor_id and _u32(ident, 2) == emu.serial and ident[4] == 203
    sensors = client.read_holding_registers(1010, count=14, device_id=1).registers
    assert [_u32(sensors, 2 * i) for i in range(7)] == emu.sensor_serials
    assert client.read_discrete_inputs(0, count=2, device_id=1).bits[:2] == [True, False]
    assert not client.write_coil(1, True, device_id=1).isError()
    assert client.read_coils(0, count=2, device_id=1).bits[:2] == [False, True]


def test_exceptions(emu, client):
    for rr in (
        client.read_input_registers(20, count=10, device_id=1),  # 25..29 unmapped
        client.read_holding_registers(1003, count=4, device_id=1),  # 1005.. unmapped
        client.read_coils(1, count=2, device_id=1),
        client.write_register(1000, 5, device_id=1),  # read only
    ):
        assert rr.isError() and rr.exception_code == 2
    assert client.write_register(1200, 1, device_id=1).exception_code == 3
    assert client.write_register(1100, 0, device_id=1).exception_code == 3
    emu.faults.busy = 1.0
    assert client.read_input_registers(0, count=25, device_id=1).exception_code == 6
    emu.faults.busy = 0.0


def test_restart_and_settings(emu, client):
    before = client.read_input_registers(0, count=25, device_id=1).registers
    assert not client.write_registers(1100, [7, 3], device_id=1).isError()
    after = client.read_input_registers(0, count=25, device_id=1).registers
    assert after[21] == before[21] + 2  # config_counter: two settings changed
    emu.advance(1.0)
    emu.restart()  # the new address takes effect
    emu.advance(0.5)
    regs = client.read_input_registers(0, count=25, device_id=7).registers
    assert _u32(regs, 0) == 5 and regs[16] == 0x100 and _u32(regs, 19) == 0
    assert _u32(regs, 10) < 200  # counting again from 0 (about 127 pulses in 0.5 s)
    assert regs[22] <= 1  # captures since the restart
    assert not client.write_register(1200, 0xA5A5, device_id=7).isError()
    assert client.read_input_registers(16, count=1, device_id=7).registers == [0]
    emu.open_cell(2)
    emu.advance(0.2)
    regs = client.read_input_registers(0, count=25, device_id=7).registers
    assert regs[16] == 0x4 and _i32(regs, 6) == -(1 << 31)


def test_faster_than_real_time_and_true_mass():
    belt = Belt(seed=3)
    e = CollectorEmulator(belt, speed=20.0)
    e.start()
    t0 = time.monotonic()
    time.sleep(1.0)
    sim = e.snapshot(lambda: belt.t)
    e.stop()
    real = time.monotonic() - t0
    assert 12 <= sim <= 22 * real
    # Material laid 35 m upstream reaches the frame after about 14 s at 2.5 m/s.
    assert e.true_mass_kg >= 0.0 and e.lag_s < 1.0


def test_zero_counts_is_the_empty_belts_mean_over_a_revolution():
    # What a zero calibration finds on this belt: the rigs commission their scales with it.
    from emulator.scale_runs import Manual

    b = Belt(seed=16, profile=Manual(0.0, 2.5))
    b.advance(20.0)  # up to speed, empty
    rev_s = b.belt_length_m / 2.5
    sums = []
    for _ in range(int(rev_s / 0.1)):
        b.advance(0.1)
        sums.append(sum(b.cells))
    mean = sum(sums) / len(sums)
    assert abs(mean - b.zero_counts()) < 10, (mean, b.zero_counts())  # 0.01 kg


def test_pulse_counter_wraps():
    e = CollectorEmulator(Belt(seed=1, pulses_start=WRAP - 100), speed=0.0)
    e.advance(5.0)
    assert e.history[max(e.history)]["pulses"] < 1000  # wrapped past 2^32


def test_command_line_prints_its_endpoints():
    r = subprocess.run(
        [sys.executable, "-c", "from emulator.collector import main; main()",
         "--pty", "--tcp", "127.0.0.1:0", "--seconds", "0.5", "--speed", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("pty: /dev/pts/") and lines[1].startswith("tcp: 127.0.0.1:")
    assert lines[2].startswith("true mass")


def test_di1_follows_the_motor_within_a_second():
    e = CollectorEmulator(Belt(seed=2), speed=0.0)
    e.advance(0.3)
    assert e.belt.motor_on and e._fast[15] & 1 == 0  # the clamp sensor has not switched yet
    e.advance(0.4)
    assert e._fast[15] & 1 == 1
