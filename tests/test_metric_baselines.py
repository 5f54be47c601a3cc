"""Non-latency baselines catch drift within budgets, and no failing run ever changes a stored baseline."""
import hashlib
import json
import math

import pytest

from edgeopt.metric_baselines import MetricBaselines
from edgeopt.pytest_plugin import baseline_kind


def stored(tmp_path, kind_cases=None, portable_cases=None) -> MetricBaselines:
    for name, cases in (("kind-1t", kind_cases), ("portable", portable_cases)):
        if cases is not None:
            (tmp_path / f"{name}.json").write_text(json.dumps({"cases": cases}))
    return MetricBaselines(tmp_path, "kind-1t")


def test_drift_within_the_budget_is_flagged_with_old_and_new(tmp_path):
    b = stored(tmp_path, {"m-v-b": {"top1_drop": 0.1, "sqnr_db": "inf"}}, {"m-v": {"size_bytes": 1000, "macs": 10}})
    assert b.check("m-v-b", {"top1_drop": 0.25}) == []  # within +0.2 pt
    (line,) = b.check("m-v-b", {"top1_drop": 0.9})
    assert "top1_drop drifted 0.1 -> 0.9" in line
    assert b.check("m-v-b", {"top1_drop": -0.5}) == []  # better never fails
    assert b.check("m-v-b", {"sqnr_db": math.inf}) == []
    assert len(b.check("m-v-b", {"sqnr_db": 40.0})) == 1  # a lossless variant became lossy
    assert b.check("m-v", {"size_bytes": 1009}) == [] and len(b.check("m-v", {"size_bytes": 1011})) == 1
    assert len(b.check("m-v", {"macs": 11})) == 1
    assert b.check("new-case-b", {"top1_drop": 5.0}) == []  # no baseline yet: nothing to drift from


def test_save_merges_and_writes_strict_json(tmp_path):
    b = stored(tmp_path, {"old-v-b": {"top1": 0.8}})
    b.record("m-v-b", {"top1": 0.9, "sqnr_db": math.inf, "peak_rss_mb": 100.0, "max_abs_error": math.nan})
    b.record("m-v", {"size_bytes": 1234, "macs": 5})
    assert b.changes() == ["m-v macs: (new) -> 5", "m-v size_bytes: (new) -> 1234",
                           "m-v-b sqnr_db: (new) -> inf", "m-v-b top1: (new) -> 0.9"]
    b.save()
    kind = json.loads((tmp_path / "kind-1t.json").read_text())["cases"]
    assert kind == {"old-v-b": {"top1": 0.8}, "m-v-b": {"top1": 0.9, "sqnr_db": "inf"}}
    assert json.loads((tmp_path / "portable.json").read_text())["cases"] == {"m-v": {"size_bytes": 1234, "macs": 5}}
    assert MetricBaselines(tmp_path, "kind-1t").old("m-v-b", "sqnr_db") == math.inf


PROJECT = """
import os
import pytest
from edgeopt.pytest_plugin import metric_drift


@pytest.mark.parametrize("case", ["m-v-b"])
def test_accuracy(case, record_property, request):
    measured = {"top1_drop": float(os.environ["DROP"])}
    for key, value in measured.items():
        record_property(key, value)
    assert not metric_drift(request.config, case, measured)


def test_latency(benchmark):
    benchmark(lambda: None)


def test_other():
    assert os.environ.get("BREAK") is None
"""


def sha256s(root):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.json"))}


@pytest.fixture
def project(pytester, monkeypatch):
    pytester.makeconftest('pytest_plugins = ["edgeopt.pytest_plugin"]\n')
    pytester.makepyfile(test_suite=PROJECT)

    def run(*args, drop=0.1, fail=False):
        monkeypatch.setenv("DROP", str(drop))
        monkeypatch.delenv("BREAK", raising=False)
        if fail:
            monkeypatch.setenv("BREAK", "1")
        return pytester.runpytest("--edgeopt-metric-baselines=metrics", "--edgeopt-baselines=latency",
                                  "--benchmark-min-rounds=1", "--benchmark-max-time=0.01",
                                  "-p", "no:cacheprovider", "-p", "no:xdist", *args)
    return pytester, run


def test_update_then_check_then_a_failing_run_changes_no_baseline(project):
    pytester, run = project
    run("--edgeopt-update-baselines", "--benchmark-save=first").assert_outcomes(passed=3)
    metrics = pytester.path / "metrics" / f"{baseline_kind(1)}.json"
    assert json.loads(metrics.read_text())["cases"] == {"m-v-b": {"top1_drop": 0.1}}
    run().assert_outcomes(passed=3)
    drifted = run(drop=0.9)
    drifted.assert_outcomes(passed=2, failed=1)
    drifted.stdout.fnmatch_lines(["*top1_drop drifted 0.1 -> 0.9*"])

    before = sha256s(pytester.path / "metrics") | sha256s(pytester.path / "latency")
    failing = run("--edgeopt-update-baselines", "--benchmark-save=second", drop=0.5, fail=True)
    failing.assert_outcomes(passed=2, failed=1)
    failing.stdout.fnmatch_lines(["*latency baseline NOT saved*", "*metric baselines NOT updated*"])
    assert sha256s(pytester.path / "metrics") | sha256s(pytester.path / "latency") == before

    updated = run("--edgeopt-update-baselines", drop=0.5)
    updated.stdout.fnmatch_lines(["*m-v-b top1_drop: 0.1 -> 0.5*"])
    assert json.loads(metrics.read_text())["cases"] == {"m-v-b": {"top1_drop": 0.5}}


def test_a_corrupt_baseline_file_is_a_usage_error(project):
    pytester, run = project
    (pytester.path / "metrics").mkdir()
    (pytester.path / "metrics" / "portable.json").write_text('{"cases": [1, 2')
    result = run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*portable.json: not a metric baseline written by edgeopt*"])
