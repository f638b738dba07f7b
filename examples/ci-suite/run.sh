#!/bin/sh
# What the CI jobs in docs/ci/ run (GitHub Actions and GitLab CI), and what
# tests/integration/test_plugin.py runs: the example suite with two xdist
# workers, each test with its own real gateway from orch's pytest plugin.
#
# Needs: orch installed (`pip install ".[dev]"` in orch's repo), a Docker engine,
# the gateway image (`orch images build`). Extra arguments go to pytest; the JUnit
# report goes to $JUNIT_XML (default report.xml).
#
# ORCH_RUN_ID (set by the CI job, else pytest-xdist's run id) labels everything
# the run creates: `orch gc --run-id ID` removes exactly that once the run is over.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# testcontainers' reaper cannot be pulled without a registry; orch cleans up itself.
export TESTCONTAINERS_RYUK_DISABLED="${TESTCONTAINERS_RYUK_DISABLED:-true}"
# First, what earlier runs on this host left when they were killed (runs that are over).
orch gc
exec "${PYTHON:-python}" -m pytest "$here" -n 2 -p no:cacheprovider \
    --junitxml="${JUNIT_XML:-report.xml}" "$@"
