# The emulated site for end-to-end tests: the collector emulator (belt model with a feed
# set by hand, RTU over TCP, sped up unless told otherwise) and the center emulator, in
# this process.
import os

from emulator.belt import Belt
from emulator.center import Center
from emulator.collector import CollectorEmulator
from emulator.meters import SITE_TERMINALS, site_bus
from emulator.scale_runs import Manual

SPEED = 20.0  # belt seconds per real second
# What an installer enters, and what speed and span calibrations gave for this belt; the
# zero is left for the tests to calibrate.
SCALE = {"belt_length_m": 25.0, "weigh_length_m": 1.2, "pulses_per_m": 101.7,
         "span_kg_per_count": 0.000994, "zero_counts": 0}


class Site:
    """Collector and center emulators in this process; the belt's feed is set by hand."""

    def __init__(self, tmp, seed=2, speed=SPEED):
        self.tmp = str(tmp)
        self.keys = os.path.join(self.tmp, "keys")
        os.makedirs(self.keys)
        self.feed = Manual(0.0, 2.5)
        self.belt = Belt(seed=seed, profile=self.feed)
        self.collector = CollectorEmulator(self.belt, speed=speed, seed=seed)
        self.meters = site_bus(self.belt)  # two power terminals on the second RS485 port
        self.center = Center(os.path.join(self.tmp, "center.db"), self.keys, "127.0.0.1", 0)

    def start(self):
        host, port = self.collector.start_tcp("127.0.0.1", 0)
        self.collector_url = "socket://%s:%d" % (host, port)
        self.meters_url = "socket://%s:%d" % self.meters.start_tcp("127.0.0.1", 0)
        self.center.start_thread()

    def config(self, device_id, cli_port, data_dir, key_file, scale=None):
        return {
            "device_id": device_id,
            "key_file": key_file,
            "data_dir": data_dir,
            "collector": {"port": self.collector_url, "baud": 115200},
            "center": {"host": self.center.host, "port": self.center.port},
            "scale": SCALE if scale is None else scale,
            "cli": {"port": cli_port, "idle_logout_s": 600},
            "meters": {"port": self.meters_url, "terminals": SITE_TERMINALS},
        }

    def stop(self):
        self.meters.stop()
        self.collector.stop()
        self.center.stop()


