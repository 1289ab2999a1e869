# The CLI's commands: one handler per command of gateway/cli/syntax.py, do_<name>(args)
# with the arguments checked by syntax.parse. Reading answers at once; a change is shown
# old -> new and applied on `yes` (Cli.confirm). Everything goes through the Control.
import json

from gateway import FIRMWARE_VERSION, ondemand
from gateway.cli import syntax
from gateway.cli.syntax import fmt, fmt_number, fmt_t
from gateway.health.alarms import EVENT, TABLE, spec
from hal.compat import const

_PAGE = const(20)  # records per page
_RECORD_CHARS = const(300)
_RECENT_S = const(300)
_PERIODS = const(("interval", "shift", "day", "month", "quarter", "year"))
_BELT = {"belt_slip": "slipping (motor on, no belt travel)",
         "open_stop_fault": "open/stop signal contradicts the belt speed"}


def _total_lines(status):
    """The totalizer, then each period's total so far (status and show totals)."""
    lines = ["total      %s" % fmt_t(status.get("total_kg"))]
    totals = status.get("totals") or {}
    for period in _PERIODS:
        total = totals.get(period)
        if isinstance(total, dict):
            line = "%-10s %s" % (period, fmt_t(total.get("mass_kg")))
            if total.get("conv_kg") is not None:
                line += "  (converted by coef: %s)" % fmt_t(total["conv_kg"])
            lines.append(line)
    return lines


def _serial(serial):
    return str(serial) if serial else "none"


