# The whole app (gateway.app.Gateway) on stand-in hardware, in simulated time: a collector
# that never answers, a center that cannot be reached, an in-memory flash.
from gateway import config
from gateway.app import Gateway
from hal import Hardware
from hal.net import NetError
from hal.virtualclock import VirtualClock
from tests.core.faultfs import FaultFlash


class SilentLine:
    """An RS485 line with nobody on it: every wait runs out (in simulated time)."""

    def __init__(self, clock):
        self.clock = clock

    def write(self, data):
        pass

    def readinto(self, buf, timeout_ms):
        self.clock.advance_ms(max(timeout_ms, 0))
        return 0

    def discard_input(self):
        return 0

    def close(self):
        pass


def _unreachable():
    raise NetError("connect: unreachable")


def standin_gateway(sections=None):
    """A Gateway (not started) with the minimal configuration plus `sections`
    ({"store": {...}, ...})."""
    raw = {
        "device_id": 7, "key_file": "k", "data_dir": "d",
        "collector": {"port": "socket://127.0.0.1:1"},
        "center": {"host": "127.0.0.1", "port": 1},
    }
    for name, keys in (sections or {}).items():
        raw.setdefault(name, {}).update(keys)
    clock = VirtualClock()
    hw = Hardware(clock, FaultFlash(), SilentLine(clock), _unreachable)
    return Gateway(config.validate(raw), bytes(32), hw)
