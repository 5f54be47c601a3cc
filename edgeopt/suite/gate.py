"""The A/B latency gate as a pytest mode: ``pytest benchmarks/test_latency.py --edgeopt-gate-base REF``.

Every selected latency case is timed against the base by :func:`edgeopt.gate.ab.run_gate` (two worker processes,
interleaved rounds), all cases in one run so that Holm's correction covers the whole gated set; each test then
passes or fails on its own case's verdict.  The verdict (raw samples) and its Markdown table go to
``--edgeopt-gate-out`` as with ``edgeopt gate``.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

_VERDICT = pytest.StashKey[dict]()


def addoptions(group) -> None:
    group.addoption("--edgeopt-gate-base", default=None, metavar="REF|CHECKOUT|ARTIFACT_DIR",
                    help="latency cases are timed against this base in interleaved A/B rounds and fail on a "
                         "significant slowdown (edgeopt gate's statistics) instead of being benchmarked")
    group.addoption("--edgeopt-gate-out", default="gate-results", metavar="DIR",
                    help="where the gate mode writes verdict.json and summary.md (default: gate-results)")


def check_options(config: pytest.Config) -> None:
    if config.getoption("edgeopt_gate_base") and (config.getoption("numprocesses", None) or 0):
        raise pytest.UsageError("--edgeopt-gate-base times both sides on this machine in one run: drop -n "
                                "(pytest-xdist workers would time their cases against each other's load)")


def gate_mode(config: pytest.Config) -> bool:
    return bool(config.getoption("edgeopt_gate_base"))


def verdict_for(session: pytest.Session, cases: list, case) -> dict:
    """This case's verdict; the first call gates every case of ``cases`` (the session's selected latency cases)."""
    from edgeopt.cache import cache_dir
    from edgeopt.data import default_data_dir
    from edgeopt.gate import ab, stats
    from edgeopt.gate.cli import base_side, write_outputs
    from edgeopt.pytest_plugin import tool_config

    config = session.config
    if _VERDICT not in config.stash:
        models = tuple(tool_config(config).get("models", ()))
        base = replace(base_side(config.getoption("edgeopt_gate_base"), Path(config.rootpath), cache_dir(),
                                 sys.executable), models_from=models)
        head = ab.Side("head", models_from=models)
        out = Path(config.getoption("edgeopt_gate_out"))
        data = str(Path(config.getoption("edgeopt_data") or default_data_dir()).resolve())
        verdict = ab.run_gate(base, head, [(c.model, c.variant, c.backend) for c in cases], stats.GateSettings(),
                              ab.Timing(), threads=config.getoption("edgeopt_threads"), data_dir=data, log_dir=out)
        write_outputs(verdict, out)
        config.stash[_VERDICT] = {r["case"]: r for r in verdict["cases"]}
    return config.stash[_VERDICT][case.id]


def assert_verdict(result: dict) -> None:
    """Fails on a slowdown or a head that no longer loads; skips a case neither side can run."""
    if result["verdict"] == "slower":
        pytest.fail(f"{result['case']}: slower than the base: {result['ratio']:.3f}x "
                    f"[{result['ci'][0]:.3f}, {result['ci'][1]:.3f}], Holm p = {result['p_slower_holm']:.2g} "
                    f"({result['base_ms']:.3f} -> {result['head_ms']:.3f} ms)", pytrace=False)
    if result["verdict"] == "broken":
        pytest.fail(f"{result['case']}: loads on the base but not on the head: {result['errors']['head']}",
                    pytrace=False)
    if result["verdict"] == "unavailable":
        pytest.skip(f"{result['case']}: neither side can run it: {result['errors']['head']}")
