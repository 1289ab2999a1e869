# The measurement: scale, auto-zero, running, vibration, production, calibration
# (docs/measurement.md).
