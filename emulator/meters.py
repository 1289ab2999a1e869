# Power-efficiency terminals (../shared/specs/power-meter.md) on an emulated RS485 bus over
# TCP, each one a DL/T 645-2007 slave of the PyPI `dlt645` package (a third-party
# implementation: its frame parser and its MeterServerService answer every request).
# Their power follows the emulated belt: no-load + friction (proportional to the speed)
# + lift (proportional to the mass flow), seen through CT and PT ratios; their energy
# registers count it and roll over at 999999.99. Faults: silence, garbage, bad checksums,
# a cleared register, a replaced terminal.
#
# Address byte order: the datasheet (and DL/T 645-2007) sends the 12-digit address least
# significant byte first (000000000012 -> 12 00 00 00 00 00). The package's
# set_address("000000000012") stores it most significant byte first (00 .. 00 12) and
# compares the request's address bytes with that as they are, so given the digits it
# would answer only requests with the bytes reversed. Its client does the same, so the
# package agrees with itself but not with the standard. Here each terminal is given the
# address as bytes in the datasheet's order (set_address(bytes)), which the package takes
# as they are. Two more differences: its broadcast time sync reads YY MM DD hh mm ss where
# the datasheet sends ss mm hh DD MM YY (the emulated terminals ignore C 08), and its
# set_00 refuses energies above 799999.99 (it takes the top bit for a sign, as for combined
# energy), so the registers are written past that check to reach the datasheet's roll-over
# at 999999.99.
import copy
import math
import random
import socket
import threading
import time

from dlt645 import DLT645Protocol, MeterServerService
from loguru import logger

logger.disable("dlt645")  # its DEBUG lines on stderr and log files in site-packages

_E, _T1, _EQ = 0x00010000, 0x00010100, 0x00030000
_P, _Q, _PF, _F = 0x02030000, 0x02040000, 0x02060000, 0x02800002
_U, _I, _THDU, _THDI = 0x02010100, 0x02020100, 0x02080100, 0x02090100
_TEMP = 0x02800007
_ROLL_KWH = 1000000.0
# The datasheet's data items: a terminal holds these and answers "no such data" to any
# other. (The package's service copies its whole table of 20 000 items for every
# instance: 0.6 s and 120 000 objects each, which made every full garbage collection of
# a process holding a few terminals, the test campaign's gateways included, 10x slower.)
_DATASHEET_DIS = ((_E, 0x00010100, 0x00010200, 0x00010300, 0x00010400, 0x00020000, _EQ)
                  + tuple(base + 0x100 * k for base in (_U, _I, _THDU, _THDI) for k in range(3))
                  + (_P, _Q, _PF, _F, _TEMP))
_blank = []  # a service holding the datasheet's items, copied for each terminal
G = 9.81


# The site's two terminals (make run, the end-to-end tests): the belt drive's feeder
# (CT 300/5, direct 220 V) and the mine's main incomer (CT 200/5, PT 10 kV/100 V).
SITE_TERMINALS = [
    {"address": "000000000012", "role": "belt_drive", "ct_ratio": 60.0, "pt_ratio": 1.0,
     "nominal_v": 220.0},
    {"address": "000000000034", "role": "mine_total", "ct_ratio": 40.0, "pt_ratio": 100.0,
     "nominal_v": 57.7},
]


def site_bus(belt, terminals=SITE_TERMINALS, **kw):
    """A MeterBus of these terminals driven by belt (registers start at 1000 and 2000 kWh)."""
    return MeterBus([EmuTerminal(t["address"], t["role"], t["ct_ratio"], t["pt_ratio"],
                                 t["nominal_v"], energy_kwh=1000.0 * (k + 1), seed=k)
                     for k, t in enumerate(terminals)], belt=belt, **kw)


def address_bytes(digits):
    """The datasheet's order: least significant byte first."""
    return bytes(int(digits[10 - 2 * k: 12 - 2 * k], 16) for k in range(6))


class DrivePhysics:
    """The belt drive's primary-side active power (kW) from the belt's state."""

    def __init__(self, no_load_kw=18.0, friction_kw_per_mps=10.0, lift_m=25.0, efficiency=0.92):
        self.no_load_kw = no_load_kw
        self.friction_kw_per_mps = friction_kw_per_mps
        self.lift_m = lift_m
        self.efficiency = efficiency

    def kw(self, belt):
        if not belt.motor_on:
            return 0.0
        v = belt.speed_mps
        flow_kgps = belt._q_loading * v  # kg/m laid at the loading point x m/s
        lift = flow_kgps * G * self.lift_m / self.efficiency / 1000
        return self.no_load_kw + self.friction_kw_per_mps * v + lift


