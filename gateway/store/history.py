# The record log read by time, for people (the CLI's `log` and `records`, the center's
# queries through gateway/control.py, with which it is loaded and forgotten).
from gateway.store import codec


def read_time(log, t0, t1, max_n=256):
    """Up to max_n records of log (a gateway.store.recordlog.RecordLog) with t0 <= t < t1,
    in seq order. Segments are found by the time of their first record, which assumes the
    clock mostly moves forward: after a backward clock step, read by seq to see everything."""
    out = []
    if max_n <= 0:
        return out

    def keep(payload):
        t = codec.decode_t(payload)
        return t0 <= t < t1

    segs = log._segs
    start = 0
    lo, hi = 0, len(segs) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        ft = log._header(mid)[1]
        if ft is not None and ft <= t0:
            start = mid
            lo = mid + 1
        else:
            hi = mid - 1
    i = start
    while i < len(segs):
        ft = log._header(i)[1]
        if i > start and ft is not None and ft >= t1:
            return out
        if not log._scan(i, 0, keep, out, max_n):
            return out
        i += 1
    log._pending_into(0, keep, out, max_n)
    return out
