# What the technician CLI sees of the gateway: the facade gateway.cli.session calls (docs/cli.md),
# built on the app's parts, so that the CLI's needs stay in one place and the CLI can be
# tested against a double with the same methods. build_cli() makes the CLI job.
from gateway.cli.auth import AUTH_SLOT, AuthError, Auth, load_accounts
from gateway.errors import CalibrationError
from gateway.store.slots import Slots
from gateway.cli.session import Cli
from hal.compat import const

_LOG_SCAN = const(512)  # records read back at most to find the maintenance events
_LOG_CHUNK = const(64)


def build_cli(gw):
    """The CLI job on gw.hw.cli_uart, with the technician accounts from the data dir."""
    try:
        accounts = load_accounts(gw.hw.flash)
    except (AuthError, OSError) as e:
        # Reading stays open; nobody can log in until the accounts are flashed again.
        print("cli: %s; no technician can log in" % e)
        accounts = {}
    auth = Auth(accounts, gw.clock, gw.params["cli.idle_logout_s"], Slots(gw.hw.flash, AUTH_SLOT))
    return Cli(CliFacade(gw), gw.hw.cli_uart, auth, gw.clock)


class _Cal:
    """A calibration started from the CLI: progress in the facade's words (and the
    calibration module's, passed through), the proposal, whether it is within limits."""

    def __init__(self, facade, kind, who, fixed=None):
        self._f = facade
        self.kind = kind
        self.who = who
        self._fixed = fixed  # {key: [old, new]} of a calibration that needs no measuring
        self.within_limits = True
        self.limit_message = ""

    def progress(self):
        if self._fixed is not None:
            return {"state": "done", "revolutions_done": 0, "revolutions_target": None,
                    "message": ""}
        p = self._f.calibrator().progress()
        out = dict(p)
        out["revolutions_done"] = p.get("revs_done", 0)
        out["revolutions_target"] = p.get("revs_needed")
        out["message"] = p.get("error") or ""
        result = p.get("result")
        if p.get("state") == "done" and isinstance(result, dict):
            change, limit = result.get("change_pct"), result.get("limit_pct")
            if self.kind == "zero" and change is not None and limit is not None:
                self.within_limits = abs(change) <= limit
                if not self.within_limits:
                    self.limit_message = "zero change %.3f %% of design load, limit %.3f %%" % (
                        change, limit)
        return out

    def proposal(self):
        if self._fixed is not None:
            return self._fixed
        p = self._f.calibrator().progress()
        result = p.get("result")
        if p.get("state") != "done" or not isinstance(result, dict):
            return None
        old = result.get("old") or {}
        out = {}
        for k, v in (result.get("new") or {}).items():
            out[k] = [old.get(k), v]
        return out

    def mark(self):
        self._f.calibrator().mark()


