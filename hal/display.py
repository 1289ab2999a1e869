# The LCD (液晶显示): a 128x64 monochrome framebuffer in the SSD1306's own layout
# (MONO_VLSB: one byte is 8 pixels down a column, pages of 8 rows). On MicroPython it
# is the built-in framebuf.FrameBuffer; on CPython a small pure-Python one with the same
# methods and the same 8x8 font. A Display is that framebuffer plus show(), which puts
# it on a panel: SSD1306 over I2C on a board, TerminalDisplay in a terminal.
#
# The interface the pages use (gateway/panel/lcd.py): width, height, fill(c),
# text(s, x, y, c=1), hline(x, y, w, c), fill_rect(x, y, w, h, c), pixel(x, y[, c]), show().
from hal.compat import const

WIDTH = const(128)
HEIGHT = const(64)

try:
    from framebuf import MONO_VLSB, FrameBuffer
except ImportError:
    MONO_VLSB = 0
    FrameBuffer = None

# MicroPython's framebuf font (8x8, columns of 8 bits, LSB at the top), characters 32..127;
# 127 (a checkerboard) stands for anything outside that range, as in framebuf.
_FONT_HEX = (
    const("00000000000000000000004f4f0000000007070000070700147f7f14147f7f1400242e6b6b3a120000633318"
    "0c66630000327f4d4d777250000000040603010000001c3e63410000000041633e1c0000082a3e1c1c3e2a08"
    "0008083e3e080800000080e0600000000008080808080800000000606000000000406030180c0602003e7f49"
    "457f3e000040447f7f40400000627351494f460000226349497f360000181814167f7f1000276745457d3900"
    "003e7f49497b3200000303797d07030000367f49497f360000266f49497f3e000000002424000000000080e4"
    "6400000000081c3663414100001414141414140000414163361c080000020351590f0600003e7f414d4f2e00"
    "007c7e0b0b7e7c00007f7f49497f3600003e7f4141632200007f7f41633e1c00007f7f4949414100007f7f09"
    "09010100003e7f41497b3a00007f7f08087f7f000000417f7f410000002060417f3f0100007f7f1c36634100"
    "007f7f4040404000007f7f060c067f7f007f7f0e1c7f7f00003e7f41417f3e00007f7f09090f0600001e3f21"
    "617f5e00007f7f19396f460000266f49497b32000001017f7f010100003f7f40407f3f00001f3f60603f1f00"
    "007f7f3018307f7f0063771c1c77630000070f78780f0700006171594d47430000007f7f414100000002060c"
    "18306040000041417f7f000000080c06060c0800c0c0c0c0c0c0c0c0000001030604000000207454547c7800"
    "007f7f44447c380000387c44446c280000387c44447f7f0000387c54545c580000087e7f090302000098bca4"
    "a4fc7c00007f7f04047c78000000007d7d0000000040c08080fd7d00007f7f30386c44000000417f7f400000"
    "007c7c1830187c7c007c7c04047c780000387c44447c380000fcfc24243c180000183c2424fcfc00007c7c04"
    "040c080000485c545474200004043f7f44642000003c7c40407c3c00001c3c60603c1c00001c7c3018307c1c"
    "00446c38386c4400009cbca0a0fc7c00004464745c4c44000008083e77414100000000ffff00000000414177"
    "3e0808000002030103020301aa55aa55aa55aa55")
)
_font = None


class _PyFrameBuffer:
    """framebuf.FrameBuffer, MONO_VLSB only, for CPython."""

    def __init__(self, buf, width, height, fmt):
        if fmt != MONO_VLSB:
            raise ValueError("only MONO_VLSB")
        self._buf = buf
        self._w = width
        self._h = height

    def pixel(self, x, y, c=None):
        if not (0 <= x < self._w and 0 <= y < self._h):
            return None
        i = (y >> 3) * self._w + x
        bit = 1 << (y & 7)
        if c is None:
            return 1 if self._buf[i] & bit else 0
        if c:
            self._buf[i] |= bit
        else:
            self._buf[i] &= ~bit & 0xFF
        return None

    def fill(self, c):
        v = 0xFF if c else 0
        for i in range(len(self._buf)):
            self._buf[i] = v

    def fill_rect(self, x, y, w, h, c):
        for yy in range(max(0, y), min(self._h, y + h)):
            for xx in range(max(0, x), min(self._w, x + w)):
                self.pixel(xx, yy, c)

    def hline(self, x, y, w, c):
        self.fill_rect(x, y, w, 1, c)

    def vline(self, x, y, h, c):
        self.fill_rect(x, y, 1, h, c)

    def rect(self, x, y, w, h, c):
        self.hline(x, y, w, c)
        self.hline(x, y + h - 1, w, c)
        self.vline(x, y, h, c)
        self.vline(x + w - 1, y, h, c)

    def text(self, s, x, y, c=1):
        global _font
        if _font is None:
            from binascii import unhexlify

            _font = unhexlify("".join(_FONT_HEX))
        for ch in s:
            code = ord(ch)
            if code < 32 or code > 127:
                code = 127
            base = (code - 32) * 8
            for col in range(8):
                bits = _font[base + col]
                for row in range(8):
                    if bits >> row & 1:
                        self.pixel(x + col, y + row, c)
            x += 8


_Base = FrameBuffer if FrameBuffer is not None else _PyFrameBuffer


