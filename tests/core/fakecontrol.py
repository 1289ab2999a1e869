# A stand-in for gateway.control.Control (the methods the CLI calls, with the agreed
# semantics) and for the calibration procedures (in their own words), for the CLI tests
# on both interpreters. It is also a 10 Hz loop
# job that turns the belt, so calibrations progress in belt revolutions as time passes,
# and that records how late each of its polls ran.
from gateway import config
from gateway.errors import CalibrationError, ConfigError
from gateway.health.alarms import spec
from gateway.measure.calibration import KINDS

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

_DESIGN_COUNTS = 25000  # the zero's change in % of design load is counted against this
ZERO_LIMIT_PCT = 2.0
_ENDS_ITSELF = ("zero", "span_weight", "span_chain")


class FakeCalibrator:
    """gateway.measure.calibration.Calibrator's interface, in its words, on the fake belt:
    zero and span end after their revolutions, speed after its marks, a material or
    linearization test one progress() after finish(weighbridge_kg)."""

    def __init__(self, control):
        self.control = control
        self.kind = None
        self.state = "idle"
        self.marks = 0
        self.measured_kg = None  # the fake scale's batch when finish() was called

    def start(self, kind, revolutions=None, test_kg=None, chain_kgpm=None, distance_m=None):
        if self.state in ("running", "draining"):
            raise CalibrationError("a %s calibration is running; abort it first" % self.kind)
        if kind not in KINDS:
            raise CalibrationError("unknown calibration %r" % kind)
        if not self.control.running:
            raise CalibrationError("the belt must be running")
        self.kind = kind
        self.revolutions = revolutions
        self.distance_m = distance_m
        self.start_revs = self.control.revs
        if kind.startswith("span"):
            self.control.test_load = True  # until the technician declares it removed
        self.state = "running"
        self.marks = 0
        self.result = None
        self.error = None
        self.changes = None
        if kind in ("material", "linearization"):
            self.control.material_measured_t = 0.0
        return self.progress()

    def progress(self):
        if self.state == "idle":
            return {"state": "idle"}
        done = self.control.revs - self.start_revs
        if self.state == "running" and self.kind in _ENDS_ITSELF and (
                done >= self.revolutions or not self.control.running):
            self._result()
        elif self.state == "draining":
            self._result()
        p = {"kind": self.kind, "state": self.state}
        if self.revolutions and self.distance_m is None:
            p["revolutions_done"] = min(done, self.revolutions)
            p["revolutions_needed"] = self.revolutions
        else:
            p["revolutions_done"] = done
        if self.kind == "speed":
            p["marks"] = self.marks
        if self.kind in ("material", "linearization"):
            p["measured_kg"] = self.control.material_measured_t * 1000
            p["min_revolutions"] = 3
            p["min_kg"] = 1000.0
        if self.state == "done":
            p["result"] = self.result
        elif self.state == "failed":
            p["error"] = self.error
        return p

    def mark(self):
        if self.kind != "speed" or self.state != "running":
            raise CalibrationError("%s calibration takes no belt marks" % self.kind)
        self.marks += 1
        if self.marks >= (2 if self.distance_m is not None else self.revolutions + 1):
            self._result()

    def finish(self, weighbridge_kg):
        if self.kind not in ("material", "linearization") or self.state not in ("running",
                                                                               "ended"):
            raise CalibrationError("%s calibration ends by itself" % self.kind)
        self.weighbridge_kg = weighbridge_kg
        if self.state == "running":
            self.measured_kg = self.control.material_measured_t * 1000
        self.state = "draining"

    def end(self):
        if self.kind not in ("material", "linearization") or self.state != "running":
            raise CalibrationError("no material test is running")
        self.measured_kg = self.control.material_measured_t * 1000
        self.state = "ended"

    def abort(self):
        self.state = "idle"

    def weights_removed(self, technician):
        control = self.control
        if not control.test_load:
            raise CalibrationError("no test load is declared on the frame")
        if control.frame_loaded:
            raise CalibrationError("the frame still reads 40.0 % of design load: remove the "
                                   "test load first")
        control.test_load = False
        control.emit("event", {"code": "cal_test_load_removed",
                               "detail": {"technician": technician}})

    def _result(self):
        """The real procedures' result fields, from the fake belt."""
        control = self.control
        if not control.running:
            self.state = "failed"
            self.error = "belt stopped"
            return
        p = control._params
        res = {}
        if self.kind == "zero":
            key, new = "scale.zero_counts", control.zero_true
            res["change_pct"] = (new - p[key]) * 100.0 / _DESIGN_COUNTS
            res["limit_pct"] = ZERO_LIMIT_PCT
            res["revolutions"] = self.revolutions
        elif self.kind in ("span_weight", "span_chain"):
            key = "scale.span_kg_per_count"
            new = p[key] * 1.01
            res["change_pct"] = 1.0
            res["test"] = "weights 55 kg" if self.kind == "span_weight" else "chain 30 kg/m"
            res["net_counts"] = 50000.0
            res["revolutions"] = self.revolutions
        elif self.kind == "speed":
            key = "scale.pulses_per_m"
            new = p[key] * 0.99
            res["change_pct"] = -1.0
            res["metres"] = self.distance_m or self.revolutions * p["scale.belt_length_m"]
            res["pulses"] = int(res["metres"] * new)
        else:
            res["weighbridge_kg"] = self.weighbridge_kg
            res["measured_kg"] = self.measured_kg
            res["load_pct"] = 80.0
            ratio = self.weighbridge_kg / self.measured_kg
            if self.kind == "material":
                key = "scale.material_factor"
                new = p[key] * ratio
                res["error_pct"] = (1 / ratio - 1) * 100.0
            else:
                key = "scale.linearization"
                new = [[80.0, (ratio - 1) * 100]]
                res["correction_pct"] = (ratio - 1) * 100
        res["old"] = {key: p[key]}
        res["new"] = {key: new}
        self.result = res
        self.state = "done"

    def confirm(self, technician=None, force=False):
        if self.state != "done":
            raise CalibrationError("no finished calibration to confirm")
        res = self.result
        detail = dict(res)
        detail["kind"] = self.kind
        detail["technician"] = technician
        if "limit_pct" in res and abs(res["change_pct"]) > res["limit_pct"]:
            if not (force and technician):
                self.control.emit("event", {"code": "cal_refused", "detail": detail})
                raise CalibrationError(
                    "zero change %.3f %% of design load is beyond the limit of %.3f %%; only "
                    "a logged-in technician can force it" % (res["change_pct"], res["limit_pct"]))
            detail["forced"] = True
        try:
            changes = config.check_params(res["new"])
        except ConfigError as e:
            raise CalibrationError("calibration result rejected: %s" % e)
        self.control.emit("event", {"code": "cal_" + self.kind, "detail": detail})
        self.state = "idle"
        return changes


