# The health of one device's link, kept by its driver (codecs only raise): ok / degraded /
# lost from the outcome of each attempt, and a back-off from a device that stays silent.
# Shared by the collector driver and the power-terminal driver (one per terminal).
from hal.compat import const

_HIST_BITS = const(16)
_HIST_MASK = const(0xFFFF)
_DEGRADED_FAILS = const(2)  # failed attempts among the last _HIST_BITS that make it degraded


class LinkHealth:
    """A device that stays silent for more than `retries` + 1 attempts in a row is asked
    again only after an exponential back-off (`backoff_ms` doubling up to
    `backoff_max_ms`); `ready(now)` says whether that wait is over. The first answer
    clears it. An answer is any valid frame from the device, a refusal included."""

    def __init__(self, clock, retries=2, backoff_ms=200, backoff_max_ms=2000):
        self._clock = clock
        self.retries = retries
        self.backoff_ms = backoff_ms
        self.backoff_max_ms = backoff_max_ms
        self.consecutive_failures = 0
        self._silent = 0  # consecutive attempts that heard nothing at all
        self._hist = 0  # 1 bits: failed attempts, newest in bit 0
        self._answered = False
        self._resume_at = None

    @property
    def state(self):
        if self.consecutive_failures > self.retries or not self._answered:
            return "lost"
        h = self._hist
        n = 0
        while h:
            n += h & 1
            h >>= 1
        if self.consecutive_failures or n >= _DEGRADED_FAILS:
            return "degraded"
        return "ok"

    def ready(self, now_ms):
        """False while backing off from a silent device."""
        return self._resume_at is None or self._clock.ticks_diff(now_ms, self._resume_at) >= 0

    def answered(self):
        self._hist = (self._hist << 1) & _HIST_MASK
        self.consecutive_failures = 0
        self._silent = 0
        self._answered = True
        self._resume_at = None

    def failed(self, silent):
        """An attempt without a valid answer; silent: nothing at all was heard (or the
        port failed), which is what backs off."""
        self._hist = ((self._hist << 1) | 1) & _HIST_MASK
        self.consecutive_failures += 1
        self._silent = self._silent + 1 if silent else 0
        over = self._silent - self.retries - 1
        if over >= 0:
            wait = self.backoff_ms << over if over < 16 else self.backoff_max_ms
            if wait > self.backoff_max_ms:
                wait = self.backoff_max_ms
            c = self._clock
            self._resume_at = c.ticks_add(c.ticks_ms(), wait)
