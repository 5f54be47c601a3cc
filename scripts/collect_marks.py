"""Every collected test id of the suite with its skip/xfail marks (reason and strictness), to show a refactor of the
collection or of the budgets file changes nothing on this CPU.

    .venv/bin/python scripts/collect_marks.py save /tmp/before.txt      # before the change
    .venv/bin/python scripts/collect_marks.py diff /tmp/before.txt      # after it: prints the diff, exit 1 if any

Extra arguments go to pytest (default: the testpaths of pytest.ini).
"""
from __future__ import annotations

import difflib
import sys
from pathlib import Path

import pytest


class _Marks:
    def __init__(self):
        self.lines: list[str] = []

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items):
        for item in items:
            marks = []
            for mark in item.iter_markers():
                if mark.name in ("skip", "skipif", "xfail"):
                    reason = mark.kwargs.get("reason", mark.args[0] if mark.args else "")
                    strict = f" strict={mark.kwargs['strict']}" if "strict" in mark.kwargs else ""
                    marks.append(f"{mark.name}{strict}: {reason}")
            self.lines.append(" | ".join([item.nodeid, *marks]))


def collect(args: list[str]) -> list[str]:
    plugin = _Marks()
    code = pytest.main(["--collect-only", "-q", "-p", "no:randomly", *args], plugins=[plugin])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        raise SystemExit(f"collection failed (exit {code})")
    return sorted(plugin.lines)


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[1] not in ("save", "diff"):
        print(__doc__, file=sys.stderr)
        return 2
    action, path, args = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    lines = collect(args)
    if action == "save":
        path.write_text("\n".join(lines) + "\n")
        print(f"{len(lines)} ids with their marks -> {path}")
        return 0
    before = path.read_text().splitlines()
    diff = list(difflib.unified_diff(before, lines, str(path), "now", lineterm=""))
    print("\n".join(diff) if diff else f"no change: {len(lines)} ids, the same marks")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
