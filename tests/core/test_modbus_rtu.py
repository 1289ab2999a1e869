# The Modbus RTU codec and master: reference frames, framing among garbage, typed errors
# (link health and back-off: tests/core/test_link_health.py). Runs under pytest and on
# MicroPython (tests/mprun.py).
import struct
from binascii import hexlify, unhexlify

from hal.virtualclock import VirtualClock
from protocols import modbus_rtu as rtu
from tests.core import modbus_slave
from tests.core.fakeline import FakeLine, RegisterSlave
from tests.core.util import raises


def _hex(buf, n):
    return hexlify(bytes(buf[:n])).decode()


def test_reference_requests():
    b = bytearray(256)
    assert _hex(b, rtu.build_read(b, 1, rtu.READ_INPUT, 0, 2)) == "01040000000271cb"
    assert _hex(b, rtu.build_read(b, 1, rtu.READ_HOLDING, 0, 10)) == "0103000000" + "0ac5cd"
    assert _hex(b, rtu.build_write_coil(b, 1, 0, True)) == "01050000ff008c3a"
    assert _hex(b, rtu.build_write_register(b, 17, 1, 3)) == "110600010003" + "9a9b"


def _write_registers(b, slave, address, values):
    # Function 16, which the gateway never sends: the slave side's parser still takes it.
    struct.pack_into(">BBHHB", b, 0, slave, 16, address, len(values), 2 * len(values))
    for i, v in enumerate(values):
        struct.pack_into(">H", b, 7 + 2 * i, v)
    return rtu.seal(b, 7 + 2 * len(values))


def test_request_round_trip_and_rejects():
    b = bytearray(256)
    n = _write_registers(b, 17, 1, [0x000A, 0x0102])
    assert _hex(b, n) == "1110000100020400" + "0a0102" + "c6f0"
    n = _write_registers(b, 5, 1100, [7, 3])
    assert modbus_slave.request_length(b, n) == n
    assert modbus_slave.parse_request(b, n) == (5, 16, 1100, 2, (7, 3))
    n = rtu.build_read(b, 247, rtu.READ_COILS, 0, 2)
    assert modbus_slave.parse_request(b, n) == (247, 1, 0, 2, None)
    b[3] ^= 1
    raises(rtu.CrcError, modbus_slave.parse_request, b, n)
    raises(rtu.FrameError, modbus_slave.parse_request, b, n - 1)
    assert modbus_slave.request_length(b"\x01\x2b", 2) == -1


def test_build_rejects_bad_arguments():
    b = bytearray(256)
    raises(ValueError, rtu.build_read, b, 0, rtu.READ_INPUT, 0, 1)
    raises(ValueError, rtu.build_read, b, 248, rtu.READ_INPUT, 0, 1)
    raises(ValueError, rtu.build_read, b, 1, rtu.READ_INPUT, 0, 126)
    raises(ValueError, rtu.build_read, b, 1, rtu.READ_INPUT, 0xFFFF, 2)
    raises(ValueError, rtu.build_read, b, 1, rtu.WRITE_COIL, 0, 1)
    raises(ValueError, rtu.build_write_register, b, 1, 0, 0x10000)


def test_responses_and_exceptions():
    b = bytearray(256)
    n = modbus_slave.build_response(b, 1, rtu.READ_HOLDING, b"\x00\x0a\x01\x02")
    assert _hex(b, n)[:14] == "010304000a0102" and rtu.crc_ok(b, 0, n)
    n = modbus_slave.build_exception(b, 1, rtu.READ_INPUT, 2)
    assert _hex(b, n) == "018402c2c1"
    e = rtu.exception_for(4, 6)
    assert isinstance(e, rtu.DeviceBusy) and isinstance(e, rtu.ModbusException)
    assert e.code == 6 and e.fc == 4
    assert type(rtu.exception_for(3, 11)) is rtu.ModbusException
    assert rtu.response_length(rtu.READ_COILS, 9) == 7
    assert rtu.response_length(rtu.READ_INPUT, 25) == 55
    assert rtu.response_length(rtu.WRITE_REGISTER, 1) == 8


def test_wire_timing():
    assert rtu.silence_us(9600) == 3645
    assert rtu.silence_us(19200) == 1822
    assert rtu.silence_us(38400) == 1750 and rtu.silence_us(115200) == 1750
    # The datasheet's figures: the fast block costs about 78 ms at 9600 and 14 ms at 115200.
    assert 77000 <= rtu.bus_time_us(9600, 8, 55) <= 79000
    assert 13000 <= rtu.bus_time_us(115200, 8, 55) <= 14500


def _master(slave=None, **kw):
    clock = VirtualClock()
    slave = slave or RegisterSlave()
    line = FakeLine(clock, slave)
    return rtu.Master(line, clock, **kw), line, slave, clock


def test_read_input_registers():
    m, line, slave, clock = _master()
    off = m.read(1, rtu.READ_INPUT, 0, 25)
    assert struct.unpack_from(">I", m.rx, off)[0] == slave.block_seq
    assert struct.unpack_from(">i", m.rx, off + 4)[0] == slave.cell(slave.block_seq, 0)
    assert line.requests[0] == unhexlify("010400000019") + line.requests[0][6:]
    c = m.counters()
    assert c["requests"] == 1 and c["responses"] == 1 and c["latency_ms_max"] >= 5


def test_bits_and_writes():
    m, line, slave, clock = _master()
    off = m.read(1, rtu.READ_DISCRETE_INPUTS, 0, 2)
    assert m.rx[off] == 1
    m.write_coil(1, 1, True)
    assert slave.coils == [False, True]
    off = m.read(1, rtu.READ_COILS, 0, 2)
    assert m.rx[off] == 2
    m.write_register(1, 1100, 9)
    assert slave.holding[1100] == 9


