# Two commands do all set-up: `make run` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MP := $(VENV)/bin/micropython
STAMP := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)
ARGS ?=

.PHONY: venv run test test-cpython test-micropython bench clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

run: $(STAMP)
	$(PY) -m emulator demo $(ARGS)

test: $(STAMP)
	$(MAKE) --no-print-directory test-cpython test-micropython

test-cpython: $(STAMP)
	$(PY) -m pytest

test-micropython: $(STAMP)
	$(MP) tests/mprun.py

bench: $(STAMP)
	$(PY) -m bench $(ARGS)

clean:
	rm -rf $(VENV) build .run
