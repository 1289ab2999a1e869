# The store workload as a process that a test kills with SIGKILL at random moments:
#   python -u tests/harness/store_worker.py DIR CENTER_NEXT     (or micropython)
# It reports every step on stdout as it happens (tests/core/storework.py: run) and never
# stops by itself.
import sys

_HERE = __file__.rpartition("/")[0] or "."
sys.path.insert(0, _HERE + "/../..")

from hal.fs import Flash  # noqa: E402
from tests.core import storework as w  # noqa: E402

SEGMENT_BYTES = 2048
BUDGET_BYTES = 16384


def _say(tag, n):
    sys.stdout.write("%s %d\n" % (tag, n))


def main(argv):
    acks = w.Acks()
    acks.center_next = int(argv[1])
    flash = Flash(argv[0])
    w.open_store(flash, acks, segment_bytes=SEGMENT_BYTES, budget_bytes=BUDGET_BYTES)
    _say("R", 0)
    w.run(flash, acks, 1 << 30, say=_say, segment_bytes=SEGMENT_BYTES, budget_bytes=BUDGET_BYTES)


if __name__ == "__main__":
    main(sys.argv[1:])
