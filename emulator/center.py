# The ground center station, as a real peer on TCP (../shared/specs/center-station.md).
#
# Stores every device's records in SQLite and ACKs a RECORDS frame only after the
# transaction that holds it has committed; ignores records it already holds; records
# gaps that the gateway declared lost (HELLO "oldest" above the center's next); queues
# commands to devices and keeps their RESULTs. Anything the spec says to reject ends the
# connection (after an ERROR frame when the peer is authenticated) and nothing of it is
# applied.
#
# Keys: a directory of "<device_id>.key" files (device id in decimal), each holding the
# device's 32-byte key as 64 hex digits (what flash.py writes at provisioning); read at
# every HELLO, so a device provisioned later needs no restart. Tests may pass a dict.
#
#   python -m emulator.center --listen 0.0.0.0:7700 --db center.db --keys keys/
#
# Tests run it in a background thread: Center(...).start_thread(), then query it
# (summary(), records(), results()), queue commands (command()), inject faults (fault()).
import argparse
import asyncio
import json
import os
import sqlite3
import sys
import threading
import time
from binascii import hexlify, unhexlify

from protocols import center_link as cl

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device INTEGER PRIMARY KEY, next INTEGER NOT NULL DEFAULT 1, last_seen REAL,
    fw TEXT, head INTEGER, oldest INTEGER, duplicates INTEGER NOT NULL DEFAULT 0,
    prod_mass_kg REAL NOT NULL DEFAULT 0, total_kg REAL, records INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS records (
    device INTEGER NOT NULL, seq INTEGER NOT NULL, t REAL NOT NULL, type TEXT NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (device, seq));
CREATE TABLE IF NOT EXISTS gaps (
    device INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL, t REAL NOT NULL);
CREATE TABLE IF NOT EXISTS commands (
    device INTEGER NOT NULL, id INTEGER NOT NULL, op TEXT NOT NULL, args TEXT NOT NULL,
    state TEXT NOT NULL, result TEXT, created REAL NOT NULL, answered REAL,
    PRIMARY KEY (device, id));
