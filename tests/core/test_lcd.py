# The display (framebuf or its CPython twin, terminal and SSD1306 panels) and the LCD pages.
from binascii import unhexlify

from gateway.health.alarms import Alarms
from gateway.panel.lcd import PAGES, Lcd
from hal.display import SSD1306, Display, TerminalDisplay
from hal.virtualclock import VirtualClock
from tests.core.util import raises


class _Panel(Display):
    def __init__(self):
        super().__init__()
        self.shows = 0

    def show(self):
        self.shows += 1


def test_text_uses_the_framebuf_font_in_mono_vlsb():
    d = _Panel()
    d.fill(0)
    d.text("A", 0, 0, 1)
    assert bytes(d.buf[0:8]) == unhexlify("007c7e0b0b7e7c00")
    d.text("1", 8, 8, 1)
    assert bytes(d.buf[128 + 8 : 128 + 16]) == unhexlify("0040447f7f404000")
    d.text("\x01", 16, 0, 1)  # outside 32..127: the checkerboard
    assert bytes(d.buf[16:24]) == unhexlify("aa55aa55aa55aa55")


def test_pixels_lines_and_clipping():
    d = _Panel()
    d.fill(0)
    d.pixel(3, 9, 1)
    assert d.pixel(3, 9) == 1 and d.buf[128 + 3] == 0x02
    d.pixel(3, 9, 0)
    assert d.pixel(3, 9) == 0
    d.hline(120, 63, 20, 1)  # runs off the right edge
    assert d.pixel(127, 63) == 1 and d.pixel(119, 63) == 0
    d.fill_rect(-4, -4, 6, 6, 1)
    assert d.pixel(0, 0) == 1 and d.pixel(1, 1) == 1 and d.pixel(2, 2) == 0
    d.text("X", 124, 0, 1)  # clipped, no error
    d.fill(1)
    assert d.buf[0] == 0xFF and d.buf[1023] == 0xFF


def test_terminal_rendering_half_blocks_and_braille():
    d = TerminalDisplay(style="half")
    d.fill(0)
    d.pixel(0, 0, 1)
    d.pixel(1, 1, 1)
    d.pixel(2, 0, 1)
    d.pixel(2, 1, 1)
    lines = d.lines()
    assert len(lines) == 32 and len(lines[0]) == 128
    assert lines[0][:4] == "\u2580\u2584\u2588 "
    b = TerminalDisplay(style="braille")
    b.fill(0)
    b.pixel(0, 0, 1)
    b.pixel(1, 3, 1)
    lines = b.lines()
    assert len(lines) == 16 and len(lines[0]) == 64
    assert lines[0][0] == chr(0x2800 + 0x01 + 0x80) and lines[0][1] == chr(0x2800)
    raises(ValueError, TerminalDisplay, None, "color")


class _Out:
    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s


def test_terminal_show_writes_a_framed_picture():
    out = _Out()
    d = TerminalDisplay(out, "braille")
    d.fill(0)
    d.text("OK", 0, 0, 1)
    d.show()
    rows = out.text.split("\n")
    assert rows[0] == "+" + "-" * 64 + "+" and rows[1].startswith("|") and len(rows) == 19
    assert d.frames == 1


class _I2C:
    def __init__(self):
        self.writes = []

    def writeto(self, addr, buf):
        self.writes.append((addr, bytes(buf)))

    def writevto(self, addr, bufs):
        self.writes.append((addr, b"".join(bytes(b) for b in bufs)))


def test_ssd1306_initialises_and_sends_the_framebuffer():
    i2c = _I2C()
    d = SSD1306(i2c, 0x3C)
    d.start()
    cmds = [w[1][1] for w in i2c.writes if len(w[1]) == 2 and w[1][0] == 0x80]
    assert cmds[0] == 0xAE and 0x8D in cmds and cmds[cmds.index(0x8D) + 1] == 0x14
    assert 0xAF in cmds
    assert i2c.writes[-1][1] == b"\x40" + bytes(1024)
    i2c.writes = []
    d.text("A", 0, 0, 1)
    d.show()
    assert [w[1][1] for w in i2c.writes[:6]] == [0x21, 0, 127, 0x22, 0, 7]
    data = i2c.writes[-1]
    assert data[0] == 0x3C and data[1][1:9] == unhexlify("007c7e0b0b7e7c00")


