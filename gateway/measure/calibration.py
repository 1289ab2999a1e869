# Calibration procedures. Each procedure is a small state machine fed by the scale after
# every poll; it reports progress in belt revolutions and ends with a proposed set of
# parameter changes that takes effect only when confirmed (the app then validates,
# persists and applies it). What each procedure does: docs/measurement.md.
# Loaded on demand: Measurement.calibrator() imports it, and forgets it when idle.
from gateway import ondemand
from gateway.errors import CalibrationError, ConfigError
from gateway.measure.apply import rev_pulses
from hal.compat import const

IDLE = "idle"
RUNNING = "running"
DRAINING = "draining"  # material test: waiting for the gate to decide the last polls
ENDED = "ended"  # material test: the batch has ended, its weighed mass is awaited
DONE = "done"
FAILED = "failed"

# The procedures; each is recorded as the event cal_<kind> when confirmed.
KINDS = ("zero", "span_weight", "span_chain", "speed", "material", "linearization")

_MIN_REVOLUTIONS = const(3)
# A material test: at least 3 revolutions of loaded travel and 1000 scale divisions
# (HB44); a proposed factor more than 10 % from the one in force needs a force.
_MIN_DIVISIONS = const(1000)
_FACTOR_BAND_PCT = const(10)
_SETTLE_BLOCKS = const(20)  # a test load on the frame for 2 s before a span measures
_LIN_MERGE_PCT = const(5.0)  # a new linearization point this close to an old one replaces it
_LIN_MAX = const(5)


def lin_correction_pct(points, load_pct):
    """The linearization correction (%) at load_pct: linear between the points, flat
    beyond the first and the last, 0 without points (what Scale applies, in floats)."""
    if not points:
        return 0.0
    if load_pct <= points[0][0]:
        return float(points[0][1])
    for i in range(len(points) - 1):
        x0, y0 = points[i]
        x1, y1 = points[i + 1]
        if load_pct < x1:
            return y0 + (y1 - y0) * (load_pct - x0) / (x1 - x0)
    return float(points[-1][1])


def _window_load_pct(s):
    """Mean load over scale s's drop-out window, % of design load (None while stopped)."""
    dw = s._b_d + s._f_d
    if not dw:
        return None
    return (s._b_cp + s._f_cp) / dw * 100.0 / (s.design_kgpm * s.counts_per_kgpm)


class _Procedure:
    inhibit = False  # True: the totalizer stops while it runs (test loads are not coal)

    def __init__(self, kind, scale, flat):
        self.kind = kind
        self.scale = scale
        self.flat = flat
        self.state = RUNNING
        self.error = None
        self.changes = None
        self.detail = None

    def fail(self, why):
        self.state = FAILED
        self.error = why

    def mark(self):
        raise CalibrationError("%s calibration takes no belt marks" % self.kind)

    def finish(self, weighbridge_kg):
        raise CalibrationError("%s calibration ends by itself" % self.kind)

    def progress(self):
        return {}