class CliFacade:
    def __init__(self, gw):
        self.gw = gw
        self._cal = None

    def calibrator(self):
        return self.gw.measurement.calibrator()

    # --- reading
    def params(self):
        return self.gw.params_public()

    def status(self):
        return self.gw.status()

    def identity(self):
        gw = self.gw
        reg = gw.identity.registered() or {}
        serials = reg.get("serials") or []
        out = {"device_id": gw.device_id, "collector": {}, "sensors": [], "registered": {}}
        if serials:
            out["collector"] = {"serial": serials[0], "fw": reg.get("fw"),
                                "vendor_id": reg.get("vendor_id"), "model": reg.get("model")}
            out["sensors"] = serials[1:]
            out["registered"] = {"by": reg.get("by"), "t": reg.get("t")}
        out["registered"]["swapped"] = gw.identity.report().get("swapped", 0)
        return out

    def alarms_active(self):
        return self.gw.alarms.active()

    def diag_report(self):
        return self.gw.diag.report()

    def records(self, from_seq, max_n):
        return self.gw.log.read(from_seq, max_n)

    def records_time(self, t0, t1, max_n):
        return self.gw.log.read_time(t0, t1, max_n)

    def maintenance_log(self, max_n):
        """The newest max_n event records, oldest first (looking back _LOG_SCAN records)."""
        log = self.gw.log
        found = []
        hi = log.head
        lo_limit = max(log.oldest, hi - _LOG_SCAN + 1)
        while hi >= lo_limit and len(found) < max_n:
            lo = max(lo_limit, hi - _LOG_CHUNK + 1)
            chunk = [r for r in log.read(lo, hi - lo + 1) if r.get("type") == "event"]
            found = chunk + found
            hi = lo - 1
        return found[-max_n:]

    def time(self):
        return self.gw.time()

    def coef(self):
        prod = self.gw.measurement.production.status()
        hist = prod.get("coef_history") or []
        now = self.gw.time()
        since = None
        for t, _ in hist:
            if t <= now:
                since = t
        return {"value": prod.get("coef"), "since": since, "history": hist}

    # --- changing (the CLI has checked the login)
    def set_params(self, changes, who):
        return self.gw.set_params(changes, who)

    def set_time(self, unix_s, who):
        return self.gw.set_time(unix_s, who)

    def set_coef(self, value, effective_t, who):
        return self.gw.set_params({"production.coef": value,
                                   "production.coef_from": int(effective_t)}, who)

    def set_output(self, do, on, who):
        self.gw.set_output(do, on, who)

    def ack_alarm(self, code, who):
        return self.gw.ack_alarm(code, who)

    def register_units(self, who):
        self.gw.diag.register(who)

    def emit(self, rtype, fields):
        return self.gw.emit(rtype, fields)

    # --- calibrations
    def cal_start(self, kind, args, who):
        c = self.calibrator()
        if "known_t" in args:  # the weighed mass of a material (or linearization) test
            h = self._cal
            if h is None or h.kind != kind:
                raise CalibrationError("no %s test is running" % kind)
            c.finish(args["known_t"] * 1000.0)
            return h
        if self._cal is not None and self._cal._fixed is None:
            state = c.progress().get("state")
            if state in ("running", "draining"):
                raise CalibrationError("a %s calibration is running" % self._cal.kind)
        revs = args.get("revolutions")
        if kind == "lin" and "points" in args:
            old = self.gw.params["scale.linearization"]
            h = _Cal(self, kind, who, {"scale.linearization": [old, args["points"]]})
        else:
            if kind == "zero":
                c.start("zero", revs=revs)
            elif kind == "span" and "test_kg" in args:
                c.start("span_weight", revs=revs, test_kg=args["test_kg"])
            elif kind == "span" and "chain_kgpm" in args:
                c.start("span_chain", revs=revs, chain_kgpm=args["chain_kgpm"])
            elif kind == "speed":
                length = args.get("belt_length_m")
                known = self.gw.params["scale.belt_length_m"]
                if length is not None and abs(length - known) > 1e-6:
                    raise CalibrationError(
                        "scale.belt_length_m is %g m; set it to %g first (set "
                        "scale.belt_length_m %g)" % (known, length, length))
                c.start("speed", revs=revs, distance_m=args.get("distance_m"))
            elif kind == "material":
                c.start("material")
            elif kind == "lin":
                c.start("linearization")
            else:
                raise CalibrationError("unknown calibration %s" % kind)
            h = _Cal(self, kind, who)
            self.gw.emit("event", {"code": "cal_started", "detail": {"kind": kind, "by": who}})
        self._cal = h
        return h

    def cal_confirm(self, cal, who, force=False):
        if cal is not self._cal:
            raise CalibrationError("that calibration is no longer open")
        if cal._fixed is not None:
            changes = {}
            for k in cal._fixed:
                changes[k] = cal._fixed[k][1]
        else:
            changes = self.calibrator().confirm(technician=who, force=force)
        self._cal = None
        return self.gw.set_params(changes, who)

    def cal_cancel(self, cal):
        if cal is not self._cal:
            return
        self._cal = None
        if cal._fixed is None:
            self.calibrator().abort()
            self.gw.emit("event", {"code": "cal_aborted", "detail": {"kind": cal.kind,
                                                                     "by": cal.who}})
