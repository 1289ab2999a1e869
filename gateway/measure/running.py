# Running detection from the motor's open/stop sensor (DI1), the belt's travel and its
# load. The belt runs while it moves at run_min_speed_mps or faster, judged over a second
# of blocks, with hysteresis (it stops below 3/4 of that speed, held for 2 s) and a least run
# time, so a belt creeping at the threshold does not flap. DI1 and the pulses must agree,
# and when they do not for scale.run_mismatch_s the contradiction is an alarm: DI1 on
# without pulses, with load on the frame and no sign of the belt moving, is belt slip;
# pulses with DI1 off an open/stop-sensor fault.
# Time is counted in the collector's 100 ms blocks, so missed polls lose no run time.
from hal.compat import const

_BLOCK_HZ = const(10)
# The speed over a window decides, not one block's pulses: at least a second, and up to
# 5 s until it holds a few pulses (a coarse sensor: 8 pulses/m at 0.05 m/s is one pulse
# every 2.5 s).
_WINDOW = const(10)  # blocks
_WINDOW_MAX = const(50)
_WINDOW_PULSES = const(4)
_STOP_BLOCKS = const(20)  # below 3/4 of the least running speed for 2 s: stopped
_MIN_RUN_BLOCKS = const(100)  # a run lasts at least 10 s
_SPEED_SENSOR = const(0x10)

RUNNING = "running"
STOPPED = "stopped"
SLIP = "belt_slip"
OPEN_STOP = "open_stop_fault"


class Running:
    def __init__(self, emit, alarm):
        self.emit = emit
        self.alarm = alarm
        self.moving = False  # the belt runs (debounced)
        self.di1 = False
        self.loaded = False
        self.run_blocks = 0  # lifetime
        self.loaded_blocks = 0  # lifetime, running with the gate open
        self.poll_run_blocks = 0  # this poll's share of run time
        self.slip = False
        self.open_stop = False
        self._still = 0  # blocks without travel
        self._slip_n = 0
        self._open_n = 0
        self._start_blocks = 0  # run_blocks when the current run began
        # The speed window: pulses, blocks, blocks that had travel; and the blocks of
        # windows below 3/4 of the least running speed.
        self._w = [0, 0, 0, 0]

    def apply_params(self, flat):
        # Pulses per 1000 s at the least speed that counts as moving.
        pps = float(flat["scale.run_min_speed_mps"]) * float(flat["scale.pulses_per_m"])
        self._min_pps = max(1, int(pps * 1000 + 0.5))
        self._mismatch = int(float(flat["scale.run_mismatch_s"]) * _BLOCK_HZ + 0.5)

    def update(self, di, status, dp, n, loaded, on_frame=True, lost=False):
        """One poll: di (bit0 DI1), collector status, pulses (measured or estimated) and
        blocks since the last poll, whether the load is above the drop-out, whether the
        frame carries load (travel or not), whether the speed sensor is known lost."""
        di1 = bool(di & 1)
        self.di1 = di1
        counted = 0
        w = self._w
        w[0] += dp
        w[1] += n
        if dp:
            w[2] += n
            self._still = 0
        else:
            self._still += n
        wn = w[1]
        if wn >= _WINDOW and (w[0] >= _WINDOW_PULSES or wn >= _WINDOW_MAX):
            mpps = w[0] * _BLOCK_HZ * 1000
            lim = self._min_pps * wn
            if mpps >= lim:
                w[3] = 0
                if not self.moving:
                    self.moving = True
                    self._start_blocks = self.run_blocks
                    counted = w[2] - (n if dp else 0)  # the window before this poll
                    self.emit("event", {"code": "belt_start", "detail": {"di1": di1}})
            elif mpps * 4 < lim * 3:
                w[3] += wn
            else:
                w[3] = 0  # between the two thresholds: the state holds
            w[0] = w[1] = w[2] = 0
        if (
            self.moving
            and (self._still >= _STOP_BLOCKS or w[3] >= _STOP_BLOCKS)
            and self.run_blocks - self._start_blocks >= _MIN_RUN_BLOCKS
        ):
            self.moving = False
            run_s = (self.run_blocks - self._start_blocks) / _BLOCK_HZ
            self.emit("event", {"code": "belt_stop", "detail": {"di1": di1, "run_s": run_s}})
        if self.moving and dp:
            counted += n
        self.poll_run_blocks = counted
        self.run_blocks += counted
        if loaded:
            self.loaded_blocks += counted
        self.loaded = loaded and counted > 0
        # The contradictions judge each poll's own speed.
        moving_now = lost or dp * _BLOCK_HZ * 1000 >= self._min_pps * n and dp > 0
        # Contradictions, counted while they last.
        if di1 and not moving_now and on_frame:
            self._slip_n += n
        else:
            self._slip_n = 0
        if moving_now and not di1:
            self._open_n += n
        else:
            self._open_n = 0
        slip = self._slip_n >= self._mismatch
        if slip != self.slip:
            self.slip = slip
            if slip:
                if status & _SPEED_SENSOR:
                    why = "speed sensor disconnected"
                else:
                    why = "belt slip or speed sensor fault"
                detail = "motor running (DI1) but no belt pulses: %s" % why
            else:
                detail = "belt pulses agree with DI1 again"
            self.alarm("belt_slip", slip, detail)
        open_stop = self._open_n >= self._mismatch
        if open_stop != self.open_stop:
            self.open_stop = open_stop
            self.alarm(
                "open_stop_sensor",
                open_stop,
                "belt moving but DI1 says the motor is off: open/stop sensor fault"
                if open_stop
                else "DI1 agrees with the belt pulses again",
            )

    def state(self):
        if self.slip:
            return SLIP
        if self.open_stop:
            return OPEN_STOP
        return RUNNING if self.moving else STOPPED

    def snapshot(self):
        return {
            "moving": self.moving,
            "run_blocks": self.run_blocks,
            "loaded_blocks": self.loaded_blocks,
            "start_blocks": self._start_blocks,
            "slip": self.slip,
            "open_stop": self.open_stop,
        }

    def restore(self, d):
        self.moving = bool(d["moving"])
        self.run_blocks = int(d["run_blocks"])
        self.loaded_blocks = int(d["loaded_blocks"])
        self._start_blocks = int(d["start_blocks"])
        self.slip = bool(d["slip"])
        self.open_stop = bool(d["open_stop"])
