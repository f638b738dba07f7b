"""`.ci/all_ran.py`, what makes `make test-engine` fail when its tests did not run: on
the junit reports of real pytest runs (a skip, nothing selected, all run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ALL_RAN = REPO / ".ci" / "all_ran.py"
TESTS = """
import pytest

def test_runs():
    pass

def test_skips():
    pytest.skip("restarting dockerd would stop containers that are not this test's")
"""


def pytest_report(tmp_path: Path, *args: str) -> Path:
    """Run pytest on a small test file as `make test-engine` runs it; its junit report."""
    (tmp_path / "test_engine_demo.py").write_text(TESTS)
    report = tmp_path / "report.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    cmd += [str(tmp_path / "test_engine_demo.py"), f"--junitxml={report}"]
    subprocess.run(cmd, cwd=tmp_path, capture_output=True, check=False)
    return report


def all_ran(report: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ALL_RAN), str(report)], capture_output=True, text=True
    )


def test_a_run_with_a_skip_fails_naming_the_test_and_why(tmp_path: Path) -> None:
    proc = all_ran(pytest_report(tmp_path))
    assert proc.returncode == 1
    assert "skipped test_engine_demo.test_skips: restarting dockerd would stop" in proc.stderr
    assert "1 of 2 tests did not run" in proc.stderr


def test_a_run_that_selected_nothing_fails(tmp_path: Path) -> None:
    proc = all_ran(pytest_report(tmp_path, "-m", "engine_restart"))
    assert proc.returncode == 1 and "no test ran" in proc.stderr


def test_a_run_where_every_test_ran_passes(tmp_path: Path) -> None:
    proc = all_ran(pytest_report(tmp_path, "-k", "runs"))
    assert proc.returncode == 0 and "all 1 tests ran" in proc.stdout


@pytest.mark.parametrize("content", [None, "<not-xml"])
def test_a_missing_or_broken_report_fails(tmp_path: Path, content: str | None) -> None:
    report = tmp_path / "report.xml"
    if content is not None:
        report.write_text(content)
    proc = all_ran(report)
    assert proc.returncode == 1 and "cannot read the pytest report" in proc.stderr
