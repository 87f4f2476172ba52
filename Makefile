# Two commands a user needs: `make test` and `make demo`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint demo bench clean

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

demo: $(STAMP)
	$(BIN)/aidbox-emulator --port $${PORT:-8765}

bench: $(STAMP)
	$(BIN)/python bench/anonymize.py
	$(BIN)/python bench/push.py
	$(BIN)/python bench/pull.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
