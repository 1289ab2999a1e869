# The one loop. Jobs are objects with run(now_ms); each has a period, and deadlines
# advance by the period, not from the clock, so a 10 Hz poll stays at 10 Hz.
# Every job must return quickly: nothing in here waits on the network or a user.
from hal.compat import const, print_exception

_STALL_MIN_MS = const(5000)


# A job's slot on the loop: a list indexed by these (half the heap of an object).
_JOB = const(0)
_PERIOD = const(1)
_DUE = const(2)
_LAST_OK = const(3)
_ERRORS = const(4)
_OVERRUNS = const(5)
_FAILURE = const(6)  # (class, args) of the failure the job is in now, or None
_IN_ROW = const(7)  # how many runs in a row it has failed that way


def _failed(s, e):
    # The same failure again in a row is counted, not printed: a job failing every 10 ms
    # would bury the console (and the loop's time) in tracebacks. The count is said when
    # the failure ends or changes, and at 10, 100, 1000... while it goes on.
    what = (e.__class__, e.args)
    if what != s[_FAILURE]:
        _said_count(s, "")
        s[_FAILURE] = what
        print("job %s failed:" % s[_JOB].name)
        print_exception(e)
    s[_IN_ROW] += 1
    n = s[_IN_ROW]
    while n % 10 == 0:
        n //= 10
    if n == 1:
        _said_count(s, " so far")


def _said_count(s, still):
    if s[_IN_ROW] > 1:
        print("job %s: that failure %d times in a row%s" % (s[_JOB].name, s[_IN_ROW], still))
    if not still:
        s[_FAILURE] = None
        s[_IN_ROW] = 0


class Loop:
    """slack_ms: how long one job may legitimately hold the loop (the collector waiting
    on the bus). A job that starts later than its period plus this is an overrun."""

    def __init__(self, clock, watchdog=None, wait=None, slack_ms=0):
        self.clock = clock
        self.slack_ms = slack_ms
        self.watchdog = watchdog
        self._wait = wait or clock.sleep_ms  # wait(ms): sleep, or poll streams until ms
        self._slots = []
        self.running = False
        self.max_late_ms = 0
        self.iterations = 0

    def add(self, job, period_ms, phase_ms=0):
        now = self.clock.ticks_ms()
        due = self.clock.ticks_add(now, phase_ms)
        self._slots.append([job, period_ms, due, due, 0, 0, None, 0])
        return job

    def stats(self):
        return {
            s[_JOB].name: {"errors": s[_ERRORS], "overruns": s[_OVERRUNS], "period_ms": s[_PERIOD]}
            for s in self._slots
        }

    def _run_slot(self, s, now):
        c = self.clock
        late = c.ticks_diff(now, s[_DUE])
        if late > self.max_late_ms:
            self.max_late_ms = late
        try:
            s[_JOB].run(now)
            s[_LAST_OK] = now
            if s[_FAILURE] is not None:
                _said_count(s, "")
        except Exception as e:  # a job's bug must not stop the others; it is counted
            s[_ERRORS] += 1
            _failed(s, e)
        period = s[_PERIOD]
        if late >= period + self.slack_ms:
            s[_OVERRUNS] += 1
        s[_DUE] = c.ticks_add(s[_DUE], period)
        if c.ticks_diff(now, s[_DUE]) >= period:
            # Fell more than a period behind: skip the missed runs instead of bursting.
            s[_DUE] = c.ticks_add(now, period)

    def _stalled(self, s, now):
        return self.clock.ticks_diff(now, s[_LAST_OK]) > max(10 * s[_PERIOD], _STALL_MIN_MS)

    def progressing(self, now):
        """True while every job has completed a run recently (what feeds the watchdog)."""
        for s in self._slots:
            if self._stalled(s, now):
                return False
        return True

    def stalled(self, now):
        """Names of the jobs that have not completed a run recently."""
        return [s[_JOB].name for s in self._slots if self._stalled(s, now)]

    def step(self):
        """Run every job that is due; return ms until the next one is."""
        c = self.clock
        now = c.ticks_ms()
        for s in self._slots:
            if c.ticks_diff(now, s[_DUE]) >= 0:
                self._run_slot(s, now)
                now = c.ticks_ms()
        self.iterations += 1
        if self.watchdog is not None and self.progressing(now):
            self.watchdog.feed()
        wait = 1000
        for s in self._slots:
            d = c.ticks_diff(s[_DUE], now)
            if d < wait:
                wait = d
        return wait if wait > 0 else 0

    def run(self, duration_ms=None):
        c = self.clock
        self.running = True
        start = c.ticks_ms()
        while self.running:
            wait = self.step()
            if duration_ms is not None:
                left = duration_ms - c.ticks_diff(c.ticks_ms(), start)
                if left <= 0:
                    break
                wait = min(wait, left)
            if wait:
                self._wait(wait)
        self.running = False

    def stop(self):
        self.running = False
