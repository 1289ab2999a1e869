# The RS485 line between the gateway and the emulated collector, with its faults.
# A byte proxy: requests from the gateway side (a pty or a TCP connection) are framed,
# those for our slave address go to the pymodbus server, and each answer comes back through
# the fault injector: corrupted CRC, dropped or late answers, answers from another address,
# garbage between frames, answers cut into USB-adapter batches.
import asyncio
import random

from hal.crc import crc16_modbus

_REQ_CAP = 1024


class Faults:
    """Probabilities (0..1) and sizes of the line faults; change them at any time."""

    def __init__(
        self,
        crc=0.0,
        drop=0.0,
        late=0.0,
        late_ms=250,
        busy=0.0,
        garbage=0.0,
        garbage_max=12,
        wrong_address=0.0,
        batch_ms=0,
        turnaround_ms=3,
    ):
        self.crc = crc
        self.drop = drop
        self.late = late
        self.late_ms = late_ms
        self.busy = busy  # exception 06 for any request (applied by the collector)
        self.garbage = garbage
        self.garbage_max = garbage_max
        self.wrong_address = wrong_address
        self.batch_ms = batch_ms  # >0: deliver each answer in pieces this far apart
        self.turnaround_ms = turnaround_ms

    def clean(self):
        self.crc = self.drop = self.late = self.busy = self.garbage = self.wrong_address = 0.0
        self.batch_ms = 0


def _seal(frame):
    c = crc16_modbus(frame)
    return bytes(frame) + bytes((c & 0xFF, c >> 8))


def request_length(buf):
    if len(buf) < 2:
        return 0
    fc = buf[1]
    if 1 <= fc <= 6:
        return 8
    if fc in (15, 16):
        return 9 + buf[6] if len(buf) >= 7 else 0
    return -1


def response_length(head):
    """Length of a response from its first 3 bytes."""
    fc = head[1]
    if fc & 0x80:
        return 5
    if fc <= 4:
        return 5 + head[2]
    return 8


class Session:
    """One gateway-side connection: frames its requests, forwards them one at a time."""

    def __init__(self, line, send):
        self._line = line
        self._send = send  # send(bytes) towards the gateway
        self._buf = bytearray()
        self._queue = asyncio.Queue()
        self._hold_until = 0.0  # a late answer is still "on the wire": the slave hears nothing
        self._task = asyncio.get_running_loop().create_task(self._worker())
        self._up = None

    def feed(self, data):
        line = self._line
        b = self._buf
        b += data
        if len(b) > _REQ_CAP:
            del b[: len(b) - _REQ_CAP]
        while b:
            n = request_length(b)
            if n < 0:
                del b[0]
                continue
            if n == 0 or len(b) < n:
                break
            frame = bytes(b[:n])
            c = crc16_modbus(frame[:-2])
            if frame[-2] != c & 0xFF or frame[-1] != c >> 8:
                del b[0]  # not a request here: hunt for the next one
                continue
            del b[:n]
            line.requests += 1
            if frame[0] == line.address():
                self._queue.put_nowait(frame)

    async def _worker(self):
        loop = asyncio.get_running_loop()
        while True:
            req = await self._queue.get()
            if loop.time() < self._hold_until:
                continue
            try:
                resp = await self._ask(req)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                self._up = None
                continue
            if resp is not None:
                await self._deliver(resp)

    async def _ask(self, req):
        code = self._line.screen(req) if self._line.screen else None
        if code:
            return _seal(bytes((req[0], req[1] | 0x80, code)))
        if self._up is None:
            self._up = await asyncio.open_connection(*self._line.upstream)
        reader, writer = self._up
        writer.write(req)
        head = await asyncio.wait_for(reader.readexactly(3), 2.0)
        rest = await asyncio.wait_for(reader.readexactly(response_length(head) - 3), 2.0)
        return head + rest

    async def _deliver(self, resp):
        f = self._line.faults
        rng = self._line.rng
        loop = asyncio.get_running_loop()
        if rng.random() < f.drop:
            self._line.dropped += 1
            return
        if rng.random() < f.wrong_address:
            resp = _seal(bytes([(resp[0] % 247) + 1]) + resp[1:-2])
        if rng.random() < f.crc:
            b = bytearray(resp)
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            resp = bytes(b)
            self._line.corrupted += 1
        if f.turnaround_ms:
            await asyncio.sleep(f.turnaround_ms / 1000)
        if rng.random() < f.late:
            self._hold_until = loop.time() + f.late_ms / 1000
            await asyncio.sleep(f.late_ms / 1000)
        if rng.random() < f.garbage:
            self._send(bytes(rng.randrange(256) for _ in range(rng.randint(1, f.garbage_max))))
        if f.batch_ms and len(resp) > 2:
            cut = rng.randrange(1, len(resp))
            self._send(resp[:cut])
            await asyncio.sleep(f.batch_ms / 1000)
            self._send(resp[cut:])
        else:
            self._send(resp)
        if rng.random() < f.garbage:
            self._send(bytes(rng.randrange(256) for _ in range(rng.randint(1, f.garbage_max))))

    def close(self):
        self._task.cancel()
        if self._up is not None:
            self._up[1].close()
            self._up = None


