# The power-cut sweep on the real file system of the boards: MicroPython's littlefs2
# (vfs.VfsLfs2) on a RAM block device that, at its n-th block write, writes a torn prefix
# and then refuses every write. Its bytes are copied into a fresh device, mounted again
# and checked; the dead device is never reused. MicroPython only.
from hal.fs import Flash
from tests.core import storework as w
from tests.core.util import SkipTest

try:
    import vfs
except ImportError:
    vfs = None

_BLOCK = 512
_BLOCKS = 128
_MOUNT = "/lfscut"
_UNTIL = 40  # records in the scripted workload


class CutDevice:
    """A RAM block device (littlefs's extended interface) that dies at its n-th write."""

    def __init__(self, data, cut_at=0):
        self.data = bytearray(data)
        self.cut_at = cut_at
        self.writes = 0
        self.erases = 0
        self.dead = False

    def readblocks(self, block, buf, off=0):
        a = block * _BLOCK + off
        try:
            buf[:] = self.data[a : a + len(buf)]
        except MemoryError:
            # littlefs closing a forgotten file from a gc finaliser: the heap is locked.
            for i in range(len(buf)):
                buf[i] = self.data[a + i]

    def writeblocks(self, block, buf, off=0):
        # A negative return is an error for littlefs, without a traceback on the console.
        if self.dead:
            return -5
        self.writes += 1
        a = block * _BLOCK + off
        if self.writes == self.cut_at:
            half = len(buf) // 2
            self.data[a : a + half] = buf[:half]
            self.dead = True
            return -5
        self.data[a : a + len(buf)] = buf
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // _BLOCK
        if op == 5:
            return _BLOCK
        if op == 6:
            if self.dead:
                return -5
            self.erases += 1
            return 0
        return 0


def _blank():
    dev = CutDevice(bytes(_BLOCK * _BLOCKS))
    vfs.VfsLfs2.mkfs(dev)
    return bytes(dev.data)


def _mounted(dev):
    vfs.mount(vfs.VfsLfs2(dev), _MOUNT)
    return Flash(_MOUNT + "/data")


def _unmount():
    try:
        vfs.umount(_MOUNT)
    except OSError:
        pass


def _clean_writes(blank):
    dev = CutDevice(blank)
    flash = _mounted(dev)
    try:
        w.run(flash, w.Acks(), _UNTIL)
    finally:
        _unmount()
    return dev.writes


def test_power_cut_at_every_block_write_on_littlefs2():
    if vfs is None or not hasattr(vfs, "VfsLfs2"):
        raise SkipTest("needs MicroPython's vfs.VfsLfs2")
    blank = _blank()
    total = _clean_writes(blank)
    assert total > 50  # the sweep below covers a real workload
    for n in range(1, total + 1):
        dev = CutDevice(blank, cut_at=n)
        acks = w.Acks()
        flash = _mounted(dev)
        try:
            w.run(flash, acks, _UNTIL, dead=lambda: dev.dead)
        finally:
            _unmount()
        assert dev.dead, "no cut at write %d of %d" % (n, total)
        fresh = CutDevice(dev.data)
        flash = _mounted(fresh)
        try:
            w.verify(flash, acks)
            # The store goes on after the cut, and what it adds survives a clean restart.
            w.run(flash, acks, acks.seq + 3)
            w.verify(flash, acks)
        except AssertionError as e:
            raise AssertionError("cut at block write %d of %d: %s" % (n, total, e))
        finally:
            _unmount()


def test_full_littlefs_holds_records_in_ram_until_there_is_room():
    if vfs is None or not hasattr(vfs, "VfsLfs2"):
        raise SkipTest("needs MicroPython's vfs.VfsLfs2")
    from gateway.store.recordlog import RecordLog

    dev = CutDevice(bytes(_BLOCK * 48))
    vfs.VfsLfs2.mkfs(dev)
    flash = _mounted(dev)
    alarms = []
    try:
        log = RecordLog(
            flash,
            budget_bytes=1 << 20,  # more than the device holds: the file system fills first
            segment_bytes=2048,
            ram_buffer=64,
            alarm=lambda code, active, detail: alarms.append((code, active)),
        )
        log.open()
        while log.pending == 0 and log.head < 2000:
            seq = log.head + 1
            log.append(*w.make_record(seq))
        assert ("storage_full", True) in alarms and flash.free_bytes() < 4096
        for _ in range(5):
            seq = log.head + 1
            log.append(*w.make_record(seq))
        assert log.pending >= 1 and log.durable < log.head
        log.set_acked(log.durable - 10)  # the center takes most of it: room again
        assert log.flush_pending()
        assert log.pending == 0 and log.durable == log.head
        assert alarms[-1] == ("storage_full", False)
        head = log.head
        log.close()
        log = RecordLog(flash, budget_bytes=1 << 20, segment_bytes=2048)
        log.open()
        assert log.head == head and log.corrupt_found == 0
        seq = log.oldest
        while seq <= head:
            for rec in log.read(seq, 32):
                assert w.same(rec, w.expected(seq))
                seq += 1
    finally:
        _unmount()
