# Two commands do all set-up: `make run` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MP := $(VENV)/bin/micropython
STAMP := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)
ARGS ?=

.PHONY: venv run test test-fast lint test-cpython test-micropython bench clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

run: $(STAMP)
	$(PY) -m emulator demo $(ARGS)

test: $(STAMP)
	$(MAKE) --no-print-directory lint test-cpython test-micropython

# The quick loop: no end-to-end or real-time test (pytest markers e2e, realtime).
test-fast: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "not e2e and not realtime"
	$(MP) tests/mprun.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test-cpython: $(STAMP)
	$(PY) -m pytest

test-micropython: $(STAMP)
	$(MP) tests/mprun.py

bench: $(STAMP)
	$(PY) -m bench $(ARGS)

clean:
	rm -rf $(VENV) build .run
