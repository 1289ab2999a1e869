# Errors that callers catch across modules loaded on demand (gateway/ondemand.py): they
# live here, resident, so that every fresh import of gateway.config or
# gateway.measure.calibration raises the same class.


class UserError(ValueError):
    """A request that cannot be done as asked (bad input, a refusal): its message says why
    to whoever asked, the technician or the center, and nothing was changed. The CLI and
    the center's commands answer these with the message; anything else raised while
    serving a request is a fault of the gateway."""


class ConfigError(UserError):
    pass


class CalibrationError(UserError):
    pass
