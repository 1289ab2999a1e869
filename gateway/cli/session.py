# The technician CLI: a loop job that serves one line-oriented terminal (a serial port or
# the console) through a stream with the hal.uart interface. Each run takes what input has
# arrived (never waiting), edits the line with echo and backspace, executes at most what
# was typed, steps a running calibration or PIN check, and writes a bounded slice of the
# output, so the 10 Hz poll never waits on a technician, however slowly they type or
# whatever they paste. Reading is open; changes need a technician login and a confirmation.
import json

from gateway import FIRMWARE_VERSION, ondemand
from gateway.cli import syntax
from gateway.cli.auth import MAX_FAILURES, AuthError, check_tech_id
from gateway.cli.port import banner
from hal.compat import const, print_exception

_READ_CHUNK = const(64)
_READS_PER_RUN = const(8)  # at most 512 bytes of input per run
_OUT_CHUNK = const(256)  # at most this much output per run
_OUT_BACKLOG = const(1024)  # no input is taken while more output than this waits
_OUT_CAP = const(8192)  # output waiting beyond this is dropped (and said so)
_DRAW_MS = const(250)  # the progress bar is redrawn at most 4 times a second
_HASH_STEP = const(256)  # PIN-hash iterations per run
_PAGE = const(20)  # records per page
_RECORD_CHARS = const(300)
_RECENT_S = const(300)
_RETRY_MS = const(1000)  # pause after a stream error
_BAR = const(20)
_BAR_CHARS = const(78)

_BS = const(8)
_DEL = const(127)
_CR = const(13)
_LF = const(10)
_CTRL_C = const(3)
_CTRL_U = const(21)
_ESC = const(27)

# Commands that change something: login first.
_CHANGES = const(("set", "cal", "coef.set", "time.set", "output", "register", "alarms.ack"))
# Exceptions from the facade that carry a message for the technician.
_USER_ERRORS = const(("ConfigError", "CalibrationError", "AuthError", "AlarmError", "ValueError",
                "UsageError"))


def _fmt(v):
    if isinstance(v, float):
        return "%.7g" % v
    if isinstance(v, (list, dict, bool)) or v is None:
        return json.dumps(v)  # the form `set` takes
    return str(v)


def _num(v, form):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return form % v
    return "?"


def _fmt_kg(v):
    if isinstance(v, dict):
        return ", ".join("%s %s" % (k, _fmt_kg(v[k])) for k in sorted(v))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return "%.3f t" % (v / 1000)
    return _fmt(v)


def _pairs(d, skip=()):
    return ", ".join("%s=%s" % (k, _fmt(d[k])) for k in sorted(d) if k not in skip)


def _clip(text, n):
    return text if len(text) <= n else text[: n - 3] + "..."


class _Ask:
    """An open question: the next line goes to on_line instead of the command parser."""

    def __init__(self, prompt, on_line, echo=True, on_cancel=None):
        self.prompt = prompt
        self.on_line = on_line
        self.echo = echo
        self.on_cancel = on_cancel


