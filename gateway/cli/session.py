# The technician CLI: a loop job that serves one line-oriented terminal (a serial port or
# the console). Each run takes what input has arrived (never waiting), hands each line to
# the open question, the calibration under way or the command it names, steps a PIN
# check, and writes a bounded slice of the output, so the 10 Hz poll never waits on a
# technician, however slowly they type or whatever they paste. Reading is open; changes
# need a technician login and a confirmation.
#   gateway/cli/terminal.py   bytes <-> lines, bounded output
#   gateway/cli/commands.py   one handler per command (gateway/cli/syntax.py)
#   gateway/cli/calibrate.py  the calibration dialogue
# The CLI reads and changes the gateway only through a gateway.control.Control.
from gateway.cli import syntax
from gateway.cli.auth import (
    AUTH_SLOT,
    MAX_FAILURES,
    Auth,
    AuthError,
    check_tech_id,
    load_accounts,
)
from gateway.cli.commands import Commands
from gateway.cli.port import ACCOUNTS_FILE, banner
from gateway.cli.terminal import INTERRUPT, TOO_LONG, Question, Terminal
from gateway.control import Control
from gateway.errors import UserError
from gateway.store.slots import Slots
from hal.compat import const, print_exception

_HASH_STEP = const(256)  # PIN-hash iterations per run
_RETRY_MS = const(1000)  # pause after a stream error

# Commands that change something: login first.
_CHANGES = const(("set", "cal", "cal.removed", "coef.set", "time.set", "output", "register",
                   "alarms.ack"))


def build_cli(gw):
    """The CLI job on gw.hw.cli_uart, with the technician accounts from the data dir."""
    try:
        accounts = load_accounts(gw.hw.flash)
    except (AuthError, OSError) as e:
        # Reading stays open; nobody can log in until the accounts are flashed again.
        print("cli: %s; no technician can log in" % e)
        accounts = {}
    auth = Auth(accounts, gw.clock, gw.params["cli.idle_logout_s"],
                Slots(gw.hw.flash, AUTH_SLOT))
    return Cli(Control(gw), gw.hw.cli_uart, auth, gw.clock)


