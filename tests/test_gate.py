"""The A/B latency gate: its statistics on known samples, its interleaving, and a real slowdown on a tiny model."""
import json
import random

import numpy as np
import pytest

from edgeopt.gate import ab, stats
from edgeopt.gate.cli import write_outputs
from edgeopt.gate.markdown import summary
from tests.conftest import write_image_folder

SETTINGS = stats.GateSettings(threshold=0.03, alpha=0.01)


def rounds(medians, calls=5):
    return [[m] * calls for m in medians]


def drifting(n, seed, slowdown=0.0):
    """Paired rounds under the machine's drift: phases of +-40% that hit both sides of a round alike."""
    rng = np.random.default_rng(seed)
    phase = np.repeat(rng.uniform(0.8, 1.4, n // 10 + 1), 10)[:n]
    base = phase * rng.normal(1.0, 0.02, n)
    head = phase * rng.normal(1.0, 0.02, n) * (1 + slowdown)
    return rounds(base * 1e-3), rounds(head * 1e-3)


def test_drift_cancels_in_paired_rounds_and_a_5_percent_slowdown_is_found():
    result = stats.decide([stats.compare(*drifting(100, 0, 0.05), SETTINGS)], SETTINGS)[0]
    assert result["verdict"] == stats.SLOWER and 1.04 < result["ratio"] < 1.06
    assert result["ci"][0] < result["ratio"] < result["ci"][1]
    same = stats.decide([stats.compare(*drifting(100, 1), SETTINGS)], SETTINGS)[0]
    assert same["verdict"] == stats.SAME and abs(same["ratio"] - 1) < 0.01
    faster = stats.decide([stats.compare(*drifting(100, 2, -0.1), SETTINGS)], SETTINGS)[0]
    assert faster["verdict"] == stats.FASTER


def test_a_significant_change_below_the_threshold_is_not_a_regression():
    result = stats.decide([stats.compare(*drifting(400, 3, 0.015), SETTINGS)], SETTINGS)[0]
    assert result["p_slower"] < 1e-6 and result["verdict"] == stats.SAME


def test_a_large_ratio_on_too_little_evidence_is_not_a_regression():
    base, head = rounds([1.0] * 12), rounds([0.8, 0.8, 1.6, 1.6, 0.9, 0.9, 1.7, 1.7, 0.9, 0.9, 1.5, 1.5])
    result = stats.decide([stats.compare(base, head, SETTINGS)], SETTINGS)[0]
    assert result["ratio"] > 1.03 and result["verdict"] == stats.SAME


def test_holm_adjusts_known_pvalues():
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # One of 20 cases at p = 0.004 passes alone at alpha 0.01 but not among 20: the run's false-alarm rate is held.
    results = [{"ratio": 1.05, "p_slower": 0.004, "p_faster": 1.0}] + [{"ratio": 1.0, "p_slower": 0.5,
                                                                       "p_faster": 0.5}] * 19
    assert stats.decide(results, SETTINGS)[0]["verdict"] == stats.SAME


def test_plain_decision_is_pytest_benchmarks_median_rule():
    assert stats.plain_decision([1.0, 1.0, 1.2], [1.11, 1.11], 0.10)
    assert not stats.plain_decision([1.0, 1.0, 1.2], [1.09, 1.09], 0.10)


class FakeWorker:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def ask(self, **cmd):
        self.log.append((self.name, cmd["op"]))
        return {"times": [1e-4] * cmd.get("calls", 1), "ok": True}


def test_each_round_runs_both_sides_in_random_order():
    log = []
    workers = [FakeWorker("base", log), FakeWorker("head", log)]
    rng = random.Random(0)
    firsts = [ab._alternate(workers, rng, op="time", calls=1) and log[-2][0] for _ in range(200)]
    assert len(log) == 400 and all(log[i][0] != log[i + 1][0] for i in range(0, 400, 2))
    assert 70 < firsts.count("base") < 130


def test_rounds_come_in_pairs_where_each_side_goes_first_once():
    log = []
    timed = ab.time_case([FakeWorker("base", log), FakeWorker("head", log)], ("m", "v", "b"),
                         ab.Timing(seconds_per_case=0.01, warmup_seconds=0.0), random.Random(0))
    pairs = list(zip(timed["first"][::2], timed["first"][1::2]))
    assert len(pairs) >= 10 and all(sorted(p) == ["base", "head"] for p in pairs)
    assert {a for a, _ in pairs} == {"base", "head"}  # which side opens a pair is random



def test_each_side_loads_the_case_afresh_for_each_share_of_the_rounds():
    log = []
    timed = ab.time_case([FakeWorker("base", log), FakeWorker("head", log)], ("m", "v", "b"),
                         ab.Timing(seconds_per_case=0.01, warmup_seconds=0.0, loads=3), random.Random(0))
    ops = [op for name, op in log if name == "head" and op in ("load", "unload", "time")]
    loads = [i for i, op in enumerate(ops) if op == "load"]
    assert len(loads) == 3 and ops.count("unload") == 3 and timed["loads"] == 3
    assert all(ops[i - 1] == "unload" for i in loads[1:])  # never two loads of one case at once
    assert all("time" in ops[a:b] for a, b in zip(loads, loads[1:] + [len(ops)]))  # every load is timed

USER_MODELS = '''
import torch
from torch import nn
from edgeopt.data import DatasetSpec
from edgeopt.models import ModelSpec, register_model


class GateNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


register_model(ModelSpec("gate_net", GateNet, None, DatasetSpec("gatedata", eval_dir="gatedata/test", crop=8),
                         input_size=(3, 8, 8), mean=(0.5,) * 3, std=(0.25,) * 3, num_classes=3, eval_batch=4))
'''


def test_the_gate_flags_a_slowed_head_on_a_tiny_model_and_saves_raw_samples(tmp_path, monkeypatch):
    (tmp_path / "gate_models.py").write_text(USER_MODELS)
    write_image_folder(tmp_path / "data" / "gatedata" / "test", per_class=2, seed=5)
    monkeypatch.chdir(tmp_path)
    timing = ab.Timing(seconds_per_case=0.3, warmup_seconds=0.05, min_rounds=24)
    sides = [ab.Side("base", models_from=("gate_models",)),
             ab.Side("head", models_from=("gate_models",), slowdown={"torch": 0.5})]
    cases = [("gate_net", "fp32", "torch"), ("gate_net", "onnx_fp32", "onnxruntime"),
             ("gate_net", "onnx_fp32", "nosuch")]
    verdict = ab.run_gate(*sides, cases, SETTINGS, timing, data_dir=str(tmp_path / "data"), log_dir=tmp_path)
    by_case = {r["case"]: r for r in verdict["cases"]}
    slowed, plain = by_case["gate_net-fp32-torch"], by_case["gate_net-onnx_fp32-onnxruntime"]
    assert slowed["verdict"] == stats.SLOWER and slowed["ratio"] > 1.3  # the spin adds its own overhead on ~20 us calls
    assert plain["verdict"] != stats.SLOWER
    assert by_case["gate_net-onnx_fp32-nosuch"]["verdict"] == "unavailable"
    assert len(slowed["samples_s"]["base"]) == len(slowed["samples_s"]["head"]) == slowed["rounds"] >= 12
    assert verdict["regressions"] == 1
    json_path, md_path = write_outputs(verdict, tmp_path / "out")
    assert json.loads(json_path.read_text())["cases"][0]["samples_s"]
    assert "❌ 1 regression(s)" in md_path.read_text() and "`gate_net-fp32-torch`" in md_path.read_text()


def test_summary_stays_under_githubs_limit_by_folding_unchanged_cases():
    case = {"case": "m-v-b" * 20, "verdict": "same", "base_ms": 1.0, "head_ms": 1.0, "ratio": 1.0, "ci": [0.99, 1.01],
            "p_slower_holm": 1.0, "rounds": 100, "calls_per_round": 10}
    verdict = {"settings": {"threshold": 0.03, "alpha": 0.01, "threads": 1}, "regressions": 1, "wall_s": 1.0,
               "base": {"label": "base"}, "head": {"label": "head"},
               "cases": [{**case, "verdict": "slower"}] + [case] * 20000}
    text = summary(verdict, limit=100_000)
    assert len(text.encode()) <= 100_000 and "❌ slower" in text and "left out" in text


def test_the_pytest_mode_fails_a_slower_or_broken_case_with_its_figures():
    from edgeopt.suite.gate import assert_verdict
    slower = {"case": "m-v-b", "verdict": "slower", "ratio": 1.12, "ci": [1.09, 1.16], "p_slower_holm": 1e-6,
              "base_ms": 1.0, "head_ms": 1.12}
    with pytest.raises(pytest.fail.Exception, match=r"slower than the base: 1\.120x \[1\.090, 1\.160\]"):
        assert_verdict(slower)
    with pytest.raises(pytest.fail.Exception, match="loads on the base but not on the head: boom"):
        assert_verdict({"case": "m-v-b", "verdict": "broken", "errors": {"base": None, "head": "boom"}})
    assert_verdict({**slower, "verdict": "same"})
    assert_verdict({**slower, "verdict": "faster"})
