# Errors that callers catch across modules loaded on demand (gateway/ondemand.py): they
# live here, resident, so that every fresh import of gateway.config or
# gateway.measure.calibration raises the same class.


class ConfigError(ValueError):
    pass


class CalibrationError(ValueError):
    pass
