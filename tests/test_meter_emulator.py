# The emulated power terminals (emulator/meters.py): the third-party dlt645 package answers
# our codec's frames; its address byte order, checked against the datasheet; the driver
# over TCP against it, with the belt's physics, a cleared register and a replaced terminal.
import time

from dlt645 import DLT645Protocol, MeterServerService
from dlt645.common.transform import string_to_bcd

from drivers import meters as mt
from emulator.belt import Belt
from emulator.meters import DrivePhysics, EmuTerminal, MeterBus, address_bytes
from emulator.scale_runs import Manual
from hal.board import open_uart
from hal.clock import Clock
from protocols import dlt645 as dlt


def test_address_byte_order_against_the_datasheet():
    # The datasheet: 000000000012 is sent 12 00 00 00 00 00.
    assert dlt.address_bytes("000000000012") == b"\x12\x00\x00\x00\x00\x00"
    assert address_bytes("000000000012") == dlt.address_bytes("000000000012")
    b = bytearray(32)
    n = dlt.build_read(b, dlt.address_bytes("000000000012"), 0x00010000)
    _, frame = DLT645Protocol.deserialize_with_remaining(bytes(b[:n]))
    # The package given the digits keeps them most significant byte first and does not
    # answer the datasheet's frame; given the datasheet's bytes, it does.
    svc = MeterServerService(None)
    svc.set_address("000000000012")
    assert bytes(svc.address) == bytes(string_to_bcd("000000000012")) == b"\x00" * 5 + b"\x12"
    t = EmuTerminal("000000000012")
    assert bytes(t.svc.address) == b"\x12" + b"\x00" * 5
    assert t.answer(frame) is not None


def test_a_terminal_holds_the_datasheets_items_only():
    # The datasheet's items are answered, any other is "no such data" (a real terminal
    # has no other); and a terminal is a few hundred objects, not the package's whole
    # table (120 000 objects each made every full collection of the test campaign's
    # process, where its in-process gateways run, ten times slower).
    import gc

    terminals = [EmuTerminal("000000000012")]
    gc.collect()
    n = len(gc.get_objects())
    terminals.append(EmuTerminal("000000000034"))
    gc.collect()
    assert len(gc.get_objects()) - n < 500
    b = bytearray(32)
    a = dlt.address_bytes("000000000012")
    for di, ok in ((0x00020000, True), (0x02800007, True), (0x02090300, True),
                   (0x00010500, False), (0x01010000, False)):
        k = dlt.build_read(b, a, di)
        _, frame = DLT645Protocol.deserialize_with_remaining(bytes(b[:k]))
        _, reply = DLT645Protocol.deserialize_with_remaining(terminals[0].answer(frame))
        assert reply.ctrl_code == (0x91 if ok else 0xD1), (hex(di), reply.ctrl_code)


def test_package_replies_decode_with_our_codec():
    t = EmuTerminal("000000000012", "belt_drive", ct=60.0)
    t.update(102.0, 3600.0)  # 102 kW primary for an hour: 1.7 kWh secondary
    b = bytearray(32)
    a = dlt.address_bytes("000000000012")
    for di, n, signed, want in ((0x02030000, 3, True, 17000), (0x00010000, 4, False, 170)):
        k = dlt.build_read(b, a, di)
        _, frame = DLT645Protocol.deserialize_with_remaining(bytes(b[:k]))
        reply = t.answer(frame)
        clock = Clock()

        class Line:
            def write(self, data):
                pass

            def readinto(self, buf, timeout_ms):
                buf[: len(reply)] = reply
                return len(reply)

            def discard_input(self):
                return 0

        m = dlt.Master(Line(), clock)
        m.start_read(a, di, n, signed)
        assert m.poll(clock.ticks_ms()) and m.value == want


def test_drive_power_follows_the_belt():
    belt = Belt(seed=1, profile=Manual(0.0, 2.5))
    belt.advance(15)
    ph = DrivePhysics()
    empty = ph.kw(belt)
    assert abs(empty - (18.0 + 10.0 * 2.5)) < 0.5  # no-load + friction at 2.5 m/s
    belt.profile.feed_tph = 800.0
    belt.advance(2)
    # + lift: 800 t/h = 222 kg/s up 25 m at 92 %
    assert abs(ph.kw(belt) - empty - 222.2 * 9.81 * 25 / 0.92 / 1000) < 2.0
    belt.profile.speed_mps = 0.0
    belt.advance(20)
    assert ph.kw(belt) == 0.0


def test_driver_over_tcp_with_a_clear_and_a_replacement():
    belt = Belt(seed=1, profile=Manual(800.0, 2.5))
    belt.advance(15)
    # CT 2: a heavy secondary load (60 kW), so that the register rolls over within seconds
    term = EmuTerminal("000000000012", "belt_drive", ct=2.0, energy_kwh=999999.97)
    bus = MeterBus([term], belt=belt, baud=9600, turnaround_ms=20, tick_s=0.05)
    host, port = bus.start_tcp()
    u = open_uart("socket://%s:%d" % (host, port), 9600, "E")
    clock = Clock()
    m = mt.Meters(u, clock, [{"address": "000000000012", "role": "belt_drive", "ct_ratio": 2.0,
                              "pt_ratio": 1.0, "nominal_v": 220.0}], baud=9600)
    events = []
    m.on_event = lambda code, t, d: events.append(code)

    def spin(s):
        end = time.time() + s
        while time.time() < end:
            m.run(clock.ticks_ms())
            time.sleep(0.005)

    try:
        spin(8)  # the register rolls over at 999999.99 meanwhile
        t = m.terminals[0]
        assert t.link.state == "ok"
        assert abs(t.values[mt.P] * 2 / 10000 - mt_kw(belt)) < 5  # kW primary
        assert "meter_rollover" in events and t.values[mt.E] < 100
        term.clear()
        spin(4)
        assert "meter_cleared" in events
        term.replace("000000000077", energy_kwh=5.0)
        spin(12)
        assert t.link.state == "lost" and "meter_replaced" in events
    finally:
        u.close()
        bus.stop()


def mt_kw(belt):
    return DrivePhysics().kw(belt)