class Cli:
    def __init__(self, gw, stream, auth, clock, name="cli"):
        self.gw = gw
        self.stream = stream
        self.auth = auth
        self.clock = clock
        self.name = name
        self.errors = 0  # stream errors
        self.dropped_bytes = 0  # output dropped because the terminal did not take it
        self._rx = bytearray(_READ_CHUNK)
        self._line = bytearray(syntax.MAX_LINE)
        self._n = 0
        self._overflow = False
        self._esc = 0  # 1 after ESC, 2 inside an escape sequence (arrow keys...)
        self._after_cr = False
        self._out = bytearray()
        self._held = b""  # input read but not yet taken (at most one read's worth)
        self._dropped = False
        self._retry_at = None
        self._ask = None
        self._check = None  # a PIN check being computed
        self._cal = None
        self._cal_kind = None
        self._cal_hint = ""
        self._cal_marks = 0  # Enter presses (belt marks) the calibration still waits for
        self._cal_mass = False  # waiting for a weighed mass (material test)
        self._drawn = ""
        self._draw_at = 0
        self._tz = 0
        self._input_ms = clock.ticks_ms()  # when input last came

    # -- job ---------------------------------------------------------------------------

    def start(self, greet=True):
        """greet=False: the port watcher (gateway/cli/port.py) has greeted already."""
        self.apply_params(self.gw.params())
        if not greet:
            return
        self._say(banner(self.gw.identity().get("device_id")))
        self._prompt()
        try:
            self._flush()
        except OSError:  # no terminal yet: the banner is lost, the CLI is not
            self.errors += 1

    def apply_params(self, params):
        """Take the run-time parameters this job uses (call after any change)."""
        self._tz = params.get("production.utc_offset_min", 0)
        self.auth.idle_logout_s = params.get("cli.idle_logout_s", self.auth.idle_logout_s)

    def snapshot(self):
        return {"auth": self.auth.snapshot()}

    def restore(self, state, elapsed_ms=0):
        self.auth.restore(state.get("auth", {}), elapsed_ms)

    def take(self, data, now_ms):
        """Input the port watcher read before this CLI was loaded: taken first."""
        self._held = data
        self._input_ms = now_ms

    def at_rest(self, now_ms, quiet_ms):
        """True when nobody is logged in, nothing is asked, checked, calibrating or
        waiting to be said, login is not locked, and no input came for quiet_ms: the
        port watcher may unload the CLI (the terminal shows the gw> prompt)."""
        return (self.auth.tech_id is None and self._ask is None and self._check is None
                and self._cal is None and not self._n and not self._out and not self._held
                and not self.auth.locked_s(now_ms)
                and self.clock.ticks_diff(now_ms, self._input_ms) >= quiet_ms)

    def run(self, now_ms):
        c = self.clock
        if self._retry_at is not None:
            if c.ticks_diff(now_ms, self._retry_at) < 0:
                return
            self._retry_at = None
        try:
            self._read(now_ms)
            self._tick(now_ms)
            self._flush()
        except OSError:  # UartError: the terminal went away; try again later
            self.errors += 1
            self._retry_at = c.ticks_add(now_ms, _RETRY_MS)

    # -- input -------------------------------------------------------------------------

    def _held_back(self):
        # Say what is due (or finish checking a PIN) before taking more input: it waits,
        # in the driver or in _held, and is then taken in order.
        return self._check is not None or len(self._out) > _OUT_BACKLOG

    def _read(self, now_ms):
        if self._held:
            if self._held_back():
                return
            held = self._held
            self._held = b""
            i = self._feed_all(held, len(held), now_ms)
            if i < len(held):
                self._held = held[i:]
                return
        rx = self._rx
        for _ in range(_READS_PER_RUN):
            if self._held_back():
                return
            n = self.stream.readinto(rx, 0)
            if not n:
                return
            self.auth.touch(now_ms)
            self._input_ms = now_ms
            i = self._feed_all(rx, n, now_ms)
            if i < n:
                self._held = bytes(rx[i:n])
                return

    def _feed_all(self, buf, n, now_ms):
        """Feed buf[:n] until input must wait; returns how many bytes were taken."""
        for i in range(n):
            self._feed(buf[i], now_ms)
            if self._held_back():
                return i + 1
        return n

    def _echo_on(self):
        return self._ask is None or self._ask.echo

    def _feed(self, b, now_ms):
        if self._esc and b >= 0x20:
            # ESC [ ... final byte, or ESC O x: cursor keys and the like are ignored.
            if self._esc == 1 and (b == 0x5B or b == 0x4F):
                self._esc = 2
            elif self._esc == 2 and 0x20 <= b < 0x40:
                return
            else:
                self._esc = 0
            return
        self._esc = 0  # a control byte ends an escape sequence and counts for itself
        if b == _CR or b == _LF:
            if b == _LF and self._after_cr:
                self._after_cr = False
                return
            self._after_cr = b == _CR
            self._end_line(now_ms)
            return
        self._after_cr = False
        if b == _ESC:
            self._esc = 1
        elif b == _BS or b == _DEL:
            if self._n:
                self._n -= 1
                if self._echo_on() and not self._overflow:
                    self._write(b"\b \b")
        elif b == _CTRL_C:
            self._interrupt()
        elif b == _CTRL_U:
            if self._echo_on() and not self._overflow:
                self._write(b"\b \b" * self._n)
            self._n = 0
            self._overflow = False
        elif 0x20 <= b < 0x7F:
            if self._n >= len(self._line):
                if not self._overflow:
                    self._overflow = True
                    self._write(b"\x07")
                return
            if self._n == 0 and self._drawn:
                self._write(b"\r\n> ")  # typing under a progress bar: start a fresh line
                self._drawn = ""
            self._line[self._n] = b
            self._n += 1
            if self._echo_on():
                self._write(bytes((b,)))
        # Other control bytes and non-ASCII are ignored.

    def _interrupt(self):
        self._write(b"^C\r\n")
        self._n = 0
        self._overflow = False
        ask = self._ask
        self._ask = None
        if ask is not None and ask.on_cancel is not None:
            self._guarded(ask.on_cancel, None)
        elif self._cal is not None:
            self._guarded(self._cal_cancel, None)
        self._prompt()

    def _end_line(self, now_ms):
        text = bytes(self._line[: self._n]).decode()
        self._n = 0
        over = self._overflow
        self._overflow = False
        self._write(b"\r\n")
        self._drawn = ""
        if over:
            self._say("error: line too long (at most %d characters); nothing done"
                      % syntax.MAX_LINE)
        elif self._ask is not None:
            ask = self._ask
            self._ask = None
            self._guarded(ask.on_line, None, text)
        elif self._cal is not None:
            self._guarded(self._cal_line, "cal", text)
            return  # the progress bar or the result follows
        else:
            self._command(text, now_ms)
        self._prompt()

    def _prompt(self):
        if self._check is not None or (self._cal is not None and self._ask is None):
            return
        if self._ask is not None:
            self._write(self._ask.prompt.encode())
        elif self.auth.tech_id is not None:
            self._write(("gw:%s> " % self.auth.tech_id).encode())
        else:
            self._write(b"gw> ")

    # -- output ------------------------------------------------------------------------

    def _write(self, data):
        if len(self._out) + len(data) > _OUT_CAP:
            self.dropped_bytes += len(data)
            self._dropped = True
            return
        if self._dropped:
            self._dropped = False
            self._out += b"\r\n[output dropped]\r\n"
        self._out += data

    def _say(self, text):
        self._write(text.replace("\n", "\r\n").encode() + b"\r\n")

    def _say_lines(self, lines):
        for line in lines:
            self._say(line)

    def _flush(self):
        out = self._out
        if not out:
            return
        if len(out) <= _OUT_CHUNK:
            self._out = bytearray()
            self.stream.write(out)
        else:
            self.stream.write(out[:_OUT_CHUNK])
            self._out = out[_OUT_CHUNK:]

    # -- periodic ----------------------------------------------------------------------

    def _tick(self, now_ms):
        if self._check is not None and self._check.step(_HASH_STEP):
            self._login_done(now_ms)
        if self._cal is not None and self._ask is None and self._n == 0:
            self._guarded(self._cal_tick, "cal", now_ms)
        tech_id = self.auth.tech_id
        if self.auth.idle_expired(now_ms):
            self._idle_logout("tech:" + tech_id)

    def _idle_logout(self, who):
        if self._cal is not None:
            self._guarded(self._cal_cancel, None)
        self._ask = None
        self._n = 0
        self._write(b"\r\n")
        self._say("logged out: idle for %d s" % self.auth.idle_logout_s)
        self._event("logout", {"who": who, "reason": "idle"})
        self._prompt()

    def _event(self, code, detail):
        self.gw.emit("event", {"code": code, "detail": detail})

    def _guarded(self, fn, usage_of, *args):
        """Run fn; a facade error becomes one line for the technician, nothing more."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - the CLI must outlive any one command
            self._say_error(e, usage_of)

    def _say_error(self, e, usage_of):
        name = type(e).__name__
        msg = getattr(e, "reason", None) or str(e)
        if name not in _USER_ERRORS:
            print_exception(e)
            msg = "internal error (%s: %s)" % (name, msg)
        use = syntax.usage(usage_of) if usage_of else None
        self._say("error: %s; usage: %s" % (msg, use) if use else "error: " + msg)

    # -- commands ----------------------------------------------------------------------

    def _command(self, text, now_ms):
        try:
            parsed = syntax.parse(text, self._tz)
        except syntax.UsageError as e:
            self._say(e.line())
            return
        if parsed is None:
            return
        name, args = parsed
        if name in _CHANGES and self.auth.tech_id is None:
            self._say("error: %s needs a technician login; usage: login [ID]" % name.split(".")[0])
            return
        self.apply_params(self.gw.params())
        handler = getattr(self, "_do_" + name.replace(".", "_"))
        usage_of = name.replace(".", " ")
        if name == "cal":
            usage_of = "cal " + args["kind"]
        self._guarded(handler, usage_of, args, now_ms)

    def _confirm(self, lines, on_yes):
        self._say_lines(lines)

        def answer(text):
            v = syntax.parse_yes_no(text)
            if v is None:
                self._say("please answer yes or no")
                self._ask = ask
            elif v:
                on_yes()
            else:
                self._say("not applied; nothing changed")

        ask = _Ask("confirm? (yes/no) ", answer)
        self._ask = ask

    def _do_help(self, args, now_ms):
        self._say_lines(syntax.help_text(args["cmd"]))

    def _do_status(self, args, now_ms):
        s = self.gw.status()
        link = s.get("link") or {}
        up = s.get("uplink") or {}
        alarms = s.get("alarms") or []
        self._say_lines([
            "time     %s" % syntax.format_time(s.get("time", self.gw.time()), self._tz),
            "running  %s" % ("yes" if s.get("running") else "no"),
            "rate     %s t/h" % _num(s.get("rate_tph"), "%.1f"),
            "speed    %s m/s" % _num(s.get("speed_mps"), "%.2f"),
            "load     %s kg/m" % _num(s.get("load_kgpm"), "%.2f"),
            "total    %s" % _fmt_kg(s.get("total_kg", 0)),
            "totals   %s" % (_fmt_kg(s["totals"]) if s.get("totals") else "none yet"),
            "link     %s %s" % (link.get("state", "?"), _pairs(link, ("state",))),
            "uplink   %s %s" % (up.get("state", "?"), _pairs(up, ("state",))),
            "alarms   %s" % (", ".join(str(a) for a in alarms) if alarms else "none"),
        ])
        if s.get("power"):  # power terminals (docs/power.md)
            self._say_lines(_power_lines(s["power"]))

    def _do_show(self, args, now_ms):
        what = args["what"]
        if what == "params":
            p = self.gw.params()
            prefix = args["prefix"]
            keys = [k for k in sorted(p) if k.startswith(prefix)]
            if not keys:
                self._say("no parameter starts with %s" % prefix)
            settable = ondemand.call("gateway.config", "settable_keys")  # schema for this only
            for k in keys:
                mark = "*" if k in settable else " "
                self._say("%s %s = %s" % (mark, k, _fmt(p[k])))
            self._say("(* can be set at run time)")
        elif what == "calibration":
            p = self.gw.params()
            for k in sorted(p):
                if k.startswith("scale."):
                    self._say("%s = %s" % (k, _fmt(p[k])))
            c = self.gw.coef()
            self._say("coef = %s since %s" % (_fmt(c.get("value")), self._when(c.get("since"))))
        elif what == "identity":
            ident = self.gw.identity()
            self._say("device_id  %s" % ident.get("device_id"))
            self._say("firmware   %s" % FIRMWARE_VERSION)
            col = ident.get("collector") or {}
            self._say("collector  %s" % (_pairs(col) if isinstance(col, dict) else _fmt(col)))
            for i, sensor in enumerate(ident.get("sensors") or []):
                text = _pairs(sensor) if isinstance(sensor, dict) else _fmt(sensor)
                self._say("sensor %d   %s" % (i + 1, text))
            reg = ident.get("registered")
            if reg:
                self._say("registered %s" % (_pairs(reg) if isinstance(reg, dict) else _fmt(reg)))
        else:
            s = self.gw.status()
            self._say("total     %s" % _fmt_kg(s.get("total_kg", 0)))
            totals = s.get("totals") or {}
            for k in ("interval", "shift", "day", "month", "year"):
                if k in totals:
                    self._say("%-9s %s" % (k, _fmt_kg(totals[k])))

    def _when(self, t):
        if isinstance(t, (int, float)) and not isinstance(t, bool):
            return syntax.format_time(t, self._tz)
        return _fmt(t)

    def _do_set(self, args, now_ms):
        changes = args["changes"]
        params = self.gw.params()
        lines = []
        for k in sorted(changes):
            lines.append("%s: %s -> %s" % (k, _fmt(params.get(k)), _fmt(changes[k])))
        who = self.auth.who

        def apply():
            done = self.gw.set_params(changes, who)
            self.apply_params(self.gw.params())
            if done:
                self._say_applied(done)
            else:
                self._say("nothing changed (already in force)")

        self._confirm(lines, self._wrap(apply, "set"))

    def _wrap(self, fn, usage_of):
        return lambda: self._guarded(fn, usage_of)

    def _do_coef(self, args, now_ms):
        c = self.gw.coef()
        self._say("coef %s, effective since %s"
                  % (_fmt(c.get("value")), self._when(c.get("since"))))
        hist = c.get("history") or []
        if hist:
            self._say("history (effective time, value):")
            for item in hist[-10:]:
                self._say("  %s  %s" % (self._when(item[0]), _fmt(item[1])))

    def _do_coef_set(self, args, now_ms):
        value = args["value"]
        effective = args["effective_t"]
        if effective is None:
            effective = int(self.gw.time())
        old = self.gw.coef().get("value")
        who = self.auth.who

        def apply():
            self.gw.set_coef(value, effective, who)
            self._say("applied coef %s -> %s, effective %s" % (_fmt(old), _fmt(value),
                                                              self._when(effective)))

        self._confirm(["coef: %s -> %s, effective %s" % (_fmt(old), _fmt(value),
                                                        self._when(effective))],
                      self._wrap(apply, "coef set"))

    def _do_alarms(self, args, now_ms):
        active = self.gw.alarms_active()
        if not active:
            self._say("no active alarms")
        for a in active:
            self._say("%-20s since %s  %s" % (a.get("code"), self._when(a.get("since")),
                                               _fmt(a.get("detail", ""))))

    def _do_alarms_ack(self, args, now_ms):
        code = args["code"]
        if self.gw.ack_alarm(code, self.auth.who):
            self._say("%s acknowledged" % code)
        else:
            self._say("%s is not active; nothing changed" % code)

    def _do_diag(self, args, now_ms):
        rep = self.gw.diag_report()
        for c in rep.get("checks") or []:
            fig = c.get("figures")
            fig = _pairs(fig) if isinstance(fig, dict) else _fmt(fig if fig is not None else "")
            self._say("%-20s %-6s %s" % (c.get("name"), c.get("result"), fig))
        summary = rep.get("summary")
        if summary:
            self._say("summary: %s" % (_pairs(summary) if isinstance(summary, dict)
                                       else _fmt(summary)))

    def _do_log(self, args, now_ms):
        events = self.gw.maintenance_log(args["n"])
        if not events:
            self._say("no maintenance events")
        for r in events:
            self._say(self._record_line(r))

    def _record_line(self, r):
        rest = {}
        for k in r:
            if k not in ("seq", "t", "type"):
                rest[k] = r[k]
        head = "#%s %s %s " % (r.get("seq"), self._when(r.get("t")), r.get("type"))
        return _clip(head + json.dumps(rest), _RECORD_CHARS)

    def _do_records(self, args, now_ms):
        mode = args["mode"]
        last = None
        if mode == "seq":
            last = args["to"]
            n = _PAGE if last is None else min(_PAGE, last - args["from"] + 1)
            recs = self.gw.records(args["from"], n)
            recs = [r for r in recs if last is None or r.get("seq", 0) <= last]
        else:
            if mode == "recent":
                t1 = self.gw.time()
                t0 = t1 - _RECENT_S
            else:
                t0, t1 = args["t0"], args["t1"]
            recs = self.gw.records_time(t0, t1, _PAGE)
        if not recs:
            self._say("no records")
            return
        for r in recs:
            self._say(self._record_line(r))
        top = recs[-1].get("seq", 0)
        if len(recs) >= _PAGE and (last is None or top < last):
            more = "records seq %d..%s" % (top + 1, "" if last is None else last)
            if mode != "seq":
                more += "  (up to %s)" % self._when(t1)
            self._say("more: " + more)

    def _do_time(self, args, now_ms):
        t = self.gw.time()
        self._say("%s (unix %d, UTC%+.1f h)" % (syntax.format_time(t, self._tz), int(t),
                                              self._tz / 60))

    def _do_time_set(self, args, now_ms):
        new = args["t"]
        old = self.gw.time()
        who = self.auth.who

        def apply():
            self.gw.set_time(new, who)
            self._say("clock set to %s" % syntax.format_time(new, self._tz))

        self._confirm(["clock: %s -> %s (step %+d s)" % (syntax.format_time(old, self._tz),
                                                         syntax.format_time(new, self._tz),
                                                         int(new - old))],
                      self._wrap(apply, "time set"))

    def _do_output(self, args, now_ms):
        do, on = args["do"], args["on"]
        who = self.auth.who

        def apply():
            self.gw.set_output(do, on, who)
            self._say("output %d %s" % (do, "on" if on else "off"))

        self._confirm(["switch output %d -> %s" % (do, "on" if on else "off")],
                      self._wrap(apply, "output"))

    def _do_register(self, args, now_ms):
        ident = self.gw.identity()
        who = self.auth.who

        def apply():
            self.gw.register_units(who)
            self._say("registered; device_swap cleared")

        col = ident.get("collector") or {}
        self._confirm(["registered now: collector %s, sensors %s"
                       % (col.get("serial", "?") if isinstance(col, dict) else col,
                          _fmt(ident.get("sensors") or [])),
                       "the units the collector reports now become the registered ones"],
                      self._wrap(apply, "register"))

    # -- login -------------------------------------------------------------------------

    def _do_login(self, args, now_ms):
        if self.auth.tech_id is not None:
            self._say("error: logged in as %s; logout first" % self.auth.tech_id)
            return
        left = self.auth.locked_s(now_ms)
        if left:
            self._say("error: login locked for %d s after %d failures" % (left, MAX_FAILURES))
            return
        if args["id"] is None:
            self._ask = _Ask("id: ", self._login_id)
        else:
            self._ask_pin(args["id"])

    def _login_id(self, text):
        text = text.strip()
        if not text:
            return
        try:
            self._ask_pin(check_tech_id(text))
        except AuthError as e:
            self._say("error: %s; usage: login [ID]" % e)

    def _ask_pin(self, tech_id):
        self._ask = _Ask("PIN: ", lambda pin: self._login_pin(tech_id, pin), echo=False)

    def _login_pin(self, tech_id, pin):
        now = self.clock.ticks_ms()
        try:
            self._check = self.auth.begin(tech_id, pin, now)
        except AuthError as e:
            self._say("error: %s" % e)

    def _login_done(self, now_ms):
        check = self._check
        self._check = None
        tech_id = check.tech_id
        if self.auth.finish(check, now_ms):
            name = self.auth.name()
            self._say("logged in as %s%s" % (tech_id, " (%s)" % name if name else ""))
            self._event("login", {"who": self.auth.who})
        else:
            failures = self.auth.failures
            self._event("login_failed", {"id": tech_id, "failures": failures})
            left = self.auth.locked_s(now_ms)
            if left:
                self._say("error: wrong id or PIN; login locked for %d s" % left)
                self._event("login_locked", {"id": tech_id, "lock_s": left})
            else:
                self._say("error: wrong id or PIN (%d of %d tries)" % (failures, MAX_FAILURES))
        self._prompt()

    def _do_logout(self, args, now_ms):
        who = self.auth.who
        if who is None:
            self._say("not logged in")
            return
        self.auth.logout()
        self._event("logout", {"who": who, "reason": "command"})
        self._say("logged out")

    # -- calibration -------------------------------------------------------------------
    # Progress and results are read tolerantly: the facade's names (revolutions_done,
    # revolutions_target, message, proposal(), within_limits) or the calibration module's
    # (revs_done, revs_needed, error, result {old, new, change_pct, limit_pct}).

    def _do_cal(self, args, now_ms):
        kind, cargs = args["kind"], args["args"]
        marks = 0
        mass = kind == "material" or (kind == "lin" and "start" in cargs)
        if kind == "speed":
            if "distance_m" in cargs:
                marks = 2
                hint = ("press Enter when the belt mark passes the start point, then when it "
                        "passes the stop point %g m on" % cargs["distance_m"])
            else:
                marks = cargs["revolutions"] + 1
                hint = ("press Enter each time the belt mark passes the reference point: now "
                        "and after each of %d revolutions" % cargs["revolutions"])
        elif mass:
            hint = "type the weighed mass of the batch in t once it has passed"
        else:
            hint = "Ctrl-C or cancel stops it"
        cal = self.gw.cal_start(kind, cargs, self.auth.who)
        self._cal = cal
        self._cal_kind = kind
        self._cal_marks = marks
        self._cal_mass = mass
        self._cal_hint = hint
        self._drawn = ""
        self._draw_at = self.clock.ticks_add(self.clock.ticks_ms(), -_DRAW_MS)
        self._say("%s calibration running; %s" % (kind, hint))

    def _bar(self, p):
        done = p.get("revolutions_done", p.get("revs_done")) or 0
        target = p.get("revolutions_target", p.get("revs_needed"))
        msg = p.get("message") or ""
        if not msg and isinstance(p.get("measured_kg"), (int, float)):
            msg = "measured %.3f t" % (p["measured_kg"] / 1000)
        if "marks" in p:
            msg = "marks %s  %s" % (p["marks"], msg)
        if p.get("state") == "draining":
            msg += " (finishing)"
        if target:
            k = int(min(max(done / target, 0.0), 1.0) * _BAR)
            text = "[%s%s] %.2f/%g rev  %s" % ("#" * k, "." * (_BAR - k), done, target, msg)
        else:
            text = "%.2f rev  %s" % (done, msg)
        return _clip(text, _BAR_CHARS)

    def _draw(self, text):
        pad = len(self._drawn) - len(text)
        self._write(("\r" + text + (" " * pad if pad > 0 else "")).encode())
        self._drawn = text

    def _cal_tick(self, now_ms):
        p = self._cal.progress()
        state = p.get("state")
        if state in ("running", "draining"):
            self.auth.touch(now_ms)  # a long calibration is not idleness
            if self.clock.ticks_diff(now_ms, self._draw_at) >= _DRAW_MS:
                self._draw_at = now_ms
                text = self._bar(p)
                if text != self._drawn:
                    self._draw(text)
            return
        if self._drawn:
            self._draw(self._bar(p))
            self._write(b"\r\n")
            self._drawn = ""
        if state == "done":
            self._cal_result(p)
            return
        self._cal = None
        if state == "failed":
            why = p.get("message") or p.get("error") or "?"
            self._say("%s calibration failed: %s; nothing changed" % (self._cal_kind, why))
        else:
            self._say("%s calibration ended elsewhere; nothing changed" % self._cal_kind)
        self._prompt()

    def _cal_line(self, text):
        word = text.strip().lower()
        if word in ("cancel", "c", "no"):
            self._cal_cancel()
            self._prompt()
            return
        if word == "" and self._cal_marks:
            self._cal.mark()
            self._cal_marks -= 1
            self._cal_hint = ("mark taken; %d more" % self._cal_marks if self._cal_marks
                              else "last mark taken")
            return
        if word and self._cal_mass:
            try:
                mass = syntax.number(word, "the mass in t", 0.001, 100000.0)
            except syntax.UsageError as e:
                self._say("error: %s; %s, or cancel" % (e.reason, self._cal_hint))
                return
            nxt = self.gw.cal_start(self._cal_kind, {"known_t": mass}, self.auth.who)
            if nxt is not None:
                self._cal = nxt
            self._cal_mass = False
            return
        if word:
            self._say("a calibration is running: %s; Ctrl-C or cancel stops it" % self._cal_hint)

    def _cal_cancel(self):
        cal = self._cal
        self._cal = None
        self._drawn = ""
        if cal is not None:
            self.gw.cal_cancel(cal)
            self._say("%s calibration cancelled; nothing changed" % self._cal_kind)

    def _cal_result(self, p):
        cal = self._cal
        result = p.get("result")
        if not isinstance(result, dict):
            result = {}
        proposal = cal.proposal() if hasattr(cal, "proposal") else None
        if not proposal and isinstance(result.get("new"), dict):
            old = result.get("old") or {}
            proposal = {}
            for k in result["new"]:
                proposal[k] = [old.get(k), result["new"][k]]
        proposal = proposal or {}
        head = "%s calibration done" % self._cal_kind
        if p.get("message"):
            head += ": " + p["message"]
        lines = [head]
        for k in sorted(proposal):
            old, new = proposal[k][0], proposal[k][1]
            delta = ""
            if isinstance(old, int) and isinstance(new, int) and not isinstance(old, bool):
                delta = "  (%+d)" % (new - old)
            elif isinstance(old, float) and isinstance(new, float) and old:
                delta = "  (%+.3f %%)" % ((new - old) * 100.0 / old)
            lines.append("  %s: %s -> %s%s" % (k, _fmt(old), _fmt(new), delta))
        figures = _pairs(result, ("old", "new"))
        if figures:
            lines.append("  " + figures)
        if not proposal:
            lines.append("  nothing to change")
            self._say_lines(lines)
            self._cal_cancel()
            self._prompt()
            return
        within = getattr(cal, "within_limits", None)
        limit = getattr(cal, "limit_message", "")
        if within is None:
            change, lim = result.get("change_pct"), result.get("limit_pct")
            within = change is None or lim is None or abs(change) <= lim
            if not within:
                limit = "change %.3f %% of design load, limit %.3f %%" % (change, lim)
        if not within:
            lines.append("  outside the limit: %s" % (limit or "?"))
        self._say_lines(lines)
        self._ask_apply(not within)
        self._prompt()

    def _ask_apply(self, offer_force):
        """yes applies, no cancels; force (offered beyond the limit) applies regardless."""

        def answer(text):
            w = text.strip().lower()
            if w == "yes":
                self._guarded(self._cal_apply, "cal", False)
            elif w == "force" and offer_force:
                self._guarded(self._cal_apply, "cal", True)
            elif w == "no":
                self._cal_cancel()
            else:
                self._say("please answer yes, no or force" if offer_force
                          else "please answer yes or no")
                self._ask = ask

        prompt = "apply? (yes/no/force) " if offer_force else "confirm? (yes/no) "
        ask = _Ask(prompt, answer, on_cancel=self._cal_cancel)
        self._ask = ask

    def _cal_apply(self, force):
        cal = self._cal
        try:
            done = self.gw.cal_confirm(cal, self.auth.who, force)
        except Exception as e:  # noqa: BLE001 - a refusal keeps the result open to force/no
            if type(e).__name__ != "CalibrationError" or force:
                self._say_error(e, None)
                self._cal_cancel()
                return
            self._say("refused: %s" % (getattr(e, "reason", None) or e))
            self._say("type force to apply it anyway, or no")
            self._ask_apply(True)
            return
        self._cal = None
        self._say_applied(done)
        self.apply_params(self.gw.params())

    def _say_applied(self, done):
        """What set_params (or cal_confirm) reports: {key: [old, new]}."""
        if not isinstance(done, dict) or not done:
            self._say("applied")
            return
        for k in sorted(done):
            v = done[k]
            if isinstance(v, (list, tuple)) and len(v) == 2:
                self._say("applied %s: %s -> %s" % (k, _fmt(v[0]), _fmt(v[1])))
            else:
                self._say("applied %s: %s" % (k, _fmt(v)))


def _power_lines(pw):
    last = pw.get("last") or {}
    out = ["kWh/t    %s (last interval), %s (day)" % (
        _num(last.get("kwh_per_t"), "%.3f"), _num(pw.get("day_kwh_per_t"), "%.3f"))]
    for t in pw["terminals"]:
        out.append("meter    %s %s %s %s kW" % (t["address"], t["role"], t["state"],
                                               _num(t["kw"], "%.1f")))
    x = pw.get("crosscheck")
    if x:  # output against power (docs/crosscheck.md)
        out.append("x-check  %s %s of %s h, %s kWh/t, fit %s %%, last window %s %%%s%s" % (
            x["state"], _num(x["hours"], "%.1f"), _num(x["learn_h"], "%g"),
            _num(x["kwh_per_t"], "%.4f"), _num(x["fit_pct"], "%.1f"),
            _num(x["dev_pct"], "%+.1f"), ", MISMATCH" if x["mismatch"] else "",
            ", learning paused: %s" % x["paused"] if x["paused"] else ""))
    return out
