# What the technician CLI sees of the gateway: the facade gateway.cli.session calls (docs/cli.md),
# built on the app's parts, so that the CLI's needs stay in one place and the CLI can be
# tested against a double with the same methods. build_cli() makes the CLI job.
from gateway.cli.auth import Auth, AuthError, load_accounts
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
    auth = Auth(accounts, gw.clock, gw.params["cli.idle_logout_s"])
    return Cli(CliFacade(gw), gw.hw.cli_uart, auth, gw.clock)


class CliFacade:
    def __init__(self, gw):
        self.gw = gw

    def calibrator(self):
        """The calibration procedures (gateway.measure.calibration.Calibrator)."""
        return self.gw.measurement.calibrator()

    # --- reading
    def params(self):
        return self.gw.params_public()

    def status(self):
        return self.gw.status()

    def identity(self):
        gw = self.gw
        reg = gw.diag.identity.registered() or {}
        serials = reg.get("serials") or []
        out = {"device_id": gw.device_id, "collector": {}, "sensors": [], "registered": {}}
        if serials:
            out["collector"] = {"serial": serials[0], "fw": reg.get("fw"),
                                "vendor_id": reg.get("vendor_id"), "model": reg.get("model")}
            out["sensors"] = serials[1:]
            out["registered"] = {"by": reg.get("by"), "t": reg.get("t")}
        out["registered"]["swapped"] = gw.diag.identity.report().get("swapped", 0)
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
