"""Fail unless every test of a pytest run really ran: `make test-engine` exists to run
the tests that skip during `make test`, so a skip there (or no test at all) means
they did not run, and CI must not be green.

Usage: python .ci/all_ran.py REPORT.xml   (the run's --junitxml report)
Exit 0 when at least one test ran and none was skipped; 1 otherwise, naming each
skipped test and its reason.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def not_run(report: str) -> tuple[int, list[str]]:
    """(tests in the report, "name: reason" of each skipped one)."""
    cases = ET.parse(report).getroot().iter("testcase")
    total, skipped = 0, []
    for case in cases:
        total += 1
        skip = case.find("skipped")
        if skip is not None:
            name = f"{case.get('classname')}.{case.get('name')}"
            skipped.append(f"{name}: {skip.get('message', '').strip()}")
    return total, skipped


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        total, skipped = not_run(sys.argv[1])
    except (OSError, ET.ParseError) as exc:
        print(f"all-ran: cannot read the pytest report {sys.argv[1]}: {exc}", file=sys.stderr)
        return 1
    if total == 0:
        print("all-ran: no test ran (none selected)", file=sys.stderr)
        return 1
    for line in skipped:
        print(f"all-ran: skipped {line}", file=sys.stderr)
    if skipped:
        print(f"all-ran: {len(skipped)} of {total} tests did not run", file=sys.stderr)
        return 1
    print(f"all-ran: all {total} tests ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
