# The technician's terminal over a stream with the hal.uart interface: bytes in, lines
# out, with echo, backspace, Ctrl-U, escape sequences (cursor keys) ignored and a cap on
# the line; output queued and written a bounded slice at a time; a progress line redrawn
# in place. It never waits: next() takes what has arrived, flush() writes what fits.
from gateway.cli.syntax import MAX_LINE
from hal.compat import const

_READ_CHUNK = const(64)
_READS_PER_RUN = const(8)  # at most 512 bytes of input per run
_OUT_CHUNK = const(256)  # at most this much output per run
_OUT_BACKLOG = const(1024)  # no input is taken while more output than this waits
_OUT_CAP = const(8192)  # output waiting beyond this is dropped (and said so)

_BS = const(8)
_DEL = const(127)
_CR = const(13)
_LF = const(10)
_CTRL_C = const(3)
_CTRL_U = const(21)
_ESC = const(27)

# What next() returns besides a line.
INTERRUPT = const(1)  # Ctrl-C
TOO_LONG = const(2)  # a line over MAX_LINE, refused whole (the terminal has said so)


class Question:
    """An open question: the next line goes to on_line instead of the command parser."""

    def __init__(self, prompt, on_line, echo=True, on_cancel=None):
        self.prompt = prompt
        self.on_line = on_line
        self.echo = echo
        self.on_cancel = on_cancel


class Terminal:
    def __init__(self, stream):
        self.stream = stream
        self.echo = True  # False while a PIN is typed
        self.dropped_bytes = 0  # output dropped because the terminal did not take it
        self.typed = False  # input came during this run
        self._rx = bytearray(_READ_CHUNK)
        self._rx_at = 0  # _rx[_rx_at:_rx_end] is read and not yet taken
        self._rx_end = 0
        self._reads = 0  # stream reads in this run
        self._line = bytearray(MAX_LINE)
        self._line_len = 0
        self._overflow = False
        self._esc = 0  # 1 after ESC, 2 inside an escape sequence (arrow keys...)
        self._after_cr = False
        self._out = bytearray()
        self._dropped = False
        self._drawn = ""  # the progress line now on screen

    # -- input -------------------------------------------------------------------------

    def take(self, data):
        """Input read before this terminal existed (gateway/cli/port.py): taken first."""
        if len(data) > len(self._rx):
            self._rx = bytearray(len(data))
        self._rx[: len(data)] = data
        self._rx_at, self._rx_end = 0, len(data)

    def begin_run(self):
        self._reads = 0
        self.typed = False

    def next(self):
        """What the technician did next: a line (str), INTERRUPT or TOO_LONG; None once the
        input that has arrived (at most _READS_PER_RUN reads a run) is used up. Bytes not
        yet taken wait for the next call."""
        while True:
            if self._rx_at >= self._rx_end:
                if self._reads >= _READS_PER_RUN:
                    return None
                self._reads += 1
                n = self.stream.readinto(self._rx, 0)
                if not n:
                    return None
                self.typed = True
                self._rx_at, self._rx_end = 0, n
            b = self._rx[self._rx_at]
            self._rx_at += 1
            got = self._feed(b)
            if got is not None:
                return got

    def backlogged(self):
        """True while so much output waits that input should wait too."""
        return len(self._out) > _OUT_BACKLOG

    def unsent_bytes(self):
        return len(self._out)

    def idle(self):
        """Nothing typed on the line, read and not taken, or waiting to be said."""
        return not self._line_len and not self._out and self._rx_at >= self._rx_end

    def typing(self):
        return self._line_len > 0

    def clear_line(self):
        self._line_len = 0
        self._overflow = False

    def _feed(self, b):
        if self._esc and b >= 0x20:
            # ESC [ ... final byte, or ESC O x: cursor keys and the like are ignored.
            if self._esc == 1 and (b == 0x5B or b == 0x4F):
                self._esc = 2
            elif self._esc == 2 and 0x20 <= b < 0x40:
                return None
            else:
                self._esc = 0
            return None
        self._esc = 0  # a control byte ends an escape sequence and counts for itself
        if b == _CR or b == _LF:
            if b == _LF and self._after_cr:
                self._after_cr = False
                return None
            self._after_cr = b == _CR
            return self._end_line()
        self._after_cr = False
        if b == _ESC:
            self._esc = 1
        elif b == _BS or b == _DEL:
            if self._line_len:
                self._line_len -= 1
                if self.echo and not self._overflow:
                    self.write(b"\b \b")
        elif b == _CTRL_C:
            self.write(b"^C\r\n")
            self.clear_line()
            return INTERRUPT
        elif b == _CTRL_U:
            if self.echo and not self._overflow:
                self.write(b"\b \b" * self._line_len)
            self.clear_line()
        elif 0x20 <= b < 0x7F:
            if self._line_len >= len(self._line):
                if not self._overflow:
                    self._overflow = True
                    self.write(b"\x07")
                return None
            if self._line_len == 0 and self._drawn:
                self.write(b"\r\n> ")  # typing under a progress line: start a fresh line
                self._drawn = ""
            self._line[self._line_len] = b
            self._line_len += 1
            if self.echo:
                self.write(bytes((b,)))
        # Other control bytes and non-ASCII are ignored.
        return None

    def _end_line(self):
        text = bytes(self._line[: self._line_len]).decode()
        over = self._overflow
        self.clear_line()
        self.write(b"\r\n")
        self._drawn = ""
        if over:
            self.say("error: line too long (at most %d characters); nothing done" % MAX_LINE)
            return TOO_LONG
        return text

    # -- output ------------------------------------------------------------------------

    def write(self, data):
        if len(self._out) + len(data) > _OUT_CAP:
            self.dropped_bytes += len(data)
            self._dropped = True
            return
        if self._dropped:
            self._dropped = False
            self._out += b"\r\n[output dropped]\r\n"
        self._out += data

    def say(self, text):
        """One or more lines (\\n between them)."""
        self.write(text.replace("\n", "\r\n").encode() + b"\r\n")

    def say_lines(self, lines):
        for line in lines:
            self.say(line)

    def draw(self, text):
        """Show text as the progress line, over the one drawn before."""
        pad = len(self._drawn) - len(text)
        self.write(("\r" + text + (" " * pad if pad > 0 else "")).encode())
        self._drawn = text

    def drawn(self):
        return self._drawn

    def end_draw(self):
        """Leave the progress line as it is and go on below it."""
        if self._drawn:
            self.write(b"\r\n")
            self._drawn = ""

    def forget_draw(self):
        self._drawn = ""

    def flush(self):
        """Write at most _OUT_CHUNK bytes of what waits (OSError: the stream's)."""
        out = self._out
        if not out:
            return
        if len(out) <= _OUT_CHUNK:
            self._out = bytearray()
            self.stream.write(out)
        else:
            self.stream.write(out[:_OUT_CHUNK])
            self._out = out[_OUT_CHUNK:]
