# The belt drive's power from what lies on the belt's carry side, for the emulated belt
# drive terminal (emulator/meters.py's MeterBus(physics=...)): the lift and friction of the
# material from the loading point to the head pulley, as a real drive draws it, rather than
# of the flow being loaded now. The material is known to emulator.belt.Belt up to the
# weigh frame; after it, from what crossed the frame within the rest of the carry.
from collections import deque

from emulator.meters import DrivePhysics, G


class CarryPhysics(DrivePhysics):
    """carry_m: loading point to head pulley (half the belt's loop, say); mu: the
    material's running friction coefficient. Called from one thread (the meter bus's)."""

    def __init__(self, carry_m, mu=0.03, **kw):
        DrivePhysics.__init__(self, **kw)
        self.carry_m = carry_m
        self.mu = mu
        self._crossed = deque()  # (belt travel m, true mass that had crossed the frame kg)

    def carried_kg(self, belt):
        x, crossed = belt.x_m, belt.true_mass_kg
        seen = self._crossed
        seen.append((x, crossed))
        after_frame = self.carry_m - belt.load_to_frame_m
        while len(seen) > 1 and seen[1][0] <= x - after_frame:
            seen.popleft()
        # Before the frame: the density being laid now over the loading-to-frame length
        # (read without touching the belt's material grid, which another thread trims).
        return belt._q_loading * belt.load_to_frame_m + crossed - seen[0][1]

    def kw(self, belt):
        if not belt.motor_on:
            return 0.0
        v = belt.speed_mps
        m = self.carried_kg(belt)
        load = m * G * (self.lift_m / self.carry_m + self.mu) * v / self.efficiency / 1000
        return self.no_load_kw + self.friction_kw_per_mps * v + load
