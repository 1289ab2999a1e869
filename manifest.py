# What the firmware image holds: `flash.py build` compiles these modules and no other. In
# the spirit of micropython-lib's manifest.py (flash.py runs this file with the two
# functions defined): package(name) is every module of a package and its subpackages,
# but those excluded; module(path) is one file. A package __init__ without code is left
# out by the build (MicroPython imports the package without it).
# Fakes and test helpers live under tests/ and never ship: tests/test_flash.py checks the
# image against this list.
package("gateway")
package("protocols")
package("drivers")
# hal/pc.py: CPython's stand-ins for MicroPython's built-ins, never imported there;
# hal/virtualclock.py: the clock tests and the emulator drive.
package("hal", exclude=("hal/pc.py", "hal/virtualclock.py"))
