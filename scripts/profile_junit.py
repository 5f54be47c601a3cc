"""Where a `make test` run's time goes, from its JUnit XML (pytest --junitxml): seconds per concern, model and
backend, summed over test cases (CPU-seconds of the workers, not wall time: two xdist workers overlap).

    make test PYTEST_ARGS="--junitxml=junit.xml" && .venv/bin/python scripts/profile_junit.py junit.xml
    make bench && .venv/bin/python scripts/profile_junit.py edgeopt-report/junit-*.xml   (both phases)
"""
from __future__ import annotations

import collections
import re
import sys
import xml.etree.ElementTree as ET


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cases = [c for path in sys.argv[1:] for c in ET.parse(path).getroot().iter("testcase")]
    by: dict[str, collections.Counter] = {k: collections.Counter()
                                          for k in ("part", "concern", "model", "backend", "variant")}
    total = 0.0
    for c in cases:
        t = float(c.get("time", 0))
        total += t
        name, cls = c.get("name", ""), c.get("classname", "")
        by["part"]["benchmarks/ (the suite)" if cls.startswith("benchmarks") else "tests/ (unit tests)"] += t
        m = re.match(r"test_(\w+)\[([a-z0-9_]+)-([a-z0-9_]+)(?:-([a-z0-9_]+))?\]", name)
        if cls.startswith("benchmarks") and m:
            concern, model, variant, backend = m.groups()
            by["concern"][concern] += t
            by["model"][model] += t
            by["backend"][backend or "(per variant)"] += t
            by["variant"][variant] += t
    print(f"total test time {total:.0f} s (summed over workers)")
    for key, counter in by.items():
        rows = [(k, v) for k, v in counter.most_common() if v >= 1]
        if rows:
            print(f"\n| {key} | s | share |\n| --- | --- | --- |")
            for k, v in rows:
                print(f"| {k} | {v:.0f} | {100 * v / total:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
