# CLI figures on the real micropython (unix port): what a login and a run of the CLI job
# cost the loop, and whether an idle run allocates.
import json

from bench.util import micropython

_SCRIPT = r"""
import time, json, micropython
from gateway.cli import auth
from gateway.cli.session import Cli
from hal.virtualclock import VirtualClock
from tests.core.fakecontrol import FakeControl
from tests.core.test_cli_session import FakeStream

res = {}
acc = auth.make_account("1001", "2468", iterations=auth.DEFAULT_ITERATIONS)
accounts = auth.parse_accounts(json.dumps({"accounts": [acc]}))
clock = VirtualClock()
a = auth.Auth(accounts, clock)
check = a.begin("1001", "2468", 0)
t0 = time.ticks_us()
check.step(256)
res["slice_us"] = time.ticks_diff(time.ticks_us(), t0)
t0 = time.ticks_us()
while not check.step(256):
    pass
res["login_us"] = time.ticks_diff(time.ticks_us(), t0) + res["slice_us"]

control = FakeControl(clock)
s = FakeStream()
cli = Cli(control, s, auth.Auth(accounts, clock), clock)
cli.start()
for _ in range(20):
    cli.run(clock.ticks_ms())
s.out = bytearray()
N = 2000
t0 = time.ticks_us()
for _ in range(N):
    cli.run(clock.ticks_ms())
res["idle_us"] = time.ticks_diff(time.ticks_us(), t0) / N
micropython.heap_lock()
try:
    cli.run(clock.ticks_ms())
    res["idle_alloc"] = 0
except MemoryError:
    res["idle_alloc"] = 1
micropython.heap_unlock()

g = bytearray(10240)
x = 12345
for i in range(len(g)):
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    g[i] = x >> 16 & 0xFF
s.inq = g
worst = 0
runs = 0
t_all = time.ticks_us()
while s.inq or cli.term.unsent_bytes():
    t0 = time.ticks_us()
    cli.run(clock.ticks_ms())
    d = time.ticks_diff(time.ticks_us(), t0)
    worst = max(worst, d)
    runs += 1
    clock.advance_ms(20)
res["paste_runs"] = runs
res["paste_worst_us"] = worst
res["paste_total_ms"] = time.ticks_diff(time.ticks_us(), t_all) / 1000
print(json.dumps(res))
"""


def rows():
    r = json.loads(micropython(_SCRIPT).strip().splitlines()[-1])
    return [
        {"name": "PIN check: one slice (256 SHA-256 iterations)", "value": r["slice_us"],
         "unit": "us", "note": "micropython unix; one slice per CLI run"},
        {"name": "PIN check: whole login (4096 iterations)", "value": r["login_us"] / 1000,
         "unit": "ms", "note": "spread over 16 runs of the CLI job"},
        {"name": "CLI run with no input", "value": r["idle_us"], "unit": "us",
         "note": "micropython unix"},
        {"name": "CLI idle run allocates (heap_lock)", "value": r["idle_alloc"], "unit": "bool",
         "note": "0: no allocation"},
        {"name": "10 kB garbage paste: worst CLI run", "value": r["paste_worst_us"] / 1000,
         "unit": "ms", "note": "512 B in / 256 B out per run at most"},
        {"name": "10 kB garbage paste: runs to drain", "value": r["paste_runs"], "unit": "runs",
         "note": "at 20 ms a run; output-bound (echo and error lines)"},
    ]