class FaultLine:
    """The line: its fault settings, counters, and the gateway-side endpoints."""

    def __init__(self, address, upstream, faults=None, seed=1, screen=None):
        self.address = address  # a function: the slave address in force now
        self.screen = screen  # screen(request) -> an exception code to answer with, or None
        self.upstream = upstream  # (host, port) of the pymodbus server
        self.faults = faults or Faults()
        self.rng = random.Random(seed)
        self.requests = 0
        self.dropped = 0
        self.corrupted = 0
        self._sessions = []
        self._servers = []
        self._ptys = []
        self.refuse = False  # the serial server is off: TCP connections are cut at once
        self._clients = set()  # the tasks serving TCP connections

    async def serve_tcp(self, host, port):
        async def client(reader, writer):
            if self.refuse:
                writer.transport.abort()
                return
            me = asyncio.current_task()
            self._clients.add(me)
            s = Session(self, writer.write)
            s.writer = writer
            self._sessions.append(s)
            try:
                while True:
                    data = await reader.read(4096)
                    if not data:
                        break
                    s.feed(data)
            except OSError:
                pass
            finally:
                s.close()
                if s in self._sessions:
                    self._sessions.remove(s)
                writer.close()
                self._clients.discard(me)

        server = await asyncio.start_server(client, host, port)
        self._servers.append(server)
        return server.sockets[0].getsockname()[:2]

    async def serve_pty(self):
        import os
        import tty

        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass as they are
        os.set_blocking(master, False)
        path = os.ttyname(slave)

        def send(data):
            try:
                os.write(master, data)
            except OSError:
                pass  # nobody reading and the buffer full: the bytes are lost, as on a line

        s = Session(self, send)
        self._sessions.append(s)

        def readable():
            try:
                data = os.read(master, 4096)
            except (BlockingIOError, OSError):
                return
            if data:
                s.feed(data)

        asyncio.get_running_loop().add_reader(master, readable)
        self._ptys.append((master, slave, path, s))
        return path

    def drop_clients(self):
        """Close every TCP connection (the serial server rebooted); the listener stays."""
        for s in list(self._sessions):
            w = getattr(s, "writer", None)
            if w is not None:
                w.transport.abort()

    def close_pty(self, path=None):
        """Remove a pty (the USB adapter unplugged): its path disappears."""
        import os

        loop = asyncio.get_running_loop()
        for entry in list(self._ptys):
            master, slave, p, s = entry
            if path is None or p == path:
                loop.remove_reader(master)
                s.close()
                if s in self._sessions:
                    self._sessions.remove(s)
                os.close(master)
                os.close(slave)
                self._ptys.remove(entry)

    async def close(self):
        self.close_pty()
        for server in self._servers:
            server.close()
        self._servers = []
        # Every connection and worker ends before the loop stops, so none is left pending
        # (asyncio complains about each one when the loop is closed). A connection's task
        # ends on its own once the connection is cut; cancelling it would make asyncio
        # log the cancellation as an error.
        self.drop_clients()
        workers = [s._task for s in self._sessions]
        for s in list(self._sessions):
            s.close()
        await asyncio.gather(*workers, *self._clients, return_exceptions=True)
