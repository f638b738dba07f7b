# orch: everything a new machine needs, from the project's own files.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install lint format test unit integration bench clean

install: $(BIN)/orch

$(BIN)/orch: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

unit: install
	$(BIN)/pytest -q tests/unit

test: install
	$(BIN)/pytest -q tests

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
