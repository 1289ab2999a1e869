# Running detection from the motor's open/stop sensor (DI1), the belt's travel and its
# load. The belt runs while it moves; DI1 and the pulses must agree, and when they do not
# for scale.run_mismatch_s the contradiction is an alarm: DI1 on without pulses is belt
# slip or a speed-sensor fault, pulses with DI1 off an open/stop-sensor fault.
# Time is counted in the collector's 100 ms blocks, so missed polls lose no run time.
from hal.compat import const

_BLOCK_HZ = const(10)
_STOP_BLOCKS = const(20)  # no travel for 2 s: the belt has stopped
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

    def apply_params(self, flat):
        # Pulses per second at the least speed that counts as moving.
        pps = float(flat["scale.run_min_speed_mps"]) * float(flat["scale.pulses_per_m"])
        self._min_pps = max(1, int(pps + 0.5))
        self._mismatch = int(float(flat["scale.run_mismatch_s"]) * _BLOCK_HZ + 0.5)

    def update(self, di, status, dp, n, loaded):
        """One poll: di (bit0 DI1), collector status, pulses and blocks since the last
        poll, and whether the load is above the drop-out."""
        di1 = bool(di & 1)
        self.di1 = di1
        moving_now = dp * _BLOCK_HZ >= self._min_pps * n and dp > 0
        self.poll_run_blocks = n if moving_now else 0
        if moving_now:
            self._still = 0
            self.run_blocks += n
            if loaded:
                self.loaded_blocks += n
            if not self.moving:
                self.moving = True
                self._start_blocks = self.run_blocks - n
                self.emit("event", {"code": "belt_start", "detail": {"di1": di1}})
        else:
            self._still += n
            if self.moving and self._still >= _STOP_BLOCKS:
                self.moving = False
                run_s = (self.run_blocks - self._start_blocks) / _BLOCK_HZ
                self.emit("event", {"code": "belt_stop", "detail": {"di1": di1, "run_s": run_s}})
        self.loaded = loaded and moving_now
        # Contradictions, counted while they last.
        if di1 and not moving_now:
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

    def status(self):
        return {
            "state": self.state(),
            "di1": self.di1,
            "loaded": self.loaded,
            "run_s": self.run_blocks / _BLOCK_HZ,
            "loaded_run_s": self.loaded_blocks / _BLOCK_HZ,
        }

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
