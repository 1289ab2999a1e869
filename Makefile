# Two commands do all set-up: `make run` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MP := $(VENV)/bin/micropython
STAMP := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)
ARGS ?=

.PHONY: venv run test test-fast lint test-cpython test-lane1 test-lane2 test-lane2-micropython test-micropython bench clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

run: $(STAMP)
	$(PY) -m emulator demo $(ARGS)

# Every test, on CPython and on MicroPython. Most of the suite's wall time is waiting on
# real time (end-to-end runs), so two processes share the two cores: the rest of the pytest
# suite, and beside it the long runs marked lane2, then the MicroPython core tests. Each
# one's output is printed whole when it ends; `make test-cpython test-micropython` runs
# them one after the other.
test: $(STAMP)
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory -j2 --output-sync=target test-lane1 test-lane2-micropython

# lane2, then the MicroPython core tests even if lane2 failed; fails if either did.
test-lane2-micropython: $(STAMP)
	$(PY) -m pytest -m lane2; lane2=$$?; $(MP) tests/mprun.py && exit $$lane2

# The quick loop: no end-to-end or real-time test (pytest markers e2e, realtime).
test-fast: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "not e2e and not realtime"
	$(MP) tests/mprun.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test-cpython: $(STAMP)
	$(PY) -m pytest

test-lane1: $(STAMP)
	$(PY) -m pytest -m "not lane2"

test-lane2: $(STAMP)
	$(PY) -m pytest -m lane2

test-micropython: $(STAMP)
	$(MP) tests/mprun.py

bench: $(STAMP)
	$(PY) -m bench $(ARGS)

clean:
	rm -rf $(VENV) build .run
