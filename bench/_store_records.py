# Records and state for the store bench, importable on both interpreters.
T0 = 1767225600


def prod(i):
    t = T0 + 60 * i
    return (
        "prod",
        t,
        {
            "t0": t - 60,
            "t1": t,
            "mass_kg": (i * 7919 % 20000000) / 1000,
            "total_kg": 50000000 + i * 16.667,
            "rate_tph": (i % 1500000) / 1000,
            "speed_mps": 2.5 - (i % 7) / 1000,
            "run_s": 60,
        },
    )


def checkpoint():
    """A checkpoint of the size the app keeps: totals, interval in progress, breakpoint."""
    return {
        "seq": 0,
        "totalizer_g": 123456789012,
        "interval": {"t0": T0, "mass_g": 8123456, "run_ms": 41000, "pulses": 1234567},
        "totals_g": {
            "shift": 81234567,
            "day": 243123456,
            "month": 7212345678,
            "year": 87123456789,
        },
        "breakpoint": 412345,
        "clock_offset_s": 0.8,
        "alarms": ["belt_slip", "vibration_high"],
        "scale": {"autozero_counts": -123, "zero_counts": 81234},
    }