class EmuTerminal:
    """One terminal: a dlt645 MeterServerService holding its registers."""

    def __init__(self, address, role="other", ct=1.0, pt=1.0, nominal_v=220.0, energy_kwh=0.0,
                 seed=1):
        self.address = address
        self.role = role
        self.ct = ct
        self.pt = pt
        self.nominal_v = nominal_v
        self.energy_kwh = energy_kwh  # secondary, the register's count (before roll-over)
        self.reactive_kvarh = 0.0
        self.tariff_kwh = [0.0, 0.0, 0.0, 0.0]
        self.primary_kw = 0.0
        self.pf = 0.92
        self.hz = 50.0
        self.thd_v = 2.1
        self.thd_i = 6.5
        self.voltage_scale = [1.0, 1.0, 1.0]  # fault injection: a phase lost, a deviation
        self.silent = False
        self.rng = random.Random(seed)
        self.svc = _service()
        self.svc.set_address(bytearray(address_bytes(address)))
        self.reads = 0
        self.lock = threading.Lock()
        self.update(0.0, 0.0)

    # --- faults
    def replace(self, new_address, energy_kwh=0.0):
        """Another terminal at this place: a new address and its own register."""
        with self.lock:
            self.address = new_address
            self.svc.set_address(bytearray(address_bytes(new_address)))
            self.energy_kwh = energy_kwh
            self.tariff_kwh = [0.0, 0.0, 0.0, 0.0]

    def clear(self):
        with self.lock:
            self.energy_kwh = 0.0
            self.tariff_kwh = [0.0, 0.0, 0.0, 0.0]
            self.reactive_kvarh = 0.0

    # --- physics
    def update(self, primary_kw, dt_s, tariff=2):
        """Draw primary_kw for dt_s (the registers count it) and show the figures."""
        with self.lock:
            r = self.ct * self.pt
            self.primary_kw = primary_kw
            p = primary_kw / r  # secondary kW
            q = p * math.tan(math.acos(self.pf))
            if p > 0:
                self.energy_kwh += p * dt_s / 3600
                self.tariff_kwh[tariff] += p * dt_s / 3600
                self.reactive_kvarh += q * dt_s / 3600
            s = self.svc
            s.get_data_item(_E).value = _reg(self.energy_kwh)
            for k in range(4):
                s.get_data_item(_T1 + 0x100 * k).value = _reg(self.tariff_kwh[k])
            s.get_data_item(_EQ).value = _reg(self.reactive_kvarh)
            s.set_02(_P, round(p, 4))
            s.set_02(_Q, round(q, 4))
            s.set_02(_PF, round(self.pf if p > 0 else 1.0, 3))
            s.set_02(_F, round(self.hz + self.rng.uniform(-0.02, 0.02), 2))
            s.set_02(_TEMP, 31.5)
            for k in range(3):
                u = self.nominal_v * self.voltage_scale[k] * (1 + self.rng.uniform(-0.005, 0.005))
                i = p * 1000 / (3 * self.nominal_v * self.pf) if p > 0 else 0.0
                s.set_02(_U + 0x100 * k, round(u, 1))
                s.set_02(_I + 0x100 * k, round(i, 3))
                s.set_02(_THDU + 0x100 * k, round(self.thd_v, 2))
                s.set_02(_THDI + 0x100 * k, round(self.thd_i, 2))

    def answer(self, frame):
        """The reply bytes to a frame from the bus, or None (not addressed, silent)."""
        if self.silent:
            return None
        with self.lock:
            mine = bytes(frame.addr) == bytes(self.svc.address)
            wild = bytes(frame.addr) == b"\xaa" * 6
            if frame.ctrl_code == 0x08 or not (mine or wild):
                return None
            out = self.svc.handle_request(frame)
        if out is not None:
            self.reads += 1
        return None if out is None else bytes(out)


def _service():
    if not _blank:
        svc = MeterServerService(None)
        svc.data_map = {di: svc.data_map[di] for di in _DATASHEET_DIS}
        _blank.append(svc)
    return copy.deepcopy(_blank[0])


