# A flash that fails on purpose, for tests: the hal.fs.Flash API over an in-memory file
# system that can lose power after the n-th write, tear that write, flip bits, run out
# of space or fail writes. The store only speaks the Flash API, so it cannot tell.
#
# Durability model (the harsher of POSIX and littlefs where they differ):
# - bytes written are visible to readers at once, durable only after flash.sync(f);
#   close() and f.flush() make nothing durable;
# - creating or truncating a file (open "w"), rename and remove are atomic and durable
#   when they return;
# - after a cut, restart("synced") keeps only synced bytes (littlefs: a file rolls
#   back to its last sync); restart("written") keeps every byte written before the
#   cut, including the torn prefix of the write the cut interrupted (a POSIX page
#   cache that reached the disk just before the power went).
from hal.compat import MICROPYTHON, const

if MICROPYTHON:
    from io import IOBase as _File  # a stream json.load can read, as a real file is
else:
    _File = object

ENOSPC = const(28)  # not in MicroPython's errno module; the value littlefs and Linux use
EIO = const(5)


class PowerCut(BaseException):
    """The power went. Not an OSError on purpose: the code under test must not be able
    to catch and survive it; only the test harness does."""


class _Node:
    def __init__(self, data=b""):
        self.live = bytearray(data)
        self.synced = bytes(data)


class FaultFile(_File):
    def __init__(self, flash, node, mode):
        self._flash = flash
        self._node = node
        self._text = "b" not in mode
        self._append = "a" in mode
        self._readable = "r" in mode or "+" in mode
        self._writable = "r" not in mode or "+" in mode
        self._pos = len(node.live) if self._append else 0
        self.closed = False

    def _check(self):
        self._flash._alive()
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def write(self, data):
        self._check()
        if not self._writable:
            raise OSError(EIO, "file not open for writing")
        if self._text:
            data = data.encode()
        data = bytes(data)
        if self._append:
            self._pos = len(self._node.live)
        n, err = self._flash._admit(self, len(data))
        live = self._node.live
        end = self._pos + n
        if self._pos > len(live):
            live.extend(bytes(self._pos - len(live)))
        live[self._pos : end] = data[:n]
        self._pos = end
        if err is not None:
            raise err
        return n

    def read(self, n=-1):
        self._check()
        live = self._node.live
        end = len(live) if n is None or n < 0 else min(len(live), self._pos + n)
        data = bytes(live[self._pos : end])
        self._pos = max(self._pos, end)
        return data.decode() if self._text else data

    def readinto(self, buf):
        self._check()
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def seek(self, offset, whence=0):
        self._check()
        if whence == 1:
            offset += self._pos
        elif whence == 2:
            offset += len(self._node.live)
        if offset < 0:
            raise OSError(22, "negative seek position")
        self._pos = offset
        return offset

    def tell(self):
        self._check()
        return self._pos

    def flush(self):
        self._check()
        if self._flash._op():
            self._flash._cut()

    def close(self):
        if not self.closed:
            self._flash._alive()
            self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        # Closing a dead device would raise a second PowerCut; the first one is enough.
        if not self._flash.dead:
            self.close()