def _values():
    return {
        "rate_tph": 812.44,
        "total_t": 123456.78,
        "day_t": 4321.0,
        "speed_mps": 2.503,
        "running": True,
        "load_pct": 81.2,
        "battery": False,
        "link": "ok",
        "center": True,
        "backlog": 3,
    }


class _LcdRig:
    def __init__(self, values=None):
        self.clock = VirtualClock()  # 2026-01-01 00:00 UTC
        self.alarms = Alarms(self.clock, lambda t, f: 0)
        self.alarms.start()
        self.panel = _Panel()
        self.v = values if values is not None else _values()
        p = {"production.utc_offset_min": 480}
        self.lcd = Lcd(self.panel, self.clock, lambda: self.v, self.alarms, p)
        self.lcd.start()

    def run(self, ms):
        for _ in range(ms // 500):
            self.clock.advance_ms(500)
            self.lcd.run(self.clock.ticks_ms())


def test_pages_cycle_and_show_the_values():
    r = _LcdRig()
    seen = {}
    for _ in range(len(PAGES) - 1):  # no terminals: no energy page
        r.run(3000)
        seen[PAGES[r.lcd.page]] = r.lcd.lines()
    assert r.lcd.page == 0  # back to the first page after a full cycle
    assert seen["rate"][0] == "RUN        08:00"
    assert seen["rate"][2] == "*812.4" and seen["rate"][4] == "LOAD 81%"
    assert seen["total"][2] == " 123456.8" and seen["total"][4] == " 4321.0"
    assert seen["speed"][2] == "*2.50"
    assert seen["running"][1:4] == ["BELT RUNNING", "LOAD 81%", "POWER MAINS"]
    assert seen["link"][1:5] == ["COLL ok", "CENTER UP", "", " backlog 3"]
    assert seen["alarms"][1:3] == ["ALARMS 0", " none"]
    assert seen["rate"][-1] == "OK     A0   1/6"
    assert seen["alarms"][-1] == "OK     A0   6/6"
    assert "energy" not in seen


def test_energy_page_with_power_terminals():
    v = _values()
    v["power"] = {"kw": 132.456, "kwh_per_t": 0.4321, "up": 1, "n": 2}
    r = _LcdRig(v)
    seen = {}
    for _ in range(len(PAGES)):
        r.run(3000)
        seen[PAGES[r.lcd.page]] = r.lcd.lines()
    assert r.lcd.page == 0
    assert seen["energy"][1:5] == ["DRIVE kW", "*132.5", "kWh/t 0.43", "METERS 1/2"]
    assert seen["energy"][-1] == "OK     A0   7/7"


def test_renders_only_when_something_changes():
    r = _LcdRig()
    assert r.panel.shows == 1  # start() draws the first page
    r.run(2000)  # same page, same values
    assert r.panel.shows == 1
    r.v["rate_tph"] = 700.0
    r.run(500)
    assert r.panel.shows == 2
    r.run(500)  # page turns at 3 s
    assert r.panel.shows == 3 and r.lcd.page == 1


def test_alarm_page_lists_active_codes():
    r = _LcdRig()
    a = r.alarms
    a.set("mains_lost", True)
    a.set("clock_not_set", True)
    a.raise_event("param_changed", "x")
    a.raise_event("job_failed", "x")
    r.clock.advance_ms(1000)
    a.run(r.clock.ticks_ms())
    r.lcd.page = PAGES.index("alarms")
    lines = r.lcd.lines()
    assert lines[1] == "ALARMS 4"
    assert lines[2:5] == ["clock_not_set", "job_failed", "param_changed"]
    assert lines[5] == "+1 more" and "A4" in lines[-1]


def test_missing_values_show_dashes():
    r = _LcdRig(values={})
    for page in range(len(PAGES) - 1):
        r.lcd.page = page
        for line in r.lcd.lines():
            assert "None" not in line
    r.lcd.page = 0
    assert r.lcd.lines()[0].startswith("--") and r.lcd.lines()[2] == "*--"


def test_big_digits_are_drawn_twice_the_size():
    r = _LcdRig()
    r.v["rate_tph"] = 1.0
    r.run(500)
    d = r.panel
    # "1" at twice size from y=24: the font's "1" column 3 (0x7f, rows 0-6) becomes
    # columns 6-7 lit from y=24 to y=37.
    assert d.pixel(6, 24) == 1 and d.pixel(7, 37) == 1 and d.pixel(6, 38) == 0