class Display(_Base):
    """A framebuffer that a panel shows. Subclasses define show()."""

    def __init__(self, width=WIDTH, height=HEIGHT):
        self.width = width
        self.height = height
        self.buf = bytearray(width * height // 8)
        super().__init__(self.buf, width, height, MONO_VLSB)


def terminal_size():
    """(columns, rows) of the terminal: $COLUMNS and $LINES where set (how the demo tells a
    MicroPython gateway, which cannot ask), else the OS's answer on CPython; (80, 24) when
    nobody knows (a pipe)."""
    import os

    try:
        return int(os.getenv("COLUMNS")), int(os.getenv("LINES"))
    except (TypeError, ValueError):
        pass
    try:
        return tuple(os.get_terminal_size(1))
    except (AttributeError, OSError):
        return 80, 24


class TerminalDisplay(Display):
    """The panel drawn with text characters. style "half": one character per 1x2
    pixels (128x32 characters); "braille": one per 2x4 pixels (64x16), for a terminal
    as small as 80x24; "fit": half if the terminal has room for it and spare_rows more
    rows below it, else braille."""

    def __init__(self, out=None, style="half", width=WIDTH, height=HEIGHT, spare_rows=0):
        if style == "fit":
            cols, rows = terminal_size()
            roomy = cols >= width + 2 and rows > height // 2 + spare_rows
            style = "half" if roomy else "braille"
        if style not in ("half", "braille"):
            raise ValueError("style must be 'half', 'braille' or 'fit'")
        super().__init__(width, height)
        self._out = out
        self.style = style
        self.frames = 0

    def lines(self):
        """The framebuffer as text lines."""
        if self.style == "half":
            return self._half()
        return self._braille()

    def _half(self):
        chars = (" ", "\u2580", "\u2584", "\u2588")  # none, upper, lower, both
        px = self.pixel
        out = []
        for y in range(0, self.height, 2):
            out.append("".join(chars[px(x, y) | px(x, y + 1) << 1] for x in range(self.width)))
        return out

    def _braille(self):
        dots = ((0, 0, 0x01), (0, 1, 0x02), (0, 2, 0x04), (1, 0, 0x08),
                (1, 1, 0x10), (1, 2, 0x20), (0, 3, 0x40), (1, 3, 0x80))
        out = []
        for y in range(0, self.height, 4):
            row = []
            for x in range(0, self.width, 2):
                v = 0
                for dx, dy, bit in dots:
                    if self.pixel(x + dx, y + dy):
                        v |= bit
                row.append(chr(0x2800 + v))
            out.append("".join(row))
        return out

    def show(self):
        self.frames += 1
        if self._out is None:
            return
        w = len(self.lines()[0]) if self.height else 0
        text = ["+" + "-" * w + "+"]
        for line in self.lines():
            text.append("|" + line + "|")
        text.append("+" + "-" * w + "+")
        self._out.write("\n".join(text) + "\n")


# SSD1306 commands (datasheet section 9).
_SET_CONTRAST = const(0x81)
_SET_ENTIRE_ON = const(0xA4)
_SET_NORM_INV = const(0xA6)
_SET_DISP = const(0xAE)
_SET_MEM_ADDR = const(0x20)
_SET_COL_ADDR = const(0x21)
_SET_PAGE_ADDR = const(0x22)
_SET_DISP_START_LINE = const(0x40)
_SET_SEG_REMAP = const(0xA0)
_SET_MUX_RATIO = const(0xA8)
_SET_COM_OUT_DIR = const(0xC0)
_SET_DISP_OFFSET = const(0xD3)
_SET_COM_PIN_CFG = const(0xDA)
_SET_DISP_CLK_DIV = const(0xD5)
_SET_PRECHARGE = const(0xD9)
_SET_VCOM_DESEL = const(0xDB)
_SET_CHARGE_PUMP = const(0x8D)


class SSD1306(Display):
    """A 128x64 OLED on I2C (machine.I2C: writeto / writevto), the board's panel."""

    def __init__(self, i2c, addr=0x3C, width=WIDTH, height=HEIGHT):
        super().__init__(width, height)
        self.i2c = i2c
        self.addr = addr
        self._cmd = bytearray(2)
        self._cmd[0] = 0x80  # Co=1, D/C#=0: one command byte follows
        self._prefix = b"\x40"  # Co=0, D/C#=1: display data follows

    def start(self):
        for c in (
            _SET_DISP,  # off while configuring
            _SET_MEM_ADDR, 0x00,  # horizontal addressing
            _SET_DISP_START_LINE,
            _SET_SEG_REMAP | 0x01,  # column 127 is SEG0
            _SET_MUX_RATIO, self.height - 1,
            _SET_COM_OUT_DIR | 0x08,  # scan from COM[N-1]
            _SET_DISP_OFFSET, 0x00,
            _SET_COM_PIN_CFG, 0x02 if self.width > 2 * self.height else 0x12,
            _SET_DISP_CLK_DIV, 0x80,
            _SET_PRECHARGE, 0xF1,
            _SET_VCOM_DESEL, 0x30,
            _SET_CONTRAST, 0xFF,
            _SET_ENTIRE_ON,  # follow RAM
            _SET_NORM_INV,
            _SET_CHARGE_PUMP, 0x14,  # internal charge pump
            _SET_DISP | 0x01,
        ):
            self._write_cmd(c)
        self.fill(0)
        self.show()

    def _write_cmd(self, c):
        self._cmd[1] = c
        self.i2c.writeto(self.addr, self._cmd)

    def show(self):
        for c in (_SET_COL_ADDR, 0, self.width - 1, _SET_PAGE_ADDR, 0, self.height // 8 - 1):
            self._write_cmd(c)
        self.i2c.writevto(self.addr, (self._prefix, self.buf))