class Commands:
    def __init__(self, cli):
        self.cli = cli
        self.control = cli.control

    def _say(self, text):
        self.cli.say(text)

    def _time(self, t):
        return syntax.format_time(t, self.cli.utc_offset_min)

    # -- reading -----------------------------------------------------------------------

    def do_help(self, args):
        self.cli.say_lines(syntax.help_text(args["cmd"]))

    def do_status(self, args):
        s = self.control.status()
        link = s.get("link") or {}
        up = s.get("uplink") or {}
        alarms = s.get("alarms") or []
        state = s.get("run_state") or ("running" if s.get("running") else "stopped")
        lines = [
            "time       %s" % self._time(s.get("time", self.control.time())),
            "belt       %s" % _BELT.get(state, state),
            "rate       %s t/h" % fmt_number(s.get("rate_tph"), "%.1f"),
            "speed      %s m/s" % fmt_number(s.get("speed_mps"), "%.2f"),
            "load       %s kg/m" % fmt_number(s.get("load_kgpm"), "%.2f"),
        ]
        lines.extend(_total_lines(s))
        counts = []
        for key, what in (("timeouts", "timeouts"), ("crc_errors", "CRC errors")):
            if isinstance(link.get(key), int):
                counts.append("%d %s" % (link[key], what))
        lines.append("collector  %s%s" % (link.get("state", "?"),
                                          "; " + ", ".join(counts) if counts else ""))
        backlog = up.get("backlog")
        lines.append("center     %s%s" % (up.get("state", "?"), "; %d records to send" % backlog
                                          if isinstance(backlog, int) else ""))
        lines.append("alarms     %s" % (", ".join(str(a) for a in alarms) if alarms else "none"))
        diag = s.get("diag")
        if isinstance(diag, dict) and diag.get("result"):
            lines.append("self-test  %s (diag shows why)" % diag["result"]
                         if diag["result"] != "pass" else "self-test  pass")
        if s.get("power"):  # power terminals (docs/power.md)
            lines.extend(_power_lines(s["power"]))
        self.cli.say_lines(lines)

    def do_show(self, args):
        what = args["what"]
        if what == "params":
            self._show_params(args["prefix"])
        elif what == "calibration":
            p = self.control.params()
            for k in sorted(p):
                if k.startswith("scale."):
                    self._say("%s = %s" % (k, fmt(p[k])))
            coef = self.control.coef()
            self._say("coef = %s since %s" % (fmt(coef.get("value")),
                                              self.cli.when(coef.get("since"))))
        elif what == "identity":
            self._show_identity()
        else:
            self.cli.say_lines(_total_lines(self.control.status()))

    def _show_params(self, prefix):
        p = self.control.params()
        keys = [k for k in sorted(p) if k.startswith(prefix)]
        if not keys:
            self._say("no parameter starts with %s" % prefix)
        settable = ondemand.call("gateway.config", "settable_keys")  # the schema for this only
        for k in keys:
            self._say("%s %s = %s" % ("*" if k in settable else " ", k, fmt(p[k])))
        self._say("(* can be set at run time)")

    def _show_identity(self):
        from gateway.cli.readable import identity_lines

        self.cli.say_lines(identity_lines(self.control.identity(), FIRMWARE_VERSION,
                                          self.cli.when))

    def do_coef(self, args):
        coef = self.control.coef()
        self._say("coef %s, effective since %s"
                  % (fmt(coef.get("value")), self.cli.when(coef.get("since"))))
        hist = coef.get("history") or []
        if hist:
            self._say("history (effective time, value):")
            for item in hist[-10:]:
                self._say("  %s  %s" % (self.cli.when(item[0]), fmt(item[1])))

    def do_alarms(self, args):
        active = self.control.alarms_active()
        if not active:
            self._say("no active alarms")
        for a in active:
            self._say("%-20s since %s  %s" % (a.get("code"), self.cli.when(a.get("since")),
                                               fmt(a.get("detail", ""))))

    def do_diag(self, args):
        from gateway.cli.readable import diag_lines

        self.cli.say_lines(diag_lines(self.control.diag_report(), self.control.alarms_active()))

    def do_log(self, args):
        events = self.control.maintenance_log(args["n"])
        if not events:
            self._say("no maintenance events")
        self._say_records(events, args["raw"])

    def _say_records(self, recs, raw):
        from gateway.cli.readable import record_line

        for r in recs:
            line = None
            if not raw:
                try:
                    line = record_line(r, self.cli.when)
                except (KeyError, TypeError, ValueError, IndexError, AttributeError):
                    pass  # a record of a form not foreseen: shown as stored
            self._say(line or self._raw_line(r))

    def _raw_line(self, r):
        rest = {}
        for k in r:
            if k not in ("seq", "t", "type"):
                rest[k] = r[k]
        head = "#%s %s %s " % (r.get("seq"), self.cli.when(r.get("t")), r.get("type"))
        return syntax.clip(head + json.dumps(rest), _RECORD_CHARS)

    def do_records(self, args):
        mode = args["mode"]
        last = None
        if mode == "seq":
            last = args["to"]
            n = _PAGE if last is None else min(_PAGE, last - args["from"] + 1)
            recs = self.control.records(args["from"], n)
            recs = [r for r in recs if last is None or r.get("seq", 0) <= last]
        else:
            if mode == "recent":
                t1 = self.control.time()
                t0 = t1 - _RECENT_S
            else:
                t0, t1 = args["t0"], args["t1"]
            recs = self.control.records_time(t0, t1, _PAGE)
        if not recs:
            self._say("no records")
            return
        self._say_records(recs, args["raw"])
        top = recs[-1].get("seq", 0)
        if len(recs) >= _PAGE and (last is None or top < last):
            more = "records seq %d..%s" % (top + 1, "" if last is None else last)
            if mode != "seq":
                more += "  (up to %s)" % self.cli.when(t1)
            self._say("more: " + more)

    def do_time(self, args):
        t = self.control.time()
        tz = self.cli.utc_offset_min
        self._say("%s (unix %d, UTC%+.1f h)" % (self._time(t), int(t), tz / 60))

    # -- changing (the CLI has checked the login) --------------------------------------

    def do_set(self, args):
        changes = args["changes"]
        params = self.control.params()
        lines = []
        for k in sorted(changes):
            lines.append("%s: %s -> %s" % (k, fmt(params.get(k)), fmt(changes[k])))
        who = self.cli.auth.who

        def apply():
            self.say_applied(self.control.set_params(changes, who))
            self.cli.apply_params(self.control.params())

        self.cli.confirm(lines, apply, "set")

    def say_applied(self, done):
        """What set_params reports: {key: [old, new]}."""
        if not done:
            self._say("nothing changed (already in force)")
            return
        for k in sorted(done):
            self._say("applied %s: %s -> %s" % (k, fmt(done[k][0]), fmt(done[k][1])))

    def do_coef_set(self, args):
        value = args["value"]
        effective = args["effective_t"]
        if effective is None:
            effective = int(self.control.time())
        old = self.control.coef().get("value")
        who = self.cli.auth.who
        change = "%s -> %s, effective %s" % (fmt(old), fmt(value), self.cli.when(effective))

        def apply():
            self.control.set_coef(value, effective, who)
            self._say("applied coef " + change)

        self.cli.confirm(["coef: " + change], apply, "coef set")

    def do_alarms_ack(self, args):
        code = args["code"]
        if code not in TABLE:
            self._say("error: no alarm %s; alarms lists the active ones" % code)
            return
        if spec(code)[2] != EVENT:
            self._say("error: %s clears with its condition, not by acknowledgement" % code)
            return
        active = [a for a in self.control.alarms_active() if a.get("code") == code]
        if not active:
            self._say("%s is not active; nothing changed" % code)
            return
        who = self.cli.auth.who

        def apply():
            if self.control.ack_alarm(code, who):
                self._say("%s acknowledged" % code)
            else:
                self._say("%s cleared meanwhile; nothing changed" % code)

        self.cli.confirm(["acknowledge %s (since %s): it clears now"
                          % (code, self.cli.when(active[0].get("since")))], apply, "alarms ack")

    def do_time_set(self, args):
        new = args["t"]
        old = self.control.time()
        who = self.cli.auth.who

        def apply():
            self.control.set_time(new, who)
            self._say("clock set to %s" % self._time(new))

        self.cli.confirm(["clock: %s -> %s (step %+d s)" % (self._time(old), self._time(new),
                                                            int(new - old))], apply, "time set")

    def do_output(self, args):
        do, on = args["do"], args["on"]
        state = "on" if on else "off"
        who = self.cli.auth.who

        def apply():
            self.control.set_output(do, on, who)
            self._say("output %d %s" % (do, state))

        self.cli.confirm(["switch output %d -> %s" % (do, state)], apply, "output")

    def do_register(self, args):
        ident = self.control.identity()
        who = self.cli.auth.who

        def apply():
            self.control.register_units(who)
            self._say("registered; device_swap cleared")

        col = ident.get("collector") or {}
        self.cli.confirm(["registered now: collector %s, sensors %s"
                          % (_serial(col.get("serial")),
                             ", ".join(_serial(x) for x in ident.get("sensors") or [])),
                          "the units the collector reports now become the registered ones"],
                         apply, "register")

    def do_cal(self, args):
        from gateway.cli.calibrate import Calibration

        cal = Calibration(self.cli, args["kind"], args["args"], args.get("belt_length_m"))
        cal.start()
        self.cli.calibration = cal

    def do_cal_removed(self, args):
        self.control.calibrator().weights_removed(self.cli.auth.who)
        self._say("test load removed: the totalizer counts again")


def _power_lines(pw):
    last = pw.get("last") or {}
    out = ["energy     %s kWh/t last interval, %s kWh/t today" % (
        fmt_number(last.get("kwh_per_t"), "%.3f"), fmt_number(pw.get("day_kwh_per_t"), "%.3f"))]
    for t in pw["terminals"]:
        out.append("meter      %s %s %s, %s kW" % (t["address"], t["role"], t["state"],
                                                  fmt_number(t["kw"], "%.1f")))
    x = pw.get("crosscheck")
    if x:  # output against power (docs/crosscheck.md)
        out.append("x-check    %s %s of %s h, %s kWh/t, fit %s %%, last window %s %%%s%s" % (
            x["state"], fmt_number(x["hours"], "%.1f"), fmt_number(x["learn_h"], "%g"),
            fmt_number(x["kwh_per_t"], "%.4f"), fmt_number(x["fit_pct"], "%.1f"),
            fmt_number(x["dev_pct"], "%+.1f"), ", MISMATCH" if x["mismatch"] else "",
            ", learning paused: %s" % x["paused"] if x["paused"] else ""))
    return out
