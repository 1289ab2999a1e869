# The link health a driver keeps for each device (drivers/link.py): ok / degraded / lost
# from each attempt's outcome, and the back-off from a device that stays silent.
# Runs under pytest and on MicroPython.
from drivers.link import LinkHealth
from hal.virtualclock import VirtualClock
from protocols import modbus_rtu as rtu
from tests.core.fakeline import FakeLine, RegisterSlave
from tests.core.util import raises


def _attempt(m, link):
    # What a driver does with one transaction's outcome.
    try:
        m.read(1, rtu.READ_INPUT, 0, 2)
    except rtu.ModbusError as e:
        link.failed(isinstance(e, (rtu.ResponseTimeout, rtu.PortError)))
        raise
    link.answered()


def _wait_ready(link, clock):
    n = 0
    while not link.ready(clock.ticks_ms()):
        clock.advance_ms(10)
        n += 10
    return n


def test_silent_slave_backs_off_and_recovers():
    clock = VirtualClock()
    slave = RegisterSlave()
    m = rtu.Master(FakeLine(clock, slave), clock)
    link = LinkHealth(clock, retries=2, backoff_ms=200, backoff_max_ms=1000)
    assert link.state == "lost"  # nothing heard yet
    _attempt(m, link)
    assert link.state == "ok"
    slave.address = 9  # stops answering us
    waits = []
    for attempt in range(7):
        raises(rtu.ResponseTimeout, _attempt, m, link)
        assert link.state == ("degraded" if attempt < 2 else "lost")
        waits.append(_wait_ready(link, clock))
    assert waits == [0, 0, 200, 400, 800, 1000, 1000]
    assert link.consecutive_failures == 7
    slave.address = 1
    _attempt(m, link)
    assert link.ready(clock.ticks_ms()) and link.consecutive_failures == 0
    assert link.state == "degraded"  # recent failures still in the history
    for _ in range(16):
        _attempt(m, link)
    assert link.state == "ok"


def test_garbled_answers_degrade_but_do_not_back_off():
    clock = VirtualClock()
    link = LinkHealth(clock, retries=1)
    link.answered()
    for _ in range(5):
        link.failed(False)  # heard something, not a valid frame
        assert link.ready(clock.ticks_ms())
    assert link.state == "lost" and link.consecutive_failures == 5
    link.answered()
    assert link.state == "degraded"


def test_absent_port_backs_off():
    clock = VirtualClock()
    line = FakeLine(clock, RegisterSlave())
    m = rtu.Master(line, clock)
    link = LinkHealth(clock)
    line.broken = True
    for _ in range(3):
        raises(rtu.PortError, _attempt, m, link)
    assert link.state == "lost" and not link.ready(clock.ticks_ms())
    line.broken = False
    clock.advance_ms(5000)
    _attempt(m, link)
    assert link.state == "degraded" and link.consecutive_failures == 0
