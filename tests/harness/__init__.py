# The CPython-side harness of the tests: whole gateways as processes against the emulated
# site (e2e, e2erig, e2esite, memsite), ptys, workers run under micropython, stand-ins.