def test_exception_responses_are_typed():
    m, line, slave, clock = _master()
    e = raises(rtu.ModbusException, m.read, 1, rtu.READ_INPUT, 20, 10)
    assert e.code == 2 and e.fc == rtu.READ_INPUT and not isinstance(e, rtu.DeviceBusy)
    assert raises(rtu.ModbusException, m.write_register, 1, 1200, 1).code == 3
    slave.busy_next = 1
    raises(rtu.DeviceBusy, m.read, 1, rtu.READ_INPUT, 0, 25)
    c = m.counters()
    assert c["exceptions"] == 3 and c["busy"] == 1 and c["responses"] == 3


def test_silent_slave_times_out_by_its_deadline():
    m, line, slave, clock = _master()
    m.read(1, rtu.READ_INPUT, 0, 2)
    slave.address = 9  # stops answering us
    for _ in range(3):
        t0 = clock.ticks_ms()
        raises(rtu.ResponseTimeout, m.read, 1, rtu.READ_INPUT, 0, 2)
        # The deadline: both frames at 9600 (17 chars: 18 ms) plus the 100 ms timeout.
        assert clock.ticks_diff(clock.ticks_ms(), t0) <= 100 + 18 + 4
    assert m.counters()["timeouts"] == 3
    slave.address = 1
    m.read(1, rtu.READ_INPUT, 0, 2)


def _mangled(transform):
    slave = RegisterSlave()

    def answer(req):
        frame = slave.answer(req)
        return transform(frame) if frame else []

    return _master(answer)[0:2] + (slave,)


def test_bad_crc_is_rejected():
    def corrupt(f):
        f = bytearray(f)
        f[10] ^= 0x40
        return [(5, bytes(f))]

    m, line, slave = _mangled(corrupt)
    raises(rtu.CrcError, m.read, 1, rtu.READ_INPUT, 0, 25)
    assert m.counters()["crc_errors"] == 1 and m.counters()["responses"] == 0


def test_wrong_address_and_wrong_function_are_rejected():
    b = bytearray(256)

    def other(f):
        n = modbus_slave.build_response(b, 2, f[1], f[3:-2])
        return [(5, bytes(b[:n]))]

    m, line, slave = _mangled(other)
    raises(rtu.WrongAddress, m.read, 1, rtu.READ_INPUT, 0, 25)
    assert m.counters()["wrong_address"] == 1

    def function(f):
        n = modbus_slave.build_response(b, 1, 3, f[3:-2])
        return [(5, bytes(b[:n]))]

    m, line, slave = _mangled(function)
    raises(rtu.FrameError, m.read, 1, rtu.READ_INPUT, 0, 25)


def test_frame_found_among_garbage_and_usb_batches():
    def noisy(f):
        # Stray bytes after the direction switch, then the frame in 16 ms batches, then junk.
        return [(3, b"\x00\xff\x01\x04"), (5, f[:7]), (21, f[7:30]), (37, f[30:]), (38, b"\x01")]

    m, line, slave = _mangled(noisy)
    off = m.read(1, rtu.READ_INPUT, 0, 25)
    assert struct.unpack_from(">I", m.rx, off)[0] == slave.block_seq
    # The trailing junk is dropped before the next request, which then succeeds.
    off = m.read(1, rtu.READ_INPUT, 0, 25)
    assert m.counters()["stale_bytes"] >= 1


def test_late_answer_to_an_earlier_request_is_not_taken():
    slave = RegisterSlave()
    late = [True]

    def answer(req):
        frame = slave.answer(req)
        if late[0]:
            late[0] = False
            return [(400, frame)]  # after the deadline (272 ms of frames + 100)
        return [(5, frame)]

    m, line, _, clock = _master(answer)
    raises(rtu.ResponseTimeout, m.read, 1, rtu.READ_INPUT, 100, 124)
    clock.advance_ms(50)  # the late frame arrives meanwhile
    off = m.read(1, rtu.READ_INPUT, 224, 124)  # same length: only the flush tells them apart
    assert struct.unpack_from(">h", m.rx, off)[0] == slave.wave_value(slave.wave_seq, 124)


def test_write_echo_must_match():
    def wrong_echo(f):
        f = bytearray(f[:-2])
        f[5] ^= 1
        b = bytearray(16)
        n = modbus_slave.build_response(b, 1, f[1], f[2:6])
        return [(5, bytes(b[:n]))]

    m, line, slave = _mangled(wrong_echo)
    raises(rtu.FrameError, m.write_register, 1, 1200, 0xA5A5)


def test_garbage_flood_keeps_the_buffer_bounded():
    junk = bytes((i * 37 + 11) & 0xFF for i in range(3000))

    def flood(f):
        return [(1 + i // 64, junk[i : i + 64]) for i in range(0, len(junk), 64)]

    m, line, slave = _mangled(flood)
    cap = len(m.rx)
    raises(rtu.FrameError, m.read, 1, rtu.READ_INPUT, 0, 25)
    assert len(m.rx) == cap


def test_port_errors_are_link_failures():
    m, line, slave, clock = _master()
    line.broken = True
    for _ in range(3):
        raises(rtu.PortError, m.read, 1, rtu.READ_INPUT, 0, 2)
    assert m.counters()["uart_errors"] == 3
    line.broken = False
    m.read(1, rtu.READ_INPUT, 0, 2)
