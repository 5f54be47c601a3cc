"""Measured figures quoted in the docs are generated from their measurement file, so they cannot drift apart."""
import importlib.util
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("doc", ["README.md", "docs/gate.md"])
def test_the_gate_rates_in_the_docs_are_the_measurement_files(doc):
    gate = _script("measure_gate")
    assert gate.block(gate.ROOT / doc)[1] == gate.table(str(gate.MEASUREMENT))
