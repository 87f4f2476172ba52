# Two commands a user needs: `make test` and `make demo` (`make demo-once` unattended).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint demo demo-once bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

test: lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Headquarters and two clinics, synced both ways and checked, then left running (Ctrl-C stops).
demo: $(STAMP)
	$(BIN)/python -m demo

# The scripted part alone: exits 0 only if every check of its report holds (CI runs it).
demo-once: $(STAMP)
	$(BIN)/python -m demo --once

bench: $(STAMP)
	$(BIN)/python bench/anonymize.py
	$(BIN)/python bench/push.py
	$(BIN)/python bench/pull.py
	$(BIN)/python bench/ceiling.py
	$(BIN)/python bench/fleet.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