"""

_MAX_RECORDS = 256
FAULTS = ("drop_ack", "close_after_commit", "crash_before_commit", "hang", "slow", "forge",
          "replay", "reorder", "oversize", "garbage")


class _Drop(Exception):
    """End this connection. code/message go into an ERROR frame when the peer is known."""

    def __init__(self, code, message, tell=True):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.tell = tell


def load_key(keys, device_id):
    """The 32-byte key of a device, or None. keys: directory path or {device_id: bytes}."""
    if isinstance(keys, dict):
        return keys.get(device_id)
    path = os.path.join(keys, "%d.key" % device_id)
    try:
        with open(path) as f:
            text = f.read().strip()
        key = unhexlify(text)
    except (OSError, ValueError):
        return None
    return key if len(key) == 32 else None


class Center:
    def __init__(self, db_path, keys, host="127.0.0.1", port=0, ping_s=10, silence_s=30,
                 verbose=False):
        self.db_path = db_path
        self.keys = keys
        self.host = host
        self.port = port
        self.ping_s = ping_s
        self.silence_s = silence_s
        self.verbose = verbose
        self.events = []  # (unix time, device or None, text): what happened, for tests
        self._db = None
        self._server = None
        self._loop = None
        self._thread = None
        self._stopped = None
        self._online = {}  # device -> _Link
        self._faults = {}  # name -> dict of parameters
        self._replay = {}  # device -> a COMMAND frame sealed on an earlier connection
        self.connections = 0
        self._tasks = set()

    # ---- life cycle ----------------------------------------------------------------------
    def _open_db(self):
        db = sqlite3.connect(self.db_path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        db.commit()
        self._db = db

    async def _listen(self):
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  limit=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve(self):
        """Run until stop(). Opens the database and listens."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._open_db()
        await self._listen()
        self.note(None, "listening on %s:%d" % (self.host, self.port))
        await self._stopped.wait()
        await self._shutdown()

    async def _shutdown(self):
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._db.close()

    def start_thread(self):
        """Serve in a background thread; returns once listening (self.port is set)."""
        ready = threading.Event()
        failed = []

        async def main():
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
            self._open_db()
            try:
                await self._listen()
            except OSError as e:  # the address in use, say: the caller says so
                failed.append(e)
                self._db.close()
                return
            finally:
                ready.set()
            await self._stopped.wait()
            await self._shutdown()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("center did not start")
        if failed:
            self._thread.join(10)
            self._thread = None
            raise failed[0]
        return self

    def stop(self):
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(10)
            self._thread = None

    async def _restart(self):
        """What a crash and restart does: connections reset, the open transaction is lost,
        the database and the listening socket come back."""
        self._db.rollback()
        self._server.close()  # the listening socket goes at once; no need to wait
        for link in list(self._online.values()):
            link.close()
        self._db.close()
        self._open_db()
        await self._listen()
        self.note(None, "restarted")

    def _call(self, fn, *args):
        """Run fn(*args) on the server's loop (the database lives there); its result."""

        async def run():
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    # ---- queries and commands (any thread) ----------------------------------------------
    def summary(self, device=None):
        """{device: {next, gaps, last_seen, records, duplicates, prod_mass_kg, total_kg,
        online, fw}} (or that one device's dict)."""
        out = self._call(self._summary)
        return out.get(device) if device is not None else out

    def _summary(self):
        out = {}
        rows = self._db.execute(
            "SELECT device, next, last_seen, records, duplicates, prod_mass_kg, total_kg, fw "
            "FROM devices ORDER BY device").fetchall()
        for dev, nxt, seen, n, dup, mass, total, fw in rows:
            gaps = [list(g) for g in self._db.execute(
                "SELECT first, last FROM gaps WHERE device=? ORDER BY first", (dev,))]
            out[dev] = {"next": nxt, "gaps": gaps, "last_seen": seen, "records": n,
                        "duplicates": dup, "prod_mass_kg": mass, "total_kg": total,
                        "online": dev in self._online, "fw": fw}
        return out

    def records(self, device):
        """The device's records as stored, in the order they were stored."""
        return self._call(lambda: [json.loads(b) for (b,) in self._db.execute(
            "SELECT body FROM records WHERE device=? ORDER BY rowid", (device,))])

    def record_count(self, device):
        return self._call(lambda: self._db.execute(
            "SELECT COUNT(*) FROM records WHERE device=?", (device,)).fetchone()[0])

    def command(self, device, op, args=None, cmd_id=None):
        """Queue a command for a device; sent at once if it is online. Returns its id.
        cmd_id: an id used before sends that command again (a repeat)."""
        return self._call(self._command, device, op, args or {}, cmd_id)

    def _command(self, device, op, args, cmd_id):
        if cmd_id is None:  # ids increase with every new command (the spec)
            (top,) = self._db.execute("SELECT MAX(id) FROM commands WHERE device=?",
                                      (device,)).fetchone()
            cmd_id = (top or 0) + 1
        if not cl.seq_ok(cmd_id) or cmd_id < 1:
            raise ValueError("command ids are 1..2^31-1, not %r" % (cmd_id,))
        self._db.execute(
            "INSERT OR REPLACE INTO commands (device, id, op, args, state, created) "
            "VALUES (?, ?, ?, ?, 'new', ?)", (device, cmd_id, op, json.dumps(args), time.time()))
        self._db.commit()
        link = self._online.get(device)
        if link is not None and link.online:
            link.send_command(cmd_id, op, args)
        return cmd_id

    def results(self, device):
        """{id: {"op", "state", "result"}} of every command queued for a device."""
        return self._call(lambda: {
            i: {"op": op, "state": st, "result": json.loads(r) if r else None}
            for i, op, st, r in self._db.execute(
                "SELECT id, op, state, result FROM commands WHERE device=? ORDER BY id",
                (device,))})

    def fault(self, name, **params):
        """Arm a fault for the next occasion (see FAULTS); params refine it."""
        if name not in FAULTS:
            raise ValueError("unknown fault %r" % name)
        self._call(self._faults.__setitem__, name, params)

    def disconnect(self, device):
        """Drop a device's connection, as a network reset would."""
        self._call(lambda: self._online[device].close() if device in self._online else None)

    # ---- what a connection (_Link) asks of the center, on the server's loop --------------
    def key(self, device):
        return load_key(self.keys, device)

    def take_fault(self, name):
        """The parameters of an armed fault, disarming it; None if it is not armed."""
        return self._faults.pop(name, None)

    def note(self, device, text):
        self.events.append((time.time(), device, text))
        if self.verbose:
            print("center: %s%s" % ("" if device is None else "device %d: " % device, text),
                  flush=True)

    def device_next(self, device):
        """The lowest seq the center does not hold for a device (1 for a new one)."""
        db = self._db
        db.execute("INSERT OR IGNORE INTO devices (device) VALUES (?)", (device,))
        db.commit()
        return db.execute("SELECT next FROM devices WHERE device=?", (device,)).fetchone()[0]

    def take_over(self, link, hello):
        """A connection proved live (a frame after WELCOME verified): it replaces the
        device's previous one, and its HELLO is recorded. Until then a replayed HELLO
        cannot touch the live connection."""
        device = link.device
        old = self._online.get(device)
        if old is not None and old is not link:
            self.note(device, "new connection replaces the old one")
            old.close()
        self._online[device] = link
        db = self._db
        db.execute("UPDATE devices SET last_seen=?, fw=?, head=?, oldest=? WHERE device=?",
                   (time.time(), str(hello.get("fw")), hello["head"], hello["oldest"], device))
        db.commit()

    def release(self, link):
        if link.device is not None and self._online.get(link.device) is link:
            del self._online[link.device]

    def waiting_commands(self, device):
        """(id, op, args) of the commands a device has not answered finally, by id."""
        return [(i, op, json.loads(args)) for i, op, args in self._db.execute(
            "SELECT id, op, args FROM commands WHERE device=? AND state IN "
            "('new', 'sent', 'queued') ORDER BY id", (device,)).fetchall()]

    def command_sent(self, device, cmd_id):
        self._db.execute("UPDATE commands SET state='sent' WHERE device=? AND id=? "
                         "AND state='new'", (device, cmd_id))
        self._db.commit()

    def seen(self, device):
        self._db.execute("UPDATE devices SET last_seen=? WHERE device=?", (time.time(), device))

    async def store_records(self, device, recs):
        """Store what is new of contiguous records (a gap before them was declared lost by
        the gateway); returns the device's next once it is durable."""
        db = self._db
        nxt = self.device_next(device)
        new = [r for r in recs if r["seq"] >= nxt]
        dup = len(recs) - len(new)
        if new and new[0]["seq"] > nxt:
            db.execute("INSERT INTO gaps (device, first, last, t) VALUES (?, ?, ?, ?)",
                       (device, nxt, new[0]["seq"] - 1, time.time()))
            self.note(device, "gap %d..%d declared lost" % (nxt, new[0]["seq"] - 1))
        mass = 0.0
        total = None
        for r in new:
            if r["type"] == "prod" and _is_num(r.get("mass_kg")):
                mass += r["mass_kg"]
                if _is_num(r.get("total_kg")):
                    total = r["total_kg"]
        db.executemany("INSERT INTO records (device, seq, t, type, body) VALUES (?, ?, ?, ?, ?)",
                       [(device, r["seq"], r["t"], r["type"], json.dumps(r)) for r in new])
        if new:
            nxt = new[-1]["seq"] + 1
        db.execute("UPDATE devices SET next=?, duplicates=duplicates+?, records=records+?, "
                   "prod_mass_kg=prod_mass_kg+?, total_kg=COALESCE(?, total_kg) WHERE device=?",
                   (nxt, dup, len(new), mass, total, device))
        if self.take_fault("crash_before_commit") is not None:
            self.note(device, "crash before commit of %d..%d" % (recs[0]["seq"], recs[-1]["seq"]))
            await self._restart()
            raise _Drop("crash", "center crashed", tell=False)
        db.commit()
        if dup:
            self.note(device, "ignored %d records already held" % dup)
        return nxt

    def store_result(self, device, msg, queued):
        """Keep a RESULT; a final one is not overwritten by a later queued one. False if
        no such command waits for it."""
        state = "queued" if queued else "done"
        cur = self._db.execute(
            "UPDATE commands SET state=?, result=?, answered=? WHERE device=? AND id=? "
            "AND NOT (state='done' AND ?='queued')",
            (state, json.dumps(msg), time.time(), device, msg["id"], state))
        self._db.commit()
        return bool(cur.rowcount)

    def replay_for(self, device):
        """A frame an eavesdropper recorded on the device's earlier connection (fault
        "replay"), once; or None."""
        return self._replay.pop(device, None)

    def record_for_replay(self, device, frame):
        self._replay[device] = frame

    # ---- one connection ------------------------------------------------------------------
    async def _handle(self, reader, writer):
        self.connections += 1
        task = asyncio.current_task()
        self._tasks.add(task)
        link = _Link(self, reader, writer)
        try:
            await link.run()
        except _Drop as e:
            self.note(link.device, "dropped: %s" % e)
            if e.tell and link.session is not None and link.online:
                try:
                    link.write(link.session.seal(cl.ERROR, {"code": e.code, "message": e.message}))
                except (OSError, RuntimeError):
                    pass
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as e:
            self.note(link.device, "connection lost: %r" % e)
        except asyncio.CancelledError:  # shutting down: end quietly
            pass
        finally:
            self._tasks.discard(task)
            self.release(link)
            link.close()


