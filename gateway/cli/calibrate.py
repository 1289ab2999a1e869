# The calibration dialogue: one calibration from `cal ...` to applied or cancelled. It
# starts the procedure (gateway.measure.calibration through Control.calibrator(), in the
# procedures' own words: docs/measurement.md), draws its progress in belt revolutions at
# most 4 times a second, takes from the technician what the procedure waits for (Enter
# at each belt mark, the end of a batch and its weighed mass), shows the result against
# the values in force and applies it on yes. A result beyond its limit (change_pct over
# limit_pct) is applied only on force; the procedure records the refusal of a plain yes.
# After a span, the test load stops the totalizer until it is declared removed.
from gateway.cli import readable, syntax
from gateway.cli.terminal import Question
from gateway.errors import CalibrationError
from hal.compat import const

_DRAW_MS = const(250)
_BAR = const(20)
_BAR_CHARS = const(78)
_CANCEL = const(("cancel", "c", "no"))


class Calibration:
    """What the procedure waits for from the technician while it runs is a field here
    (marks_left, wants_mass) that line() takes and the hint names; a step after the
    measurement (a check before the result is offered) goes between tick() seeing the
    procedure done and _show_result()."""

    def __init__(self, cli, kind, args, belt_length_m=None):
        self.cli = cli
        self.kind = kind  # a procedure of gateway.measure.calibration.KINDS
        self.args = args  # its arguments
        self.belt_length_m = belt_length_m  # typed for `cal speed belt`: must be in force
        self.who = cli.auth.who
        self.title = readable.title(kind)
        self.calibrator = None
        self.marks_left = 0  # Enter presses (belt marks) the procedure still waits for
        self.wants_mass = False  # waiting for the weighed mass of the batch
        self.hint = "Ctrl-C or cancel stops it"
        self._draw_at = 0

    def start(self):
        args = self.args
        length = self.belt_length_m
        if length is not None:
            known = self.cli.control.params()["scale.belt_length_m"]
            if abs(length - known) > 1e-6:
                raise CalibrationError("scale.belt_length_m is %g m; set it to %g first (set "
                                       "scale.belt_length_m %g)" % (known, length, length))
        if self.kind == "speed":
            if "distance_m" in args:
                self.marks_left = 2
                self.hint = ("press Enter when the belt mark passes the start point, then when "
                             "it passes the stop point %g m on" % args["distance_m"])
            else:
                self.marks_left = args["revolutions"] + 1
                self.hint = ("press Enter each time the belt mark passes the reference point: "
                             "now and after each of %d revolutions" % args["revolutions"])
        elif self.kind in ("material", "linearization"):
            self.wants_mass = True
            self.hint = "type end when the batch has passed, and its weighed mass in t"
        calibrator = self.cli.control.calibrator()
        p = calibrator.start(self.kind, **args)
        if self.wants_mass and p.get("min_kg") is not None:
            self.cli.say("the batch must hold %d belt revolutions of loaded travel and %g t "
                         "at least" % (p["min_revolutions"], p["min_kg"] / 1000))
        self.calibrator = calibrator
        self.cli.event("cal_started", {"kind": self.kind, "by": self.who})
        clock = self.cli.clock
        self._draw_at = clock.ticks_add(clock.ticks_ms(), -_DRAW_MS)
        self.cli.term.forget_draw()
        self.cli.say("%s running; %s" % (self.title, self.hint))
        if self.kind == "zero":
            self._check_empty()

    def _check_empty(self):
        """Zero needs an empty belt: say at once when it is not, and offer to cancel."""
        cli = self.cli
        load = cli.control.load_pct()
        band = cli.control.params()["scale.autozero_band_pct"]
        if load is None or abs(load) <= band:
            return
        cli.say("load on the belt: %.1f %% of design; zero needs the belt running empty "
                "(within %g %%; if it is empty, the zero is that far off)" % (load, band))
        cli.ask_yes_no("cancel it? (yes/no) ", self.cancel,
                       lambda: cli.say("going on; the result will show how far the zero moved"),
                       on_cancel=self.cancel)

    def _close(self):
        self.cli.calibration = None
        self.cli.term.forget_draw()

    # -- while it runs -----------------------------------------------------------------

    def tick(self, now_ms):
        cli = self.cli
        p = self.calibrator.progress()
        state = p.get("state")
        if state in ("running", "draining", "ended"):
            cli.auth.touch(now_ms)  # a long calibration is not idleness
            if cli.clock.ticks_diff(now_ms, self._draw_at) >= _DRAW_MS:
                self._draw_at = now_ms
                text = _bar(p)
                if text != cli.term.drawn():
                    cli.term.draw(text)
            return
        if cli.term.drawn():
            cli.term.draw(_bar(p))
            cli.term.end_draw()
        if state == "done":
            self._show_result(p.get("result") or {})
            return
        self._close()
        if state == "failed":
            cli.say("%s failed: %s; nothing changed" % (self.title, p.get("error") or "?"))
        else:
            cli.say("%s ended elsewhere; nothing changed" % self.title)
        cli.prompt()

    def line(self, text):
        """A line typed while the procedure runs."""
        word = text.strip().lower()
        if word in _CANCEL:
            self.cancel()
            self.cli.prompt()
        elif word == "" and self.marks_left:
            self.calibrator.mark()
            self.marks_left -= 1
            self.hint = ("mark taken; %d more" % self.marks_left if self.marks_left
                         else "last mark taken")
        elif word == "end" and self.wants_mass:
            self.calibrator.end()
            self.hint = "batch ended; type its weighed mass in t"
        elif word and self.wants_mass:
            try:
                mass_t = syntax.number(word, "the mass in t", 0.001, 100000.0)
            except syntax.UsageError as e:
                self.cli.say("error: %s; %s, or cancel" % (e.reason, self.hint))
                return
            self.calibrator.finish(mass_t * 1000.0)
            self.wants_mass = False
        elif word:
            self.cli.say("a calibration is running: %s; Ctrl-C or cancel stops it" % self.hint)

    def cancel(self):
        self._close()
        self.calibrator.abort()
        self.cli.event("cal_aborted", {"kind": self.kind, "by": self.who})
        self.cli.say("%s cancelled; nothing changed" % self.title)
        self._ask_removed()

    def _ask_removed(self):
        """After a span: the totalizer stays stopped until the test load is declared off
        (here, or later by `cal removed`)."""
        if not self.kind.startswith("span"):
            return
        cli = self.cli

        def answer(text):
            word = text.strip().lower()
            if word == "yes":
                try:
                    cli.control.calibrator().weights_removed(self.who)
                except CalibrationError as e:
                    cli.say("%s; yes once it is off, or later" % e)
                    cli.ask(question)
                    return
                cli.say("test load removed: the totalizer counts again")
            elif word == "later":
                cli.say("the totalizer stays stopped until cal removed")
            else:
                cli.say("please answer yes or later")
                cli.ask(question)

        question = Question("test load removed from the frame? (yes/later) ", answer)
        cli.ask(question)

    # -- the result --------------------------------------------------------------------

    def _show_result(self, result):
        cli = self.cli
        if not result.get("new"):
            cli.say("%s done: nothing to change" % self.title)
            self.cancel()
            cli.prompt()
            return
        cli.say("%s done" % self.title)
        cli.say_lines(readable.result_lines(self.kind, result))
        change, limit = result.get("change_pct"), result.get("limit_pct")
        beyond = change is not None and limit is not None and abs(change) > limit
        if beyond:
            cli.say("  outside the limit of %g %%: yes is refused (and recorded), force "
                    "applies it anyway" % limit)
        self._ask_apply(beyond)
        cli.prompt()

    def _ask_apply(self, beyond):
        """yes applies, no cancels; force (offered beyond the limit) applies regardless."""

        def answer(text):
            word = text.strip().lower()
            if word == "yes":
                self.cli.guarded(self._apply, "cal", False, beyond)
            elif word == "force" and beyond:
                self.cli.guarded(self._apply, "cal", True, beyond)
            elif word == "no":
                self.cancel()
            else:
                self.cli.say("please answer yes, no or force" if beyond
                             else "please answer yes or no")
                self.cli.ask(question)

        prompt = "apply? (yes/no/force) " if beyond else "confirm? (yes/no) "
        question = Question(prompt, answer, on_cancel=self.cancel)
        self.cli.ask(question)

    def _apply(self, force, beyond):
        cli = self.cli
        try:
            changes = self.calibrator.confirm(self.who, force)
        except CalibrationError as e:
            if beyond and not force:  # refused and recorded; force stays open
                cli.say("refused: %s" % e)
                cli.say("type force to apply it anyway, or no")
                self._ask_apply(True)
                return
            cli.say_error(e, None)
            self.cancel()
            return
        self._close()
        done = cli.control.set_params(changes, self.who)
        if self.kind == "material":
            cli.control.reanchor_crosscheck(self.who)
        for key in sorted(done):
            cli.say("applied: " + readable.changed(key, done[key][0], done[key][1]))
        if not done:
            cli.say("nothing changed (already in force)")
        cli.apply_params(cli.control.params())
        self._ask_removed()


def _bar(p):
    done = p.get("revolutions_done") or 0
    target = p.get("revolutions_needed")
    msg = ""
    if isinstance(p.get("measured_kg"), (int, float)):
        msg = "measured %.3f t" % (p["measured_kg"] / 1000)
    if "marks" in p:
        msg = "marks %s  %s" % (p["marks"], msg)
    if p.get("state") == "draining":
        msg += " (finishing)"
    elif p.get("state") == "ended":
        msg += " (batch ended: its weighed mass in t?)"
    elif p.get("waiting"):
        msg += " (waiting for %s)" % p["waiting"]
    if target:
        filled = int(min(max(done / target, 0.0), 1.0) * _BAR)
        text = "[%s%s] %.2f/%g rev  %s" % ("#" * filled, "." * (_BAR - filled), done, target,
                                            msg)
    else:
        text = "%.2f rev  %s" % (done, msg)
    return syntax.clip(text, _BAR_CHARS)
