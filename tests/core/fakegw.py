# A stand-in for the CLI facade of gateway.app.Gateway (the methods the CLI calls, with
# the agreed semantics), for the CLI tests on both interpreters. It is also a 10 Hz loop
# job that turns the belt, so calibrations progress in belt revolutions as time passes,
# and that records how late each of its polls ran.
from gateway import config

_BASE = {
    "device_id": 4242,
    "key_file": "device.key",
    "data_dir": "data",
    "collector": {"port": "socket://127.0.0.1:5020"},
    "center": {"host": "127.0.0.1", "port": 7000},
    "scale": {"belt_length_m": 50.0, "zero_counts": 1000},
    "production": {"utc_offset_min": 480},
    "cli": {"idle_logout_s": 60},
}
ZERO_LIMIT_COUNTS = 500


class CalibrationError(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class FakeCal:
    def __init__(self, gw, kind, args, target):
        self.gw = gw
        self.kind = kind
        self.args = args
        self.target = target
        self.start_revs = gw.revs
        self.state = "running"
        self.marks = 0
        self.changes = {}
        self.within_limits = True
        self.limit_message = ""

    def _done_revs(self):
        return self.gw.revs - self.start_revs

    def progress(self):
        done = self._done_revs()
        ends_itself = self.kind in ("zero", "span")
        if self.state == "running" and ends_itself and self.target and done >= self.target:
            self._finish()
        p = {"revolutions_done": min(done, self.target or done), "revolutions_target": self.target,
             "state": self.state, "message": "", "extra": 1}
        if self.kind == "speed":
            p["marks"] = self.marks
        if self.kind in ("material", "lin") and self.state == "running":
            p["message"] = "measured %.3f t" % self.gw.material_measured_t
        if self.state == "failed":
            p["message"] = "belt stopped"
        return p

    def mark(self):
        if self.kind != "speed":
            raise CalibrationError("%s calibration takes no belt marks" % self.kind)
        self.marks += 1
        need = 2 if "distance_m" in self.args else self.args["revolutions"] + 1
        if self.marks >= need:
            self._finish()

    def _finish(self):
        gw = self.gw
        if not gw.running:
            self.state = "failed"
            return
        p = gw._params
        if self.kind == "zero":
            old = p["scale.zero_counts"]
            new = gw.zero_true
            self.changes = {"scale.zero_counts": [old, new]}
            if abs(new - old) > ZERO_LIMIT_COUNTS:
                self.within_limits = False
                self.limit_message = "zero moved %d counts, limit %d" % (new - old,
                                                                         ZERO_LIMIT_COUNTS)
        elif self.kind == "span":
            old = p["scale.span_kg_per_count"]
            self.changes = {"scale.span_kg_per_count": [old, old * 1.01]}
        elif self.kind == "speed":
            old = p["scale.pulses_per_m"]
            self.changes = {"scale.pulses_per_m": [old, old * 0.99]}
        elif self.kind == "lin" and "points" in self.args:
            self.changes = {"scale.linearization": [p["scale.linearization"], self.args["points"]]}
        self.state = "done"

    def proposal(self):
        return self.changes if self.state == "done" else None


class ModuleShapedCal:
    """The same calibration reporting in gateway.measure.calibration's words (revs_done,
    revs_needed, error, result {old, new, change_pct, limit_pct}), with no proposal()."""

    def __init__(self, inner):
        self.inner = inner

    def progress(self):
        c = self.inner
        p = c.progress()
        out = {"kind": c.kind, "state": p["state"], "revs_done": p["revolutions_done"]}
        if p["revolutions_target"]:
            out["revs_needed"] = p["revolutions_target"]
        if c.kind == "material":
            out["measured_kg"] = c.gw.material_measured_t * 1000
        if p["state"] == "failed":
            out["error"] = p["message"]
        if p["state"] == "done":
            r = {"old": {}, "new": {}}
            for k in c.changes:
                r["old"][k] = c.changes[k][0]
                r["new"][k] = c.changes[k][1]
            if c.kind == "zero":
                delta = c.changes["scale.zero_counts"][1] - c.changes["scale.zero_counts"][0]
                r["change_pct"] = delta * 2.0 / ZERO_LIMIT_COUNTS
                r["limit_pct"] = 2.0
            out["result"] = r
        return out

    def mark(self):
        self.inner.mark()


class FakeGateway:
    name = "measure"

    def __init__(self, clock, speed_mps=25.0, module_shaped=False):
        self.clock = clock
        self.module_shaped = module_shaped
        flat = config.validate(_BASE)
        del flat["key_file"]
        self._params = flat
        self.speed_mps = speed_mps
        self.running = True
        self.revs = 0.0
        self.zero_true = 1100
        self.material_measured_t = 0.0
        self.records_list = []
        self.alarms = {}
        self.outputs = {}
        self.coef_value = 0.95
        self.coef_since = 1767225600
        self.coef_history = [[1767225600, 0.95]]
        self.cal = None
        self.polls = 0
        self.max_gap_ms = 0
        self._last_poll = None

    # the 10 Hz job
    def run(self, now_ms):
        if self._last_poll is not None:
            gap = self.clock.ticks_diff(now_ms, self._last_poll)
            if gap > self.max_gap_ms:
                self.max_gap_ms = gap
            if self.running:
                self.revs += self.speed_mps * gap / 1000.0 / self._params["scale.belt_length_m"]
                self.material_measured_t += 0.01
        self._last_poll = now_ms
        self.polls += 1

    # facade
    def params(self):
        return dict(self._params)

    def set_params(self, changes, who):
        checked = config.check_params(changes)
        done = {}
        for k in checked:
            if self._params[k] != checked[k]:
                done[k] = [self._params[k], checked[k]]
        for k in done:
            self._params[k] = done[k][1]
        if done:
            self.emit("event", {"code": "param_changed", "detail": {"who": who, "changes": done}})
            self.alarms["param_changed"] = {"code": "param_changed", "since": self.time(),
                                            "detail": who}
            self.emit("alarm", {"code": "param_changed", "state": "raise", "detail": who})
        return done

    def status(self):
        return {"rate_tph": 812.25, "speed_mps": self.speed_mps, "load_kgpm": 90.0,
                "running": self.running, "total_kg": 123456789,
                "totals": {"interval": 1000, "shift": 20000, "day": 40000, "month": 900000,
                           "year": 5000000},
                "link": {"state": "online", "polls": self.polls, "errors": 0},
                "uplink": {"state": "connected", "backlog": 0},
                "alarms": sorted(self.alarms), "time": self.time(), "extra": {"x": 1}}

    def identity(self):
        return {"device_id": self._params["device_id"],
                "collector": {"serial": "SC-0001", "fw": "1.2"},
                "sensors": [{"kind": "load_cell", "serial": "LC-%d" % i} for i in range(4)],
                "registered": {}}

    def alarms_active(self):
        return [self.alarms[k] for k in sorted(self.alarms)]

    def diag_report(self):
        return {"checks": [{"name": "collector_link", "result": "ok", "figures": {"loss_pct": 0}},
                           {"name": "load_cells", "result": "ok", "figures": None}],
                "summary": {"ok": 2, "warn": 0, "fail": 0}}

    def emit(self, rtype, fields):
        rec = {"seq": len(self.records_list) + 1, "t": int(self.time()), "type": rtype}
        for k in fields:
            rec[k] = fields[k]
        self.records_list.append(rec)
        return rec["seq"]

    def records(self, from_seq, max_n):
        return [r for r in self.records_list if r["seq"] >= from_seq][:max_n]

    def records_time(self, t0, t1, max_n):
        return [r for r in self.records_list if t0 <= r["t"] < t1][:max_n]

    def maintenance_log(self, max_n):
        return [r for r in self.records_list if r["type"] == "event"][-max_n:]

    def events(self, code=None):
        return [r for r in self.records_list
                if r["type"] == "event" and (code is None or r["code"] == code)]

    def time(self):
        return self.clock.time()

    def set_time(self, unix_s, who):
        step = self.clock.set_time(unix_s)
        self.emit("event", {"code": "time_set", "detail": {"who": who, "step_s": step}})

    def coef(self):
        return {"value": self.coef_value, "since": self.coef_since,
                "history": [list(h) for h in self.coef_history]}

    def set_coef(self, value, effective_t, who):
        if not 0.5 <= value <= 1.0:
            raise ValueError("coef must be 0.5..1.0")
        self.coef_history.append([effective_t, value])
        self.coef_value, self.coef_since = value, effective_t
        self.emit("event", {"code": "coef_set", "detail": {"who": who, "value": value,
                                                           "effective_t": effective_t}})

    def register_units(self, who):
        self.registered_by = who
        self.emit("event", {"code": "identity_registered", "detail": {"by": who}})

    def ack_alarm(self, code, who):
        if code not in self.alarms:
            return False
        del self.alarms[code]
        self.emit("event", {"code": "alarm_ack", "detail": {"by": who, "alarm": code}})
        return True

    def set_output(self, do, on, who):
        self.outputs[do] = on
        self.emit("event", {"code": "output_set", "detail": {"who": who, "do": do, "on": on}})

    def _wrap(self, cal):
        return ModuleShapedCal(cal) if self.module_shaped else cal

    def cal_start(self, kind, args, who):
        if "known_t" in args:
            cal = self.cal
            if cal is None or cal.kind != kind:
                raise CalibrationError("no %s test running" % kind)
            if self.material_measured_t <= 0:
                raise CalibrationError("nothing measured yet")
            cal.measured_t = self.material_measured_t
            ratio = args["known_t"] / self.material_measured_t
            if kind == "material":
                old = self._params["scale.material_factor"]
                cal.changes = {"scale.material_factor": [old, old * ratio]}
            else:
                old = self._params["scale.linearization"]
                cal.changes = {"scale.linearization": [old, [[80.0, (ratio - 1) * 100]]]}
            cal.state = "done"
            return self._wrap(cal)
        if self.cal is not None:
            raise CalibrationError("a calibration is already running")
        if not self.running:
            raise CalibrationError("the belt must be running")
        target = args.get("revolutions")
        cal = FakeCal(self, kind, args, target)
        if "points" in args:
            cal._finish()
        if kind in ("material", "lin"):
            self.material_measured_t = 0.0
        self.cal = cal
        self.emit("event", {"code": "cal_start", "detail": {"who": who, "kind": kind}})
        return self._wrap(cal)

    def cal_confirm(self, cal, who, force=False):
        cal = getattr(cal, "inner", cal)
        if not cal.within_limits and not force:
            self.emit("event", {"code": "cal_refused",
                                "detail": {"who": who, "kind": cal.kind,
                                           "reason": cal.limit_message}})
            raise CalibrationError("refused: " + cal.limit_message)
        changes = {}
        for k in cal.changes:
            changes[k] = cal.changes[k][1]
        self.cal = None
        self.emit("event", {"code": "calibration", "detail": {"who": who, "kind": cal.kind,
                                                              "forced": force}})
        return self.set_params(changes, who)

    def cal_cancel(self, cal):
        cal = getattr(cal, "inner", cal)
        self.cal = None
        self.emit("event", {"code": "cal_cancelled", "detail": {"kind": cal.kind}})