class _Link:
    """The center's side of one connection: the protocol. What is stored and who is
    online is the Center's, through its methods above."""

    def __init__(self, center, reader, writer):
        self.c = center
        self.reader = reader
        self.writer = writer
        self.frames = cl.FrameReader()
        self.session = None
        self.device = None
        self.hello = None
        self.online = False  # WELCOME sent
        self.live = False  # a frame after WELCOME verified: this is the device's link
        self.expect = None  # the seq the next RECORDS frame must start at (or below)
        self._queued = []  # frames that arrived in the same read as the last one
        self.last_rx = self.last_tx = time.monotonic()

    def close(self):
        self.online = False
        if not self.writer.is_closing():
            self.writer.close()

    def write(self, data):
        self.writer.write(data)
        self.last_tx = time.monotonic()

    def send(self, ftype, obj):
        self.write(self.session.seal(ftype, obj))

    def send_command(self, cmd_id, op, args):
        self.send(cl.COMMAND, {"id": cmd_id, "op": op, "args": args})
        self.c.command_sent(self.device, cmd_id)

    async def _next_frame(self):
        """The next complete frame; pings when idle; _Drop on silence or a bad header."""
        c = self.c
        while True:
            now = time.monotonic()
            if now - self.last_rx > c.silence_s:
                raise _Drop("silence", "nothing for %d s" % c.silence_s)
            wait = c.silence_s - (now - self.last_rx)
            if self.online:
                if now - self.last_tx >= c.ping_s:
                    self.send(cl.PING, {})
                wait = min(wait, c.ping_s - (time.monotonic() - self.last_tx))
            try:
                data = await asyncio.wait_for(self.reader.read(65536), max(wait, 0.01))
            except asyncio.TimeoutError:
                continue
            if not data:
                raise _Drop("closed", "closed by the gateway%s"
                            % (" mid-frame" if self.frames.pending() else ""), tell=False)
            try:
                got = self.frames.feed(data)
            except cl.FrameError as e:
                raise _Drop(e.code, str(e))
            if got:
                self._queued = got[1:]
                return got[0]

    async def frame(self):
        if self._queued:
            return self._queued.pop(0)
        return await self._next_frame()

    async def run(self):
        c = self.c
        hang = c.take_fault("hang")
        if hang is not None and not hang.get("after_welcome"):
            c.note(None, "hang: accepted, reading nothing")
            await asyncio.sleep(hang.get("seconds", 3600))
            raise _Drop("hang", "hang over", tell=False)
        await self._hello()
        await self._inject()
        if hang is not None:
            c.note(self.device, "hang: WELCOME sent, reading nothing")
            await asyncio.sleep(hang.get("seconds", 3600))
            raise _Drop("hang", "hang over", tell=False)
        while True:
            f = await self.frame()
            try:
                msg = self.session.open(f)
            except cl.FrameError as e:
                raise _Drop(e.code, str(e))
            self.last_rx = time.monotonic()
            if not self.live:
                self._take_over()
            await self._on_frame(f.type, msg)

    async def _hello(self):
        c = self.c
        f = await self.frame()
        if f.type != cl.HELLO:
            raise _Drop("unexpected", "first frame is not HELLO", tell=False)
        key = c.key(f.device_id)
        if key is None:
            raise _Drop("unknown_device", "no key for device %d" % f.device_id, tell=False)
        session = cl.Session(cl.Keys(key), f.device_id, cl.CENTER)
        try:
            hello = session.open(f)
        except cl.FrameError as e:  # wrong key, forged: nothing to answer with
            raise _Drop(e.code, "HELLO of device %d: %s" % (f.device_id, e), tell=False)
        self.device = f.device_id
        nonce = hello.get("nonce")
        head, oldest = hello.get("head"), hello.get("oldest")
        if (not isinstance(nonce, str) or len(nonce) != 32 or not cl.seq_ok(head)
                or not cl.seq_ok(oldest) or oldest < 1):
            raise _Drop("bad_hello", "HELLO needs nonce, head and oldest (seqs below 2^31)",
                        tell=False)
        try:
            session.nonce_g = unhexlify(nonce)
        except ValueError:
            raise _Drop("bad_hello", "nonce is not hex", tell=False)
        self.session = session
        self.hello = hello
        self.last_rx = time.monotonic()
        # A HELLO can be a recording (it holds no fresh nonce of ours): the device's live
        # connection stays until a frame of this one verifies (_take_over).
        nxt = c.device_next(self.device)
        self.expect = max(nxt, oldest)
        nonce_c = os.urandom(16)
        welcome = session.seal(cl.WELCOME, {"nonce": hexlify(nonce_c).decode(), "next": nxt,
                                            "time": int(time.time())})
        session.nonce_c = nonce_c
        c.note(self.device, "HELLO head %d oldest %d; WELCOME next %d" % (head, oldest, nxt))
        slow = c.take_fault("slow")
        if slow is not None:
            gap = slow.get("seconds", 60)
            for i in range(len(welcome)):
                self.write(welcome[i : i + 1])
                await self.writer.drain()
                await asyncio.sleep(gap)
            raise _Drop("slow", "slow answer over", tell=False)
        self.write(welcome)
        self.online = True

    def _take_over(self):
        """The first frame after WELCOME verified: only the device can have made it."""
        self.live = True
        c = self.c
        c.take_over(self, self.hello)
        for cmd_id, op, args in c.waiting_commands(self.device):
            self.send_command(cmd_id, op, args)

    async def _inject(self):
        """Test faults that make the center a bad peer on this connection."""
        c, s = self.c, self.session
        cmd = {"id": 999000 + s.tx_counter, "op": "set_output", "args": {"do": 1, "on": True}}
        recorded = c.replay_for(self.device)
        if c.take_fault("forge") is not None:
            frame = bytearray(s.seal(cl.COMMAND, cmd))
            frame[-1] ^= 1
            self.write(bytes(frame))
        elif c.take_fault("reorder") is not None:
            a = s.seal(cl.COMMAND, cmd)
            b = s.seal(cl.COMMAND, dict(cmd, id=cmd["id"] + 1))
            self.write(b + a)
        elif c.take_fault("oversize") is not None:
            self.write(cl.pack_header(cl.COMMAND, self.device, s.tx_counter + 1, 0x7FFFFFF0))
        elif c.take_fault("garbage") is not None:
            self.write(os.urandom(200))
        elif recorded is not None:
            self.write(recorded)
        elif c.take_fault("replay") is not None:
            # Seal a COMMAND for this connection but keep it: an eavesdropper's recording,
            # played into the next connection.
            c.record_for_replay(self.device, cl.seal(
                s.keys, cl.COMMAND, self.device, s.tx_counter + 1,
                cl.encode(cmd), cl.CENTER, s.nonce_g, s.nonce_c))
            self.close()

    async def _on_frame(self, ftype, msg):
        self.c.seen(self.device)
        if ftype == cl.RECORDS:
            await self._records(msg)
        elif ftype == cl.RESULT:
            self._result(msg)
        elif ftype == cl.PING:
            self.send(cl.PONG, {})
        elif ftype == cl.PONG:
            pass
        elif ftype == cl.ERROR:
            raise _Drop("peer_error", "gateway said %s: %s" % (msg.get("code"),
                                                               msg.get("message")), tell=False)
        else:
            raise _Drop("unexpected", "%s from a gateway" % cl.NAMES.get(ftype, ftype))

    def _check_records(self, msg):
        recs = msg.get("records")
        if not isinstance(recs, list) or not 1 <= len(recs) <= _MAX_RECORDS:
            raise _Drop("bad_records", "records must be a list of 1..%d" % _MAX_RECORDS)
        prev = None
        for r in recs:
            if (not isinstance(r, dict) or not cl.seq_ok(r.get("seq")) or r["seq"] < 1
                    or not _is_num(r.get("t")) or not isinstance(r.get("type"), str)):
                raise _Drop("bad_records", "every record needs seq (1..2^31-1), t and type")
            if prev is not None and r["seq"] != prev + 1:
                raise _Drop("bad_records", "seq %d after %d: not contiguous" % (r["seq"], prev))
            prev = r["seq"]
        if recs[0]["seq"] > self.expect:
            raise _Drop("missing", "records start at %d, expected %d"
                        % (recs[0]["seq"], self.expect))
        return recs

    async def _records(self, msg):
        c = self.c
        recs = self._check_records(msg)
        nxt = await c.store_records(self.device, recs)
        self.expect = recs[-1]["seq"] + 1
        if c.take_fault("close_after_commit") is not None:
            raise _Drop("reset", "connection reset after commit, before ACK", tell=False)
        if c.take_fault("drop_ack") is not None:
            c.note(self.device, "ACK %d dropped" % nxt)
            return
        self.send(cl.ACK, {"next": nxt})
        try:  # a gateway that reads nothing must not hold this connection forever
            await asyncio.wait_for(self.writer.drain(), c.silence_s)
        except asyncio.TimeoutError:
            raise _Drop("stalled", "gateway reads nothing", tell=False)

    def _result(self, msg):
        cmd_id = msg.get("id")
        if not _is_int(cmd_id) or not isinstance(msg.get("ok"), bool):
            raise _Drop("bad_result", "RESULT needs id and ok")
        queued = bool(msg.get("queued") or (isinstance(msg.get("result"), dict)
                                            and msg["result"].get("queued")))
        if not self.c.store_result(self.device, msg, queued):
            self.c.note(self.device, "RESULT for command %d ignored" % cmd_id)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _print_summary(center):
    for dev, s in sorted(center._summary().items()):
        print("device %d: next %d, %d records, %d duplicates ignored, gaps %s, last seen %s, "
              "production %.3f t (totalizer %s kg)%s" % (
                  dev, s["next"], s["records"], s["duplicates"], s["gaps"] or "none",
                  time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["last_seen"]))
                  if s["last_seen"] else "never",
                  s["prod_mass_kg"] / 1000.0,
                  "%.1f" % s["total_kg"] if s["total_kg"] is not None else "-",
                  ", online" if s["online"] else ""), flush=True)