def _reg(kwh):
    # The register shows whole hundredths and rolls over at 999999.99.
    return math.floor((kwh % _ROLL_KWH) * 100) / 100


def tariff_at(t, utc_offset_min=480):
    """The tariff (0 sharp, 1 peak, 2 flat, 3 valley) at unix time t, local time."""
    h = (int(t) // 60 + utc_offset_min) // 60 % 24
    if 23 <= h or h < 7:
        return 3
    if 10 <= h < 11 or 19 <= h < 21:
        return 0
    if 8 <= h < 12 or 18 <= h < 23:
        return 1
    return 2


class MeterBus:
    """Terminals sharing one bus, served over TCP (one connection per gateway, each with
    the same terminals, as an RS485-to-Ethernet server with several masters would).
    A reply comes after the request's and its own time on the wire at `baud` plus the
    terminal's turnaround. `belt` (emulator.belt.Belt) drives the belt_drive terminal and
    the mine total; `update()` runs every `tick_s`."""

    def __init__(self, terminals, belt=None, baud=2400, turnaround_ms=50, seed=1,
                 physics=None, base_kw=None, tick_s=0.2):
        self.terminals = list(terminals)
        self.belt = belt
        self.baud = baud
        self.turnaround_ms = turnaround_ms
        self.physics = physics or DrivePhysics()
        self.base_kw = base_kw or {"mine_total": 1500.0, "underground": 600.0, "other": 40.0}
        self.tick_s = tick_s
        self.rng = random.Random(seed)
        self.garbage_p = 0.0  # a burst of noise before a reply
        self.bad_checksum_p = 0.0
        self.drop_p = 0.0
        self.frames = 0
        self._srv = None
        self._threads = []
        self._conns = []
        self._stop = threading.Event()
        self._last_t = None

    # --- physics
    def update(self):
        now = time.time()
        dt = 0.0 if self._last_t is None else now - self._last_t
        self._last_t = now
        drive = self.physics.kw(self.belt) if self.belt is not None else 0.0
        tariff = tariff_at(now)
        for t in self.terminals:
            if t.role == "belt_drive":
                kw = drive
            else:
                kw = self.base_kw.get(t.role, 0.0) * (1 + self.rng.uniform(-0.02, 0.02))
                if t.role == "mine_total":
                    kw += drive
            t.update(kw, dt, tariff)

    def _ticker(self):
        while not self._stop.wait(self.tick_s):
            self.update()

    # --- the line
    def start_tcp(self, host="127.0.0.1", port=0):
        self.update()
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(8)
        s.settimeout(0.2)
        self._srv = s
        for target in (self._accept, self._ticker):
            th = threading.Thread(target=target, daemon=True, name="meter-bus")
            th.start()
            self._threads.append(th)
        return s.getsockname()[:2]

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self._srv.accept()
            except OSError:
                continue
            self._conns.append(c)
            th = threading.Thread(target=self._serve, args=(c,), daemon=True, name="meter-conn")
            th.start()

    def _serve(self, c):
        c.settimeout(0.2)
        buf = b""
        while not self._stop.is_set():
            try:
                got = c.recv(512)
            except socket.timeout:
                continue
            except OSError:
                break
            if not got:
                break
            buf += got
            while True:
                buf, frame = DLT645Protocol.deserialize_with_remaining(buf)
                if frame is None:
                    break
                self.frames += 1
                reply = self._answer(frame)
                if reply is None:
                    continue
                req_len = 12 + frame.data_len + len(frame.preamble)
                wire_s = (req_len + len(reply)) * 11 / self.baud
                time.sleep(self.turnaround_ms / 1000 + wire_s)
                try:
                    c.sendall(reply)
                except OSError:
                    return
        try:
            c.close()
        except OSError:
            pass

    def _answer(self, frame):
        out = None
        for t in self.terminals:
            out = t.answer(frame)
            if out is not None:
                break
        if out is None or self.rng.random() < self.drop_p:
            return None
        if self.rng.random() < self.bad_checksum_p:
            out = bytearray(out)
            out[-2] ^= 0x01
            out = bytes(out)
        if self.rng.random() < self.garbage_p:
            out = bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 24))) + out
        return out

    def stop(self):
        self._stop.set()
        for c in self._conns:
            try:
                c.close()
            except OSError:
                pass
        if self._srv is not None:
            self._srv.close()
        for th in self._threads:
            th.join(2)