class Cli:
    def __init__(self, control, stream, auth, clock, name="cli"):
        self.control = control  # gateway.control.Control, or a stand-in with its methods
        self.term = Terminal(stream)
        self.auth = auth
        self.clock = clock
        self.name = name
        self.errors = 0  # stream errors
        self.utc_offset_min = 0
        self.commands = Commands(self)
        self.calibration = None  # a gateway.cli.calibrate.Calibration while one is open
        self._question = None
        self._check = None  # a PIN check being computed
        self._retry_at = None
        self._input_ms = clock.ticks_ms()  # when input last came

    # -- job ---------------------------------------------------------------------------

    def start(self, greet=True):
        """greet=False: the port watcher (gateway/cli/port.py) has greeted already."""
        self.apply_params(self.control.params())
        if not greet:
            return
        self.say(banner(self.control.identity().get("device_id")))
        self.prompt()
        try:
            self.term.flush()
        except OSError:  # no terminal yet: the banner is lost, the CLI is not
            self.errors += 1

    def apply_params(self, params):
        """Take the run-time parameters this job uses (call after any change)."""
        self.utc_offset_min = params.get("production.utc_offset_min", 0)
        self.auth.idle_logout_s = params.get("cli.idle_logout_s", self.auth.idle_logout_s)

    def snapshot(self):
        return {"auth": self.auth.snapshot()}

    def restore(self, state, elapsed_ms=0):
        self.auth.restore(state.get("auth", {}), elapsed_ms)

    def take(self, data, now_ms):
        """Input the port watcher read before this CLI was loaded: taken first."""
        self.term.take(data)
        self._input_ms = now_ms

    def at_rest(self, now_ms, quiet_ms):
        """True when nobody is logged in, nothing is asked, checked, calibrating or
        waiting to be said, login is not locked, and no input came for quiet_ms: the
        port watcher may unload the CLI (the terminal shows the gw> prompt)."""
        return (self.auth.tech_id is None and self._question is None and self._check is None
                and self.calibration is None and self.term.idle()
                and not self.auth.locked_s(now_ms)
                and self.clock.ticks_diff(now_ms, self._input_ms) >= quiet_ms)

    def run(self, now_ms):
        if self._retry_at is not None:
            if self.clock.ticks_diff(now_ms, self._retry_at) < 0:
                return
            self._retry_at = None
        try:
            self._take_input(now_ms)
            self._tick(now_ms)
            self.term.flush()
        except OSError:  # UartError: the terminal went away; try again later
            self.errors += 1
            self._retry_at = self.clock.ticks_add(now_ms, _RETRY_MS)

    # -- input -------------------------------------------------------------------------

    def _take_input(self, now_ms):
        term = self.term
        term.begin_run()
        # Say what is due (or finish checking a PIN) before taking more input: it waits,
        # in the driver or the terminal, and is then taken in order.
        while self._check is None and not term.backlogged():
            got = term.next()
            if term.typed:
                self.auth.touch(now_ms)
                self._input_ms = now_ms
            if got is None:
                return
            if got == INTERRUPT:
                self._interrupt()
            elif got == TOO_LONG:
                self.prompt()
            else:
                self._line(got, now_ms)

    def _interrupt(self):
        question = self._question
        self.ask(None)
        if question is not None and question.on_cancel is not None:
            self.guarded(question.on_cancel, None)
        elif self.calibration is not None:
            self.guarded(self.calibration.cancel, None)
        self.prompt()

    def _line(self, text, now_ms):
        if self._question is not None:
            question = self._question
            self.ask(None)
            self.guarded(question.on_line, None, text)
        elif self.calibration is not None:
            self.guarded(self.calibration.line, "cal", text)
            return  # the progress line or the result follows
        else:
            self._command(text, now_ms)
        self.prompt()

    def ask(self, question):
        """Open a Question (None: no question open)."""
        self._question = question
        self.term.echo = question is None or question.echo

    def prompt(self):
        if self._check is not None or (self.calibration is not None and self._question is None):
            return
        if self._question is not None:
            self.term.write(self._question.prompt.encode())
        elif self.auth.tech_id is not None:
            self.term.write(("gw:%s> " % self.auth.tech_id).encode())
        else:
            self.term.write(b"gw> ")

    # -- output ------------------------------------------------------------------------

    def say(self, text):
        self.term.say(text)

    def say_lines(self, lines):
        self.term.say_lines(lines)

    def when(self, t):
        """Unix seconds as local time."""
        if isinstance(t, (int, float)) and not isinstance(t, bool):
            return syntax.format_time(t, self.utc_offset_min)
        return syntax.fmt(t)

    # -- periodic ----------------------------------------------------------------------

    def _tick(self, now_ms):
        if self._check is not None and self._check.step(_HASH_STEP):
            self._login_done(now_ms)
        if self.calibration is not None and self._question is None and not self.term.typing():
            self.guarded(self.calibration.tick, "cal", now_ms)
        tech_id = self.auth.tech_id
        if self.auth.idle_expired(now_ms):
            self._idle_logout("tech:" + tech_id)

    def _idle_logout(self, who):
        if self.calibration is not None:
            self.guarded(self.calibration.cancel, None)
        self.ask(None)
        self.term.clear_line()
        self.term.write(b"\r\n")
        self.say("logged out: idle for %d s" % self.auth.idle_logout_s)
        self.event("logout", {"who": who, "reason": "idle"})
        self.prompt()

    def event(self, code, detail):
        self.control.emit("event", {"code": code, "detail": detail})

    def guarded(self, fn, usage_of, *args):
        """Run fn; an error becomes one line for the technician, nothing more."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - the CLI must outlive any one command
            self.say_error(e, usage_of)

    def say_error(self, e, usage_of):
        msg = str(e)
        if not isinstance(e, UserError):
            print_exception(e)
            msg = "internal error (%s: %s)" % (type(e).__name__, msg)
        use = syntax.usage(usage_of) if usage_of else None
        self.say("error: %s; usage: %s" % (msg, use) if use else "error: " + msg)

    # -- commands ----------------------------------------------------------------------

    def _command(self, text, now_ms):
        try:
            parsed = syntax.parse(text, self.utc_offset_min)
        except syntax.UsageError as e:
            self.say(e.line())
            return
        if parsed is None:
            return
        name, args = parsed
        typed = text.split()
        if name in _CHANGES and self.auth.tech_id is None:
            self.say("error: %s needs a technician login; usage: login [ID]" % typed[0].lower())
            return
        self.apply_params(self.control.params())
        if name == "login":
            self.guarded(self._login, "login", args, now_ms)
        elif name == "logout":
            self._logout()
        else:
            usage_of = "cal " + typed[1] if name == "cal" else name.replace(".", " ")
            self.guarded(getattr(self.commands, "do_" + name.replace(".", "_")), usage_of, args)

    def confirm(self, lines, on_yes, usage_of):
        """Show what would change; on_yes() runs on a `yes` (its errors said against
        usage_of's usage); `no` changes nothing."""
        self.say_lines(lines)
        self.ask_yes_no("confirm? (yes/no) ", lambda: self.guarded(on_yes, usage_of),
                        lambda: self.say("not applied; nothing changed"))

    def ask_yes_no(self, prompt, on_yes, on_no, on_cancel=None):
        """Ask until the answer is yes or no, then on_yes() or on_no()."""

        def answer(text):
            yes = syntax.parse_yes_no(text)
            if yes is None:
                self.say("please answer yes or no")
                self.ask(question)
            elif yes:
                on_yes()
            else:
                on_no()

        question = Question(prompt, answer, on_cancel=on_cancel)
        self.ask(question)

    # -- login -------------------------------------------------------------------------

    def _login(self, args, now_ms):
        if self.auth.tech_id is not None:
            self.say("error: logged in as %s; logout first" % self.auth.tech_id)
            return
        if not self.auth.accounts:
            self.say("error: no technician accounts on this device: nobody can log in until "
                     "%s is written to its data directory (flash.py)" % ACCOUNTS_FILE)
            return
        left = self.auth.locked_s(now_ms)
        if left:
            self.say("error: login locked for %d s after %d failures" % (left, MAX_FAILURES))
            return
        if args["id"] is None:
            self.ask(Question("id: ", self._login_id))
        else:
            self._ask_pin(args["id"])

    def _login_id(self, text):
        text = text.strip()
        if not text:
            return
        try:
            self._ask_pin(check_tech_id(text))
        except AuthError as e:
            self.say("error: %s; usage: login [ID]" % e)

    def _ask_pin(self, tech_id):
        self.ask(Question("PIN: ", lambda pin: self._login_pin(tech_id, pin), echo=False))

    def _login_pin(self, tech_id, pin):
        now = self.clock.ticks_ms()
        try:
            self._check = self.auth.begin(tech_id, pin, now)
        except AuthError as e:
            self.say("error: %s" % e)

    def _login_done(self, now_ms):
        check = self._check
        self._check = None
        tech_id = check.tech_id
        if self.auth.finish(check, now_ms):
            name = self.auth.name()
            self.say("logged in as %s%s" % (tech_id, " (%s)" % name if name else ""))
            self.event("login", {"who": self.auth.who})
        else:
            failures = self.auth.failures
            self.event("login_failed", {"id": tech_id, "failures": failures})
            left = self.auth.locked_s(now_ms)
            if left:
                self.say("error: wrong id or PIN; login locked for %d s" % left)
                self.event("login_locked", {"id": tech_id, "lock_s": left})
            else:
                self.say("error: wrong id or PIN (%d of %d tries)" % (failures, MAX_FAILURES))
        self.prompt()

    def _logout(self):
        who = self.auth.who
        if who is None:
            self.say("not logged in")
            return
        self.auth.logout()
        self.event("logout", {"who": who, "reason": "command"})
        self.say("logged out")