class FakeControl:
    name = "measure"

    def __init__(self, clock, speed_mps=25.0):
        self.clock = clock
        flat = config.validate(_BASE)
        del flat["key_file"]
        self._params = flat
        self.speed_mps = speed_mps
        self.running = True
        self.revs = 0.0
        self.zero_true = 1100
        self.load_pct_now = 0.5
        self.material_measured_t = 0.0
        self.test_load = False  # a span's test load declared on the frame
        self.frame_loaded = False  # the frame reads above the drop-out
        self.records_list = []
        self.alarms = {}
        self.outputs = {}
        self.coef_value = 0.95
        self.coef_since = 1767225600
        self.coef_history = [[1767225600, 0.95]]
        self.cal = FakeCalibrator(self)
        self.polls = 0
        self.reanchored = None  # who re-anchored the output-against-power cross-check
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

    # Control
    def params(self):
        return dict(self._params)

    def reanchor_crosscheck(self, who):
        self.reanchored = who

    def set_params(self, changes, who):
        checked = config.check_params(changes)
        done = {}
        for k in checked:
            if self._params[k] != checked[k]:
                done[k] = [self._params[k], checked[k]]
        for k in done:
            self._params[k] = done[k][1]
        if done:
            self.emit("event", {"code": "param_changed", "detail": {"by": who, "changes": done}})
            self.alarms["param_changed"] = {"code": "param_changed", "since": self.time(),
                                            "detail": who}
            self.emit("alarm", {"code": "param_changed", "state": "raise", "detail": who})
        return done

    def status(self):
        totals = {"interval": {"mass_kg": 1000, "conv_kg": None}}
        for period, kg in (("shift", 20000), ("day", 40000), ("month", 900000),
                           ("quarter", 2500000), ("year", 5000000)):
            totals[period] = {"mass_kg": kg, "conv_kg": kg * self.coef_value}
        return {"time": int(self.time()), "rate_tph": 812.25, "speed_mps": self.speed_mps,
                "load_kgpm": 90.0, "running": self.running,
                "run_state": "running" if self.running else "stopped",
                "total_kg": 123456789, "totals": totals, "coef": self.coef_value,
                "vibration": {}, "link": {"state": "online", "timeouts": 0, "crc_errors": 0},
                "uplink": {"state": "online", "backlog": 0}, "alarms": sorted(self.alarms),
                "diag": self.diag_report()["summary"]}

    def load_pct(self):
        return self.load_pct_now

    def identity(self):
        return {"device_id": self._params["device_id"],
                "collector": {"serial": 70001, "fw": 12, "vendor_id": 1, "model": 2},
                "sensors": [11, 12, 13, 14, 21, 31, 0],
                "registered": {"by": "commissioning", "t": 1767225600, "swapped": 0}}

    def alarms_active(self):
        return [self.alarms[k] for k in sorted(self.alarms)]

    def diag_report(self):
        """The real report's form, each check's result from the active alarms (as
        gateway/health/report.py does)."""
        checks = []
        summary = "pass"
        for name, figs in (("link", {"requests": self.polls, "timeouts": 0}),
                           ("collector", {"supply_mv": 24000, "temp_c": 31.5}),
                           ("clock", {"offset_s": 0})):
            result = "pass"
            for code in self.alarms:
                row = spec(code)
                if row[5] == name:
                    result = "fail" if row[1] == "F" or result == "fail" else "warn"
            if result == "fail" or (result == "warn" and summary == "pass"):
                summary = result
            checks.append({"name": name, "result": result, "figures": figs})
        return {"checks": checks,
                "summary": {"result": summary, "alarms": len(self.alarms), "uptime_s": 3600}}

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
        self.emit("event", {"code": "time_set", "detail": {"by": who, "step_s": step}})

    def coef(self):
        return {"value": self.coef_value, "since": self.coef_since,
                "history": [list(h) for h in self.coef_history]}

    def set_coef(self, value, effective_t, who):
        if not 0.5 <= value <= 1.0:
            raise ConfigError("coef must be 0.5..1.0")
        self.coef_history.append([effective_t, value])
        self.coef_value, self.coef_since = value, effective_t
        self.emit("event", {"code": "coef_set", "detail": {"by": who, "value": value,
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
        self.emit("event", {"code": "output_set", "detail": {"by": who, "do": do, "on": on}})

    def calibrator(self):
        return self.cal