class _RevolutionAverage(_Procedure):
    """The mean net load over a whole number of belt revolutions, measured in pulses."""

    inhibit = True

    def __init__(self, kind, scale, flat, revolutions):
        _Procedure.__init__(self, kind, scale, flat)
        self.revolutions = revolutions
        self.need_p = revolutions * rev_pulses(scale, flat["scale.belt_length_m"])
        self.acc_cp = 0
        self.acc_p = 0

    def on_poll(self, scale):
        if scale.restarted or scale.jumped or not scale.ok:
            self.fail("the load could not be measured (cell, ADC or counter fault)")
            return
        cp, dp = scale.cp, scale.dp
        if not dp:
            return
        left = self.need_p - self.acc_p
        if dp >= left:
            # Only the part of this poll's travel that completes the last revolution.
            self.acc_cp += (cp * left + dp // 2) // dp
            self.acc_p = self.need_p
            self.mean_net = self.acc_cp / self.acc_p
            self._result()
        else:
            self.acc_cp += cp
            self.acc_p += dp

    def progress(self):
        return {
            "revolutions_done": round(self.acc_p / self.need_p * self.revolutions, 3),
            "revolutions_needed": self.revolutions,
        }


class _Zero(_RevolutionAverage):
    def _result(self):
        s = self.scale
        old = self.flat["scale.zero_counts"]
        new = s.zero_eff + int(round(self.mean_net))
        self.zero = new
        design = s.design_kgpm * s.counts_per_kgpm
        # Measured against the zero of the last verified calibration, not the one in
        # force: a series of small zero calibrations cannot walk the zero away.
        ref = self.flat.get("scale.zero_ref_counts")  # kept by the app with the parameters
        if ref is None:
            ref = s.zero_eff
        self.change_pct = (new - ref) / design * 100.0
        self.limit_pct = self.flat["scale.zero_limit_pct"]
        self.changes = {"scale.zero_counts": new}
        self.detail = {
            "old": {"scale.zero_counts": old, "autozero_counts": s.az_counts},
            "new": {"scale.zero_counts": new},
            "reference_counts": ref,
            "change_pct": round(self.change_pct, 4),
            "limit_pct": self.limit_pct,
            "revolutions": self.revolutions,
            "pulses": self.acc_p,
        }
        self.state = DONE


class _Span(_RevolutionAverage):
    """Test weights or a chain: the totalizer stops from the start until the technician
    declares them removed (Calibrator.weights_removed), and the revolutions are counted
    once the test load has been on the frame for 2 s."""

    def __init__(self, kind, scale, flat, revolutions, frame_kg, what):
        _RevolutionAverage.__init__(self, kind, scale, flat, revolutions)
        self.frame_kg = frame_kg
        self.what = what
        self._settled = 0
        scale.test_load = True

    def on_poll(self, scale):
        if self._settled < _SETTLE_BLOCKS:
            if scale.ok and scale.on_frame:
                self._settled += scale.n
            else:
                self._settled = 0
            return
        _RevolutionAverage.on_poll(self, scale)

    def progress(self):
        out = _RevolutionAverage.progress(self)
        if self._settled < _SETTLE_BLOCKS:
            out["waiting"] = "the test load on the frame"
        return out

    def _result(self):
        s = self.scale
        design = s.design_kgpm * s.counts_per_kgpm
        if self.mean_net < 0.05 * design:
            self.fail("the test load raised the reading by %d counts only" % int(self.mean_net))
            return
        old = self.flat["scale.span_kg_per_count"]
        new = self.frame_kg / self.mean_net
        self.changes = {"scale.span_kg_per_count": new}
        self.detail = {
            "old": {"scale.span_kg_per_count": old},
            "new": {"scale.span_kg_per_count": new},
            "test": self.what,
            "frame_kg": self.frame_kg,
            "net_counts": round(self.mean_net, 1),
            "change_pct": round((new / old - 1) * 100.0, 4),
            "revolutions": self.revolutions,
        }
        self.state = DONE


class _Speed(_Procedure):
    """Pulses per metre from belt marks: whole revolutions of a belt of measured length,
    or a measured test distance between two marks."""

    def __init__(self, kind, scale, flat, revolutions, distance_m):
        _Procedure.__init__(self, kind, scale, flat)
        self.revolutions = revolutions
        self.distance_m = distance_m
        self.marks = 0
        self.p0 = 0
        self.state = RUNNING

    def on_poll(self, scale):
        if self.marks and (scale.restarted or scale.jumped):
            self.fail("the pulse counter jumped during the speed calibration")

    def mark(self):
        if self.state != RUNNING:
            raise CalibrationError("speed calibration is %s" % self.state)
        p = self.scale.travel_p
        self.marks += 1
        if self.marks == 1:
            self.p0 = p
            return
        if self.distance_m is None and self.marks <= self.revolutions:
            return
        pulses = p - self.p0
        metres = self.distance_m
        if metres is None:
            metres = self.revolutions * self.flat["scale.belt_length_m"]
        if pulses <= 0:
            self.fail("the belt did not move between the marks")
            return
        old = self.flat["scale.pulses_per_m"]
        new = pulses / metres
        self.changes = {"scale.pulses_per_m": new}
        self.detail = {
            "old": {"scale.pulses_per_m": old},
            "new": {"scale.pulses_per_m": new},
            "pulses": pulses,
            "metres": metres,
            "change_pct": round((new / old - 1) * 100.0, 4),
        }
        self.state = DONE

    def progress(self):
        moved = self.scale.travel_p - self.p0 if self.marks else 0
        rev_p = rev_pulses(self.scale, self.flat["scale.belt_length_m"])
        out = {"marks": self.marks, "revolutions_done": round(moved / rev_p, 3)}
        if self.distance_m is None:
            out["revolutions_needed"] = self.revolutions
        else:
            out["distance_m"] = self.distance_m
        return out


class _Material(_Procedure):
    """A batch weighed on a weighbridge against the batch totalized by the scale. The
    batch ends at an end mark: the technician's (end, or the weighed mass typed), or the
    belt running empty a whole revolution after it; what passes later is not part of it.
    It must hold 3 revolutions of loaded travel and 1000 scale divisions."""

    def __init__(self, kind, scale, flat):
        _Procedure.__init__(self, kind, scale, flat)
        self.g0 = scale.total_g
        self.loaded0 = scale.loaded_p
        self.travel0 = scale.travel_p
        self.weighbridge_kg = None
        self.drain_to = 0
        self.rev_p = rev_pulses(scale, flat["scale.belt_length_m"])
        self.min_g = int(_MIN_DIVISIONS * flat["scale.division_kg"] * 1000)
        self.batch = None  # (grams, loaded pulses) at the end mark
        self.by_mark = False
        self._empty_p = 0
        self._lp = scale.loaded_p

    def on_poll(self, scale):
        if self.state == RUNNING:
            if scale.loaded_p > self.loaded0:  # the batch has come
                # Empty as the drop-out gate decides (a splice alone does not load it).
                loaded = scale.loaded_p != self._lp
                self._empty_p = 0 if loaded else self._empty_p + scale.dp
                if self._empty_p >= self.rev_p:
                    self._end_mark(True)
            self._lp = scale.loaded_p
        elif self.state == DRAINING and scale.gate_decided(self.drain_to):
            self.batch = self._measured()
            if self.weighbridge_kg is None:
                self.state = ENDED
            else:
                self._result()

    def _end_mark(self, by_mark):
        self.by_mark = by_mark
        self.drain_to = self.scale.gate_seq()
        self.state = DRAINING

    def end(self):
        """The technician's end mark: the batch has passed the frame."""
        if self.state != RUNNING:
            raise CalibrationError("material test is %s" % self.state)
        self._end_mark(True)

    def finish(self, weighbridge_kg):
        if self.state not in (RUNNING, ENDED):
            raise CalibrationError("material test is %s" % self.state)
        if not weighbridge_kg > 0:
            raise CalibrationError("the weighbridge mass must be > 0 kg")
        self.weighbridge_kg = float(weighbridge_kg)
        if self.state == ENDED:
            self._result()
        else:
            self._end_mark(False)

    def _measured(self):
        s = self.scale
        return s.total_g - self.g0, s.loaded_p - self.loaded0

    def _result(self):
        s = self.scale
        load = _window_load_pct(s)
        if not self.by_mark and load is not None and load >= s.dropout_pct:
            self.fail("the belt is still loaded: end the test once the batch has passed")
            return
        g, loaded_p = self.batch
        if g <= 0:
            self.fail("nothing was totalized during the test")
            return
        if loaded_p < _MIN_REVOLUTIONS * self.rev_p or g < self.min_g:
            self.fail(
                "the batch was too small (%.2f revolutions of loaded travel, %.0f kg): a "
                "material test needs %d revolutions and %.0f kg (%d scale divisions)"
                % (loaded_p / self.rev_p, g / 1000.0, _MIN_REVOLUTIONS, self.min_g / 1000.0,
                   _MIN_DIVISIONS)
            )
            return
        self.ratio = self.weighbridge_kg * 1000.0 / g
        self.load_pct = g / 1000.0 / (loaded_p / s.pulses_per_m) / s.design_kgpm * 100.0
        self._propose(g)
        self.state = DONE

    def _propose(self, g):
        old = self.flat["scale.material_factor"]
        new = old * self.ratio
        self.change_pct = (new / old - 1) * 100.0
        self.limit_pct = _FACTOR_BAND_PCT
        self.changes = {"scale.material_factor": new}
        self.detail = {
            "old": {"scale.material_factor": old},
            "new": {"scale.material_factor": new},
            "weighbridge_kg": self.weighbridge_kg,
            "measured_kg": g / 1000.0,
            "load_pct": round(self.load_pct, 2),
            "error_pct": round((1 / self.ratio - 1) * 100.0, 4),
            "change_pct": round(self.change_pct, 4),
            "limit_pct": self.limit_pct,
        }

    def progress(self):
        g, loaded_p = self.batch or self._measured()
        return {
            "measured_kg": g / 1000.0,
            "revolutions_done": round((self.scale.travel_p - self.travel0) / self.rev_p, 3),
            "loaded_revolutions": round(loaded_p / self.rev_p, 3),
            "min_revolutions": _MIN_REVOLUTIONS,
            "min_kg": self.min_g / 1000.0,
        }


class _LinearizationPoint(_Material):
    """A material test at one flow rate that sets the correction at its mean load."""

    def _propose(self, g):
        old = [list(p) for p in self.flat["scale.linearization"]]
        corr_old = lin_correction_pct(old, self.load_pct)
        corr = ((1.0 + corr_old / 100.0) * self.ratio - 1.0) * 100.0
        pts = [p for p in old if abs(p[0] - self.load_pct) >= _LIN_MERGE_PCT]
        if len(pts) >= _LIN_MAX:
            pts.sort(key=lambda p: abs(p[0] - self.load_pct))
            pts = pts[1:]
        pts.append([round(self.load_pct, 2), round(corr, 4)])
        pts.sort(key=lambda p: p[0])
        self.changes = {"scale.linearization": pts}
        self.detail = {
            "old": {"scale.linearization": old},
            "new": {"scale.linearization": pts},
            "weighbridge_kg": self.weighbridge_kg,
            "measured_kg": g / 1000.0,
            "load_pct": round(self.load_pct, 2),
            "correction_pct": round(corr, 4),
        }


class Calibrator:
    """Runs one calibration at a time: start(kind, ...), progress(), mark() / finish()
    where the procedure needs them, then confirm() returns the changes to apply."""

    def __init__(self, scale, emit):
        self.scale = scale
        self.emit = emit
        self.proc = None
        self.flat = None

    def apply_params(self, flat):
        self.flat = flat

    def start(self, kind, revolutions=None, test_kg=None, chain_kgpm=None, distance_m=None):
        """Start procedure `kind` (KINDS). The CLI's words for each: gateway/cli/syntax.py."""
        if self.proc is not None and self.proc.state in (RUNNING, DRAINING):
            raise CalibrationError("a %s calibration is running; abort it first" % self.proc.kind)
        s, flat = self.scale, self.flat
        if kind in ("zero", "span_weight", "span_chain"):
            revolutions = _MIN_REVOLUTIONS if revolutions is None else int(revolutions)
            if revolutions < _MIN_REVOLUTIONS:
                raise CalibrationError("%s needs at least %d belt revolutions"
                                       % (kind, _MIN_REVOLUTIONS))
        if kind == "zero":
            p = _Zero(kind, s, flat, revolutions)
        elif kind == "span_weight":
            if test_kg is None or not test_kg > 0:
                raise CalibrationError("span_weight needs test_kg > 0 (the weights on the frame)")
            p = _Span(kind, s, flat, revolutions, float(test_kg), "weights %s kg" % test_kg)
        elif kind == "span_chain":
            if chain_kgpm is None or not chain_kgpm > 0:
                raise CalibrationError("span_chain needs chain_kgpm > 0")
            frame_kg = float(chain_kgpm) * flat["scale.weigh_length_m"]
            p = _Span(kind, s, flat, revolutions, frame_kg, "chain %s kg/m" % chain_kgpm)
        elif kind == "speed":
            if distance_m is None:
                revolutions = 1 if revolutions is None else int(revolutions)
                if revolutions < 1:
                    raise CalibrationError("speed needs revolutions >= 1")
            elif not distance_m > 0:
                raise CalibrationError("distance_m must be > 0")
            p = _Speed(kind, s, flat, revolutions,
                       None if distance_m is None else float(distance_m))
        elif kind == "material":
            p = _Material(kind, s, flat)
        elif kind == "linearization":
            p = _LinearizationPoint(kind, s, flat)
        else:
            raise CalibrationError("unknown calibration %r (%s)" % (kind, ", ".join(KINDS)))
        self.proc = p
        s.inhibit = p.inhibit
        return self.progress()

    def on_poll(self, scale):
        p = self.proc
        if p is not None and p.state in (RUNNING, DRAINING):
            p.on_poll(scale)
            if p.state not in (RUNNING, DRAINING):
                scale.inhibit = False  # a span's test load stays declared (test_load)

    def mark(self):
        self._running().mark()
        return self.progress()

    def end(self):
        """The end mark of a material test's batch."""
        p = self.proc
        if p is None or not hasattr(p, "end"):
            raise CalibrationError("no material test is running")
        p.end()
        return self.progress()

    def finish(self, weighbridge_kg):
        p = self.proc
        if p is None or p.state not in (RUNNING, ENDED):
            raise CalibrationError("no calibration is running")
        p.finish(weighbridge_kg)
        return self.progress()

    def abort(self):
        if self.proc is not None:
            self.scale.inhibit = False
            self.proc = None

    def weights_removed(self, technician):
        """The technician declares the span's test weights or chain removed. Accepted once
        the frame reads near zero (below the drop-out); the totalizer counts again."""
        s = self.scale
        if not s.test_load:
            raise CalibrationError("no test load is declared on the frame")
        if self.proc is not None and self.proc.state == RUNNING:
            raise CalibrationError("a %s calibration is running" % self.proc.kind)
        design = s.design_kgpm * s.counts_per_kgpm
        pct = s.net * 100.0 / design
        if not s.ok or pct >= s.dropout_pct or -pct >= s.dropout_pct:
            raise CalibrationError(
                "the frame still reads %.1f %% of design load: remove the test load first" % pct
            )
        s.test_load = False
        self.emit("event", {"code": "cal_test_load_removed", "detail": {
            "technician": technician,
            "calibrating_m": round(s.calibrating_p / s.pulses_per_m, 1),
        }})

    def _running(self):
        if self.proc is None or self.proc.state != RUNNING:
            raise CalibrationError("no calibration is running")
        return self.proc

    def progress(self):
        p = self.proc
        if p is None:
            return {"state": IDLE}
        out = {"kind": p.kind, "state": p.state}
        out.update(p.progress())
        if p.state == DONE:
            out["result"] = p.detail
        elif p.state == FAILED:
            out["error"] = p.error
        return out

    def confirm(self, technician=None, force=False):
        """The changes of the finished calibration, validated, for the app to persist and
        apply. A change beyond its limit (a zero beyond scale.zero_limit_pct of the
        verified zero, a material factor beyond 10 % of the one in force) is refused unless
        forced by a logged-in technician. Records the calibration (or the refusal) as an
        event. A zero forced so (or the first one) becomes the verified zero."""
        p = self.proc
        if p is None or p.state != DONE:
            raise CalibrationError("no finished calibration to confirm")
        detail = dict(p.detail)
        detail["kind"] = p.kind
        detail["technician"] = technician
        limit = getattr(p, "limit_pct", None)
        forced = False
        if limit is not None and abs(p.change_pct) > limit:
            if not (force and technician):
                self.emit("event", {"code": "cal_refused", "detail": detail})
                raise CalibrationError(
                    "%s change %.3f %% is beyond the limit of %.3f %%; only a logged-in "
                    "technician can force it" % (p.kind, p.change_pct, limit)
                )
            detail["forced"] = forced = True
        try:
            changes = ondemand.call("gateway.config", "check_params", p.changes)
        except ConfigError as e:
            raise CalibrationError("calibration result rejected: %s" % e)
        first = self.flat.get("scale.zero_ref_counts") is None
        if p.kind == "zero" and technician and (forced or first):
            self.scale.verified_zero = p.zero
            detail["verified"] = True
        self.emit("event", {"code": "cal_" + p.kind, "detail": detail})
        self.proc = None
        return changes
