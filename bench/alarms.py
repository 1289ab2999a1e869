# Costs of the alarm engine, the checks and the LCD on the real MicroPython interpreter
# (unix port on this PC: relative figures; a board is slower).
import json

from bench.util import micropython

_SCRIPT = r"""
import gc, json, sys, time
sys.path.insert(0, ".")
from gateway import config
from gateway.health.alarms import Alarms
from gateway.health.diag import Diagnostics
from gateway.health.identity import Identity
from gateway.panel.lcd import Lcd
from hal.virtualclock import VirtualClock
from hal.display import Display

class S:
    pass

class Slots:
    obj = None
    def load(self):
        return self.obj
    def save(self, o):
        self.obj = o

class Panel(Display):
    def show(self):
        pass

class Loop:
    max_late_ms = 0
    def stats(self):
        return {"poll": {"errors": 0, "overruns": 0, "period_ms": 100}}
    def stalled(self, now):
        return []

p = config.validate({"device_id": 1, "key_file": "k", "data_dir": "d",
    "collector": {"port": "x"}, "center": {"host": "h", "port": 1}})
c = VirtualClock()
recs = []
def emit(t, f):
    recs.append(len(json.dumps(f)))
    return len(recs)
gc.collect()
m0 = gc.mem_alloc()
a = Alarms(c, emit, lambda on: None, p)
ident = Identity(a, Slots(), c, 1)
link = {"state": "ok", "requests": 0, "responses": 0, "timeouts": 0, "crc_errors": 0,
        "exceptions": 0, "latency_ms_sum": 0, "latency_ms_max": 40, "consecutive_failures": 0}
d = Diagnostics(a, p, c, emit, ident, link=lambda: link,
    store=lambda: {"free_bytes": 1 << 26, "write_errors": 0, "corrupt_found": 0, "pending": 0},
    uplink=lambda: {"state": "up", "connected": True, "acked": 1, "backlog": 0},
    loop=Loop(), production=lambda: {"day_t": 1.0, "month_t": 2.0},
    running=lambda: {"running": True, "load_pct": 50.0})
a.start(); d.start()
s = S()
s.ticks_ms = 0; s.block_seq = 0; s.cells = [1000, 2000, 3000, 4000]; s.pulses = 0
s.freq_centihz = 25000; s.vib_rms_01mv = 180; s.di = 1; s.status = 0; s.supply_mv = 12000
s.temp_01c = 250; s.uptime_s = 10; s.config_counter = 1; s.wave_seq = 0
for k in range(20):
    for j in range(10):
        s.cells[0] = 1000 + (k * 10 + j) % 7
        d.on_sample(s)
    c.advance_ms(1000)
    d.run(c.ticks_ms()); a.run(c.ticks_ms())
gc.collect()
out = {"heap_bytes": gc.mem_alloc() - m0}
N = 5000
t0 = time.ticks_us()
for i in range(N):
    s.cells[0] = 1000 + i % 7
    d.on_sample(s)
out["on_sample_us"] = time.ticks_diff(time.ticks_us(), t0) / N
N = 300
t0 = time.ticks_us()
for i in range(N):
    c.advance_ms(1000)
    d.run(c.ticks_ms())
out["diag_run_us"] = time.ticks_diff(time.ticks_us(), t0) / N
t0 = time.ticks_us()
for i in range(N):
    a.run(c.ticks_ms())
out["alarms_run_us"] = time.ticks_diff(time.ticks_us(), t0) / N
t0 = time.ticks_us()
for i in range(N):
    a.set("supply_low", False, "")
out["alarms_set_us"] = time.ticks_diff(time.ticks_us(), t0) / N
t0 = time.ticks_us()
for i in range(50):
    r = d.report()
out["report_us"] = time.ticks_diff(time.ticks_us(), t0) / 50
out["report_bytes"] = len(json.dumps(r))
out["diag_record_bytes"] = len(json.dumps({"detail": d.report(compact=True)}))
values = {"rate_tph": 812.4, "total_t": 123456.7, "day_t": 4321.0, "speed_mps": 2.5,
          "running": True, "load_pct": 81, "battery": False, "link": "ok", "center": True,
          "backlog": 3}
lcd = Lcd(Panel(), c, lambda: values, a, p)
lcd.start()
t0 = time.ticks_us()
for i in range(20):
    values["rate_tph"] = 800.0 + i
    lcd.run(c.ticks_ms())
out["lcd_redraw_us"] = time.ticks_diff(time.ticks_us(), t0) / 20
t0 = time.ticks_us()
for i in range(100):
    lcd.run(c.ticks_ms())
out["lcd_unchanged_us"] = time.ticks_diff(time.ticks_us(), t0) / 100
print(json.dumps(out))
"""


def rows():
    f = json.loads(micropython(_SCRIPT).strip().splitlines()[-1])
    note = "MicroPython unix port"
    rows = [
        ("Diagnostics.on_sample (10 Hz, allocation-free)", "on_sample_us", "us", note),
        ("Diagnostics.run, every source wired (1 Hz)", "diag_run_us", "us", note),
        ("Alarms.run (1 Hz)", "alarms_run_us", "us", note),
        ("Alarms.set, no change", "alarms_set_us", "us", note),
        ("Diagnostics.report()", "report_us", "us", note),
        ("report() JSON size", "report_bytes", "bytes", "CLI / status"),
        ("diag record JSON size (all pass)", "diag_record_bytes", "bytes",
         "every 10 min; x52560 a year"),
        ("heap held by engine + checks + identity", "heap_bytes", "bytes", note),
        ("LCD page redraw (framebuf + big digits)", "lcd_redraw_us", "us", note),
        ("LCD run, nothing changed", "lcd_unchanged_us", "us", note),
    ]
    return [{"name": n, "value": f[k], "unit": u, "note": t} for n, k, u, t in rows]
