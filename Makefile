# orch: everything a new machine needs comes from the project's own files.
#   make up    - the main job: engine, images, main + rescue gateways up, status
#   make test  - engine, images, then unit and integration tests
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
ORCH := $(BIN)/orch
export TESTCONTAINERS_RYUK_DISABLED ?= true
export TESTCONTAINERS_CONNECTION_MODE ?= docker_host

.PHONY: install engine images images-orch up down test test-engine check-main-job unit integration lint format bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]" --config-settings editable_mode=compat
	# Bytecode now, as a wheel install has it: with PYTHONDONTWRITEBYTECODE set
	# (as on this kind of machine) every command would compile orch again (~50 ms).
	$(BIN)/python -m compileall -q orchestrator
	touch $@

engine: install
	$(ORCH) engine start

images: engine
	$(ORCH) images build

# orch itself as an image (images/orch/), for CI jobs that run in containers.
images-orch: engine
	PYTHON=$(BIN)/python images/orch/build.sh

up: images
	$(ORCH) setup main
	$(ORCH) setup rescue --rescues main
	$(ORCH) ports
	$(ORCH) up
	$(ORCH) status
	$(BIN)/python .ci/main_job.py record --orch $(ORCH)

# After `make test` (CI): the gateways `make up` recorded are the same containers,
# never restarted, and answer /readyz.
check-main-job: install
	$(BIN)/python .ci/main_job.py check --orch $(ORCH)

down: install
	$(ORCH) down

# Unit tests are pure and CPU-bound: one worker per core.
unit: install
	$(BIN)/pytest -q -n auto tests/unit

integration: images
	$(BIN)/pytest -q tests/integration

# The unit tests on every core, then the engine's tests one at a time (gateway
# starts are CPU-bound: two at once on 2 cores time out). The slowest are listed at
# the end, so CI's log shows where its time goes.
test: images
	$(BIN)/pytest -q -n auto tests/unit
	$(BIN)/pytest -q --durations=25 tests/integration

# Tests that restart or kill dockerd: they skip while other containers run (the
# main job's gateways), so CI runs them once more on a quiet engine, and there they
# must all run: a skip, or no test at all, fails the target.
ENGINE_TESTS ?= -m engine_restart tests/integration
ENGINE_REPORT ?= .ci/test-engine.xml
test-engine: images
	$(BIN)/pytest -q $(ENGINE_TESTS) --junitxml=$(ENGINE_REPORT)
	$(BIN)/python .ci/all_ran.py $(ENGINE_REPORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: images
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
