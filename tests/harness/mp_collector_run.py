# Runs the collector driver on MicroPython against a port given on the command line
# (socket://host:port or a tty path) for some seconds and prints one JSON line of what it saw.
# Used by tests/test_collector.py and bench/modbus.py:
#   micropython tests/harness/mp_collector_run.py URL SECONDS [BAUD]
import json
import sys
import time

sys.path.insert(0, ".")

from drivers.collector import Collector  # noqa: E402
from hal.clock import Clock  # noqa: E402
from hal.uart import _split_socket_url  # noqa: E402
from hal.uart_polled import SocketUart, TtyUart  # noqa: E402


def main(url, seconds, baud):
    if url.startswith("socket://"):
        uart = SocketUart(*_split_socket_url(url))
    else:
        uart = TtyUart(url, baud)
    clock = Clock()
    coll = Collector(uart, clock, baud=baud, identity_s=1, capture_s=2)
    out = {"samples": [], "captures": [], "identity": None, "restarts": []}

    def sample(s):
        if len(out["samples"]) < 200:
            out["samples"].append([s.block_seq, list(s.cells), s.pulses, s.status])

    def capture(wave, rate):
        if len(out["captures"]) < 3:
            out["captures"].append([coll.sample.wave_seq, rate, list(wave)])

    def identity(ident):
        out["identity"] = ident

    coll.on_sample = sample
    coll.on_capture = capture
    coll.on_identity = identity
    coll.on_restart = lambda uptime: out["restarts"].append(uptime)
    coll.write_output(2, True)
    end = time.ticks_add(time.ticks_ms(), int(seconds * 1000))
    cpu_us = 0
    runs = 0
    while time.ticks_diff(end, time.ticks_ms()) > 0:
        t0 = time.ticks_us()
        coll.run(clock.ticks_ms())
        cpu_us += time.ticks_diff(time.ticks_us(), t0)
        runs += 1
        time.sleep_ms(2)
    out["counters"] = coll.counters()
    out["outputs"] = coll.outputs
    out["runs"] = runs
    print(json.dumps(out))


main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 115200)
