# The signal collector (../shared/specs/signal-collector.md) as a pymodbus server, driven by
# the belt model (emulator/belt.py) with known ground truth, reachable over a pty (as a
# serial port) and over TCP (RTU frames over TCP, as an RS485-to-Ethernet serial server).
#
# The register map is served by pymodbus (SimDevice, RTU framer); an action hook fills the
# registers from the collector's state on each request and applies writes. Line faults are
# injected between pymodbus and the gateway by emulator/faultline.py. Everything runs on one
# asyncio loop in a background thread, so synchronous tests can use it in-process:
#
#     emu = CollectorEmulator(Belt(seed=3), speed=20.0)
#     path = emu.start_pty()              # or host, port = emu.start_tcp()
#     ...                                 # the gateway talks to it
#     emu.faults.crc = 0.1; emu.restart(); emu.swap_sensor(2)
#     emu.true_mass_kg
#     emu.stop()
import asyncio
import math
import os
import socket
import sys
import threading
import time

from emulator.belt import PROFILES, WRAP, Belt
from emulator.faultline import FaultLine, Faults

_FAST_REGS = 25
_WAVE_BASE = 100
_WAVE_LEN = 256
_STATUS_RESTARTED = 0x100
_RESTART_ACK = 0xA5A5
_COPY_S = 0.03  # a new capture takes this long to copy into the waveform registers
_COPY_BUSY = 0.5  # chance of exception 06 for a waveform read during the copy
_DI1_LAG_S = 0.5  # the open/stop sensor's response time (datasheet: within 1 s)
_HISTORY = 600  # published blocks kept for tests (1 minute)


def _u16(v):
    return v & 0xFFFF


def _u32(v):
    v &= 0xFFFFFFFF
    return [v >> 16, v & 0xFFFF]


def _i32(v):
    v = max(-(1 << 31), min((1 << 31) - 1, int(v)))
    return _u32(v)