def _parse_listen(text):
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise argparse.ArgumentTypeError("want HOST:PORT, got %r" % text)
    return host or "0.0.0.0", int(port)


def _parse_command(text):
    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[0].isdigit():
        raise argparse.ArgumentTypeError("want DEVICE:OP[:JSON-ARGS], got %r" % text)
    try:
        args = json.loads(parts[2]) if len(parts) == 3 else {}
    except ValueError as e:
        raise argparse.ArgumentTypeError("bad JSON args in %r: %s" % (text, e))
    return int(parts[0]), parts[1], args


def main(argv=None):
    p = argparse.ArgumentParser(prog="center", description="Ground center station emulator")
    p.add_argument("--listen", type=_parse_listen, default=("127.0.0.1", 7700),
                   help="HOST:PORT to listen on (default 127.0.0.1:7700)")
    p.add_argument("--db", default="center.db", help="SQLite database (default center.db)")
    p.add_argument("--keys", default="keys", help="directory of <device_id>.key files")
    p.add_argument("--summary-s", type=float, default=10,
                   help="print a per-device summary this often (0: never)")
    p.add_argument("--command", type=_parse_command, action="append", default=[],
                   metavar="DEVICE:OP[:JSON]", help="queue a command, e.g. 7:status or "
                   "7:set_output:'{\"do\": 1, \"on\": true}' (repeatable)")
    p.add_argument("--ping-s", type=float, default=10)
    p.add_argument("--silence-s", type=float, default=30)
    p.add_argument("--quiet", action="store_true", help="no per-connection lines")
    a = p.parse_args(argv)
    if not isinstance(a.keys, str) or not os.path.isdir(a.keys):
        print("center: --keys %s is not a directory" % a.keys, file=sys.stderr)
        return 2
    center = Center(a.db, a.keys, a.listen[0], a.listen[1], a.ping_s, a.silence_s,
                    verbose=not a.quiet)

    async def run():
        task = asyncio.create_task(center.serve())
        while center._server is None:
            if task.done():
                return task.result()
            await asyncio.sleep(0.05)
        for dev, op, args in a.command:
            print("center: queued command %d for device %d: %s %s"
                  % (center._command(dev, op, args, None), dev, op, json.dumps(args)))
        while not task.done():
            await asyncio.sleep(a.summary_s or 3600)
            if a.summary_s:
                _print_summary(center)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except OSError as e:
        print("center: cannot listen on %s:%d: %s (give another --listen HOST:PORT)"
              % (a.listen[0], a.listen[1], os.strerror(e.errno) if e.errno else e),
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
