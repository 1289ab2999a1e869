# Files on the board's flash. The store and the state slots use only this interface,
# so the fault-injecting layer used by the power-cut tests can stand in for it.
import os

from hal.compat import MICROPYTHON


def _join(a, b):
    return a + "/" + b if a else b


class Flash:
    """A directory on a file system (littlefs on a board, a POSIX directory on a PC)."""

    def __init__(self, root):
        self.root = root
        self.makedirs(root)

    def path(self, name):
        return _join(self.root, name)

    @staticmethod
    def makedirs(path):
        cur = ""
        for part in path.split("/"):
            if not part:
                continue  # "//x" is not "/x" on MicroPython's VFS (a mounted littlefs)
            cur = cur + "/" + part if cur or path.startswith("/") else part
            try:
                os.mkdir(cur)
            except OSError:
                pass  # exists (or a real error that the first open will report)

    def open(self, name, mode):
        return open(self.path(name), mode)

    def sync(self, f):
        """Make what was written to f durable before returning."""
        f.flush()
        if not MICROPYTHON:  # MicroPython's flush already syncs (fsync / lfs_file_sync)
            os.fsync(f.fileno())

    def rename(self, old, new):
        os.rename(self.path(old), self.path(new))
        if not MICROPYTHON:
            # POSIX: the rename is durable only once the directory is synced.
            fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def remove(self, name):
        os.remove(self.path(name))

    def listdir(self):
        return os.listdir(self.root)

    def size(self, name):
        try:
            return os.stat(self.path(name))[6]
        except OSError:
            return -1

    def exists(self, name):
        return self.size(name) >= 0

    def free_bytes(self):
        st = os.statvfs(self.root)
        if st[4] > st[2]:
            return 0  # littlefs near full can count more blocks in use than it has
        return st[1] * st[4]  # f_frsize * f_bavail