class FaultFlash:
    """An in-memory hal.fs.Flash with faults on demand.

    cut_after: power fails during the n-th write/flush/sync/create/rename/remove (1-based);
    that write keeps only its first `torn` fraction, and every later call raises PowerCut.
    capacity: total bytes the files may hold; a write beyond it keeps what fits and raises
    OSError(ENOSPC)."""

    def __init__(self, files=None, cut_after=None, torn=0.5, capacity=None):
        self._dir = {}
        for name, data in (files or {}).items():
            self._dir[name] = _Node(data)
        self.cut_after = cut_after
        self.torn = torn
        self.capacity = capacity
        self.ops = 0
        self.dead = False
        self._fail_err = 0
        self._fail_count = 0
        self._fail_partial = 0.0
        self.root = "fault:"

    # --- fault controls -----------------------------------------------------------
    def fail(self, err=EIO, count=1, partial=0.0):
        """The next `count` write/flush/sync/create/rename/remove calls raise OSError(err);
        a failing write first stores the `partial` fraction of its bytes."""
        self._fail_err = err
        self._fail_count = count
        self._fail_partial = partial

    def flip(self, name, offset, bit=0):
        """Bit rot: flip one bit of a stored file, in what is read and what is durable."""
        node = self._dir[name]
        node.live[offset] ^= 1 << bit
        s = bytearray(node.synced)
        if offset < len(s):
            s[offset] ^= 1 << bit
            node.synced = bytes(s)

    def restart(self, keep="synced"):
        """The device as it powers up again: a new FaultFlash with the durable image.
        The old one stays dead; never reuse it."""
        if keep not in ("synced", "written"):
            raise ValueError("keep must be 'synced' or 'written'")
        files = {}
        for name, node in self._dir.items():
            files[name] = bytes(node.live) if keep == "written" else node.synced
        self.dead = True
        return FaultFlash(files, capacity=self.capacity)

    def image(self):
        """{name: bytes as currently readable}."""
        return dict((n, bytes(node.live)) for n, node in self._dir.items())

    # --- internals ----------------------------------------------------------------
    def _alive(self):
        if self.dead:
            raise PowerCut("device is dead")

    def _op(self):
        """Count one mutating call; return True if the power fails during it."""
        self._alive()
        self.ops += 1
        if self._fail_count:
            self._fail_count -= 1
            raise OSError(self._fail_err, "injected")
        return self.cut_after is not None and self.ops >= self.cut_after

    def _cut(self):
        self.dead = True
        raise PowerCut("power cut at op %d" % self.ops)

    def _used(self):
        n = 0
        for node in self._dir.values():
            n += len(node.live)
        return n

    def _admit(self, f, n):
        """(bytes of n that this write stores, exception to raise after storing them)."""
        self._alive()
        self.ops += 1
        if self._fail_count:
            self._fail_count -= 1
            return int(n * self._fail_partial), OSError(self._fail_err, "injected")
        if self.cut_after is not None and self.ops >= self.cut_after:
            self.dead = True
            return int(n * self.torn), PowerCut("power cut at op %d" % self.ops)
        if self.capacity is not None:
            grow = f._pos + n - len(f._node.live)
            room = self.capacity - self._used()
            if grow > room:
                return max(0, n - grow + max(room, 0)), OSError(ENOSPC, "no space left")
        return n, None

    # --- the hal.fs.Flash API -------------------------------------------------------
    def path(self, name):
        return self.root + name

    def open(self, name, mode):
        self._alive()
        node = self._dir.get(name)
        if "r" in mode:
            if node is None:
                raise OSError(2, "no such file: " + name)
            return FaultFile(self, node, mode)
        if self._op():
            self._cut()
        if node is None:
            node = _Node()
            self._dir[name] = node
        elif "w" in mode:
            node.live = bytearray()
            node.synced = b""
        return FaultFile(self, node, mode)

    def sync(self, f):
        if self._op():
            self._cut()
        f._node.synced = bytes(f._node.live)

    def rename(self, old, new):
        if self._op():
            self._cut()
        node = self._dir.pop(old, None)
        if node is None:
            raise OSError(2, "no such file: " + old)
        self._dir[new] = node

    def remove(self, name):
        if self._op():
            self._cut()
        if self._dir.pop(name, None) is None:
            raise OSError(2, "no such file: " + name)

    def listdir(self):
        self._alive()
        return list(self._dir)

    def size(self, name):
        self._alive()
        node = self._dir.get(name)
        return -1 if node is None else len(node.live)

    def exists(self, name):
        return self.size(name) >= 0

    def free_bytes(self):
        self._alive()
        if self.capacity is None:
            return 1 << 40
        return max(0, self.capacity - self._used())