class CollectorEmulator:
    def __init__(
        self,
        belt,
        address=1,
        speed=1.0,
        seed=1,
        faults=None,
        serial=None,
        fw_version=203,
        max_lag_s=1.0,
    ):
        import random

        self.belt = belt
        self.address = address
        self.speed = speed  # simulated seconds per real second; 0: only advance() moves time
        self.faults = faults or Faults()
        self.max_lag_s = max_lag_s
        self.rng = random.Random(seed)
        self._serial_next = 0x51000000 + (seed % 1000) * 1000
        self.serial = serial if serial is not None else self._new_serial()
        self.vendor_id = 0x4B4A
        self.model = 0x0105
        self.fw_version = fw_version
        self.sensor_serials = [self._new_serial() for _ in range(7)]
        self.slave_address_setting = address
        self.baud_code = 0
        self.ack_register = 0
        self.config_counter = 0
        self.coils = [False, False]
        self.status_extra = 0  # bits 4..6 a test may set (speed, vibration sensor, ADC faults)
        # Readings a test may force (None: the model's): the supply in mV (the register's
        # noise still added), the board temperature in 0.1 °C, and DI1 (an open/stop
        # sensor stuck on or off).
        self.supply_mv = None
        self.temp_01c = None
        self.di1 = None
        self.coil_log = []  # (time.monotonic(), coil, on) for every write and restart
        self.restarted = False
        self.restarts = 0
        self.busy_replies = 0
        self.requests = 0
        self.polled_mass_kg = None  # the true mass at the first and the last fast-block poll
        self._block_off = belt.block_seq
        self._pulse_off = 0  # the counter is the belt's until the first restart
        self._t_start = belt.t
        self._waves = 0  # captures since (re)start: the wave_seq register
        self._belt_wave_seq = belt.wave_seq
        self._wave_regs = [0] * _WAVE_LEN
        self._copy = None  # (end_t, wave) while a capture is being copied
        self.captures = {}  # wave_seq register value -> the 256 samples, the latest few
        self.history = {}  # block_seq register value -> what was published
        self._fast = [0] * _FAST_REGS
        # DI1: the open/stop sensor on the motor cable follows the motor within 1 s.
        self._di1 = self._di1_target = belt.motor_on
        self._di1_at = 0.0
        self._last_block = None
        self._loop = None
        self._thread = None
        self._server = None
        self._line = None
        self._ticker = None
        self.lag_s = 0.0
        self._publish()

    # --- identity and settings

    def _new_serial(self):
        self._serial_next += 1
        return self._serial_next

    def swap_sensor(self, i):
        """Sensor i (0-3 cells, 4 speed, 5 vibration, 6 open/stop) replaced: a new serial."""
        self._call(lambda: self.sensor_serials.__setitem__(i, self._new_serial()))
        return self.sensor_serials[i]

    def swap_collector(self):
        """Another collector unit in its place: new serial, restarted."""

        def swap():
            self.serial = self._new_serial()
            self._restart()

        self._call(swap)

    def change_settings(self):
        """A setting changed on the collector's keypad."""
        self._call(self._bump_config)

    def _bump_config(self):
        self.config_counter = (self.config_counter + 1) & 0xFFFF

    def open_cell(self, i, broken=True):
        """Load cell i (0..3) open circuit (or repaired, broken=False)."""
        cells = self.belt.faulty_cells
        self._call(lambda: cells.add(i) if broken else cells.discard(i))

    def restart(self):
        """The collector restarts: counters from 0, outputs off, status bit 8 set."""
        self._call(self._restart)

    def _restart(self):
        b = self.belt
        self._block_off = b.block_seq
        self._pulse_off = b.pulses
        self._t_start = b.t
        self._waves = 0
        self._copy = None
        self.coils = [False, False]
        self.coil_log.append((time.monotonic(), 0, False))
        self.coil_log.append((time.monotonic(), 1, False))
        self.address = self.slave_address_setting
        self.restarted = True
        self.restarts += 1
        self._publish()

    @property
    def true_mass_kg(self):
        """The material that has crossed the weigh frame, exactly."""
        return self.belt.true_mass_kg

    # --- the collector's registers

    def _status(self):
        s = self.status_extra & 0x70
        for i in self.belt.faulty_cells:
            s |= 1 << i
        if self.restarted:
            s |= _STATUS_RESTARTED
        return s

    def _publish(self):
        b = self.belt
        seq = (b.block_seq - self._block_off) % WRAP
        pulses = (b.pulses - self._pulse_off) % WRAP
        t = b.t
        if self.supply_mv is not None:
            supply = self.supply_mv
        elif b.mains_lost:
            supply = 11800 - int(20 * (t % 3600) / 360)
        else:
            supply = 12000
        supply += self.rng.randint(-15, 15)
        temp = self.temp_01c
        if temp is None:
            temp = int(round(250 + 40 * math.sin(2 * math.pi * t / 7200)))
        if b.motor_on != self._di1_target:
            self._di1_target = b.motor_on
            self._di1_at = t + _DI1_LAG_S
        if self._di1 != self._di1_target and t >= self._di1_at:
            self._di1 = self._di1_target
        di = self._di_bits()
        regs = (
            _u32(seq)
            + _i32(b.cells[0])
            + _i32(b.cells[1])
            + _i32(b.cells[2])
            + _i32(b.cells[3])
            + _u32(pulses)
            + _u32(int(round(b.speed_freq_hz() * 100)))
            + [min(65535, int(round(b.vib_rms_mv * 10))), di, self._status(), supply, _u16(temp)]
            + _u32(int(t - self._t_start + 1e-6))  # t sums 10 ms steps: 4.9999.. is 5
            + [self.config_counter, self._waves & 0xFFFF, _WAVE_LEN, 1000]
        )
        self._fast[:] = regs
        if seq != self._last_block:
            self._last_block = seq
            self.history[seq] = {
                "cells": list(b.cells),
                "pulses": pulses,
                "t": t,
                "true_mass_kg": b.true_mass_kg,
                "speed_mps": b.speed_mps,
            }
            if len(self.history) > _HISTORY:
                del self.history[next(iter(self.history))]

    def _di_bits(self):
        di1 = self._di1 if self.di1 is None else self.di1
        return (1 if di1 else 0) | (2 if self.belt.mains_lost else 0)

    def _step(self):
        b = self.belt
        seq = b.block_seq
        b.step()
        if b.wave_seq != self._belt_wave_seq:
            self._belt_wave_seq = b.wave_seq
            self._copy = (b.t + _COPY_S, list(b.wave))
        if self._copy is not None and b.t >= self._copy[0]:
            wave = self._copy[1]
            self._copy = None
            self._wave_regs[:] = [v & 0xFFFF for v in wave]
            self._waves += 1
            self.captures[self._waves & 0xFFFF] = wave
            if len(self.captures) > 8:
                del self.captures[next(iter(self.captures))]
        if b.block_seq != seq:
            self._publish()

    def advance(self, seconds):
        """Move simulated time by `seconds` now (with speed=0 the only way it moves)."""
        n = int(round(seconds * 100))
        self._call(lambda: [self._step() for _ in range(n)])

    @staticmethod
    def _screen(req):
        # pymodbus maps bits in 16-bit registers and hands the hook a register count, so
        # the 2 coils' and 2 inputs' bounds are checked here, on the request itself.
        fc = req[1]
        if fc in (1, 2, 5, 15):
            address = req[2] << 8 | req[3]
            count = 1 if fc == 5 else req[4] << 8 | req[5]
            if address + count > 2:
                return 2
        return None

    async def _action(self, fc, start, address, count, registers, values):
        from pymodbus.constants import ExcCodes

        self.requests += 1
        if self.rng.random() < self.faults.busy:
            self.busy_replies += 1
            return ExcCodes.DEVICE_BUSY
        if fc in (1, 2, 5, 15):
            if values is not None:
                for i, v in enumerate(values):
                    self.coils[address + i] = bool(v)
                    self.coil_log.append((time.monotonic(), address + i, bool(v)))
            if fc == 2:
                registers[0] = self._di_bits()
            else:
                registers[0] = (1 if self.coils[0] else 0) | (2 if self.coils[1] else 0)
            return None
        if fc == 4:
            if start == 0:  # a fast-block poll
                m = self.belt.true_mass_kg
                first = m if self.polled_mass_kg is None else self.polled_mass_kg[0]
                self.polled_mass_kg = (first, m)
            # Measurements change with each block; the collector's own state at once.
            self._fast[16] = self._status()
            self._fast[21] = self.config_counter
            registers[0:_FAST_REGS] = self._fast
            if address + count > _WAVE_BASE:
                if self._copy is not None and self.rng.random() < _COPY_BUSY:
                    self.busy_replies += 1
                    return ExcCodes.DEVICE_BUSY
                o = _WAVE_BASE - start
                registers[o : o + _WAVE_LEN] = self._wave_regs
            return None
        # Holding registers (03, 06, 16)
        if values is not None:
            for i, v in enumerate(values):
                a = address + i
                if a == 1100 and not 1 <= v <= 247 or a == 1101 and not 0 <= v <= 3:
                    return ExcCodes.ILLEGAL_VALUE
                if a == 1200 and v != _RESTART_ACK:
                    return ExcCodes.ILLEGAL_VALUE
            for i, v in enumerate(values):
                a = address + i
                if a == 1100:
                    self.slave_address_setting = v
                    self._bump_config()
                elif a == 1101:
                    self.baud_code = v
                    self._bump_config()
                elif a == 1200:
                    self.ack_register = v
                    self.restarted = False
        holding = {1000: self.vendor_id, 1001: self.model, 1004: self.fw_version}
        holding[1002], holding[1003] = _u32(self.serial)
        for i, s in enumerate(self.sensor_serials):
            holding[1010 + 2 * i], holding[1011 + 2 * i] = _u32(s)
        holding[1100] = self.slave_address_setting
        holding[1101] = self.baud_code
        holding[1200] = self.ack_register  # reads back what was written: the echo
        for a, v in holding.items():
            registers[a - start] = v
        return None

    def _device(self):
        from pymodbus.simulator import DataType, SimData, SimDevice

        def regs(addr, n, readonly=False):
            return SimData(addr, count=n, values=0, datatype=DataType.REGISTERS, readonly=readonly)

        coils = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
        inputs = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
        holding = [
            regs(1000, 5, True),
            regs(1010, 14, True),
            regs(1100, 2),
            regs(1200, 1),
        ]
        ir = [regs(0, _FAST_REGS), regs(_WAVE_BASE, _WAVE_LEN)]
        return SimDevice(0, simdata=(coils, inputs, holding, ir), action=self._action)

    # --- running

    def start(self):
        """Start the loop thread, the pymodbus server and the clock. Idempotent."""
        if self._loop is not None:
            return
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main():
            asyncio.set_event_loop(loop)
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=main, name="collector-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        self._run(self._start_server())

    async def _start_server(self):
        from pymodbus.framer import FramerType
        from pymodbus.server import ModbusTcpServer

        port = _free_port()
        self._server = ModbusTcpServer(
            self._device(), framer=FramerType.RTU, address=("127.0.0.1", port)
        )
        await self._server.serve_forever(background=True)
        self._line = FaultLine(
            lambda: self.address,
            ("127.0.0.1", port),
            self.faults,
            seed=self.rng.random(),
            screen=self._screen,
        )
        self._ticker = asyncio.get_running_loop().create_task(self._clock())

    async def _clock(self):
        last = time.monotonic()
        owed = 0.0
        while True:
            # Steps in batches: a wake-up every 5 ms cost more than the belt model itself,
            # and a block is published every 100 ms either way.
            await asyncio.sleep(0.02)
            now = time.monotonic()
            owed += (now - last) * self.speed
            last = now
            if owed > self.max_lag_s:
                # The host cannot keep up: simulated time runs slower than asked, visibly.
                self.lag_s += owed - self.max_lag_s
                owed = self.max_lag_s
            while owed >= 0.01:
                self._step()
                owed -= 0.01

    def start_tcp(self, host="127.0.0.1", port=0):
        """Serve RTU over TCP; returns the (host, port) bound."""
        self.start()
        return tuple(self._run(self._line.serve_tcp(host, port)))

    def start_pty(self):
        """Serve on a new pty; returns the path the gateway opens as its serial port."""
        self.start()
        return self._run(self._line.serve_pty())

    def unplug_pty(self, path=None):
        """The gateway's serial port vanishes (all ptys, or the one at path)."""
        self._call(lambda: self._line.close_pty(path))

    def drop_tcp_clients(self):
        """Every TCP connection is cut, as when the serial server restarts."""
        self._call(self._line.drop_clients)

    def serial_server_off(self, off=True):
        """The serial server off (its connections cut, new ones cut at once) or back on."""

        def switch():
            self._line.refuse = off
            if off:
                self._line.drop_clients()

        self._call(switch)

    @property
    def line(self):
        return self._line

    def stop(self):
        if self._loop is None:
            return

        async def shutdown():
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            await self._line.close()
            await self._server.shutdown()

        try:
            self._run(shutdown())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()
            self._loop = None

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def _call(self, fn):
        """Run fn on the loop thread (where the collector's state lives) and wait for it."""
        if self._loop is None:
            return fn()

        async def call():
            return fn()

        return self._run(call())

    def snapshot(self, fn):
        """fn() evaluated on the loop thread: a consistent view of the collector's state."""
        return self._call(fn)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(prog="emulator collector", description="Emulated signal collector")
    p.add_argument("--tcp", metavar="HOST:PORT", help="serve RTU over TCP here")
    p.add_argument("--pty", action="store_true", help="serve on a new pty (path printed)")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    p.add_argument("--profile", default="steady", choices=sorted(PROFILES))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--address", type=int, default=1)
    p.add_argument("--seconds", type=float, help="stop after this many real seconds")
    for name in ("crc", "drop", "late", "busy", "garbage", "wrong-address"):
        p.add_argument("--" + name, type=float, default=0.0, metavar="P", help="fault probability")
    args = p.parse_args(argv)
    if not args.tcp and not args.pty:
        p.error("give --tcp HOST:PORT and/or --pty")
    faults = Faults(
        crc=args.crc,
        drop=args.drop,
        late=args.late,
        busy=args.busy,
        garbage=args.garbage,
        wrong_address=args.wrong_address,
    )
    belt = Belt(seed=args.seed, profile=PROFILES[args.profile]())
    emu = CollectorEmulator(
        belt, address=args.address, speed=args.speed, seed=args.seed, faults=faults
    )
    if args.pty:
        print("pty:", emu.start_pty(), flush=True)
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        try:
            print("tcp: %s:%d" % emu.start_tcp(host or "127.0.0.1", int(port)), flush=True)
        except OSError as e:
            emu.stop()
            print("collector: cannot listen on %s: %s (give another --tcp HOST:PORT, "
                  "port 0: any free one)" % (args.tcp, os.strerror(e.errno) if e.errno else e),
                  file=sys.stderr)
            return 2
    start = time.monotonic()
    try:
        while args.seconds is None or time.monotonic() - start < args.seconds:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        print("true mass %.3f kg after %.1f s simulated" % (emu.true_mass_kg, belt.t), flush=True)
        emu.stop()
    return 0
