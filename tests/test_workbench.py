"""Workbench: evaluation outputs are computed once per identical inputs and reused from the cache."""
from __future__ import annotations

import numpy as np
import pytest

from edgeopt import cache
from edgeopt.backends import RunnerError
from edgeopt.workbench import Workbench

from tests.conftest import write_image_folder


def _forbid_runs(monkeypatch):
    def run_split(self, model, variant, backend):
        raise AssertionError(f"{model}-{variant}-{backend} was evaluated again")

    monkeypatch.setattr(Workbench, "_run_split", run_split)


def test_outputs_are_reused_by_the_next_run(tiny_model, data_dir, isolated_cache, monkeypatch):
    first = Workbench(data_dir=data_dir).outputs("tiny_test", "fp32", "torch")
    assert first.shape == (15, 3)
    assert len(list((isolated_cache / "outputs").glob("tiny_test-fp32-torch-*.npy"))) == 1
    _forbid_runs(monkeypatch)
    np.testing.assert_array_equal(Workbench(data_dir=data_dir).outputs("tiny_test", "fp32", "torch"), first)


def test_remeasure_evaluates_again(tiny_model, data_dir, monkeypatch):
    Workbench(data_dir=data_dir).outputs("tiny_test", "fp32", "torch")
    _forbid_runs(monkeypatch)
    with pytest.raises(AssertionError, match="evaluated again"):
        Workbench(data_dir=data_dir, reuse_outputs=False).outputs("tiny_test", "fp32", "torch")


def test_key_follows_every_input(tiny_model, data_dir, tmp_path):
    base = Workbench(data_dir=data_dir)
    key = base.outputs_key("tiny_test", "fp32", "torch")
    assert Workbench(data_dir=data_dir).outputs_key("tiny_test", "fp32", "torch") == key
    assert Workbench(data_dir=data_dir, threads=2).outputs_key("tiny_test", "fp32", "torch") != key
    assert base.outputs_key("tiny_test", "torchscript", "torchscript") != key
    other = tmp_path / "other"
    write_image_folder(other / "tiny" / "test", per_class=5, seed=7)  # same file names, other pixels
    write_image_folder(other / "tiny" / "train", per_class=4, seed=2)
    assert Workbench(data_dir=other).outputs_key("tiny_test", "fp32", "torch") != key


def test_key_follows_the_kind_of_cpu(tiny_model, data_dir, monkeypatch):
    """INT8 kernels with and without VNNI give different logits: a cache carried to another CPU is not reused."""
    from edgeopt import workbench

    key = Workbench(data_dir=data_dir).outputs_key("tiny_test", "fp32", "torch")
    monkeypatch.setattr(workbench, "cpu_kind", lambda: "amd-epyc-avx2")
    assert Workbench(data_dir=data_dir).outputs_key("tiny_test", "fp32", "torch") != key


def test_changed_artifact_bytes_are_evaluated_again(tiny_model, data_dir):
    wb = Workbench(data_dir=data_dir)
    key = wb.outputs_key("tiny_test", "onnx_fp32", "onnxruntime")
    path = wb.artifact("tiny_test", "onnx_fp32").path
    path.write_bytes(path.read_bytes() + b"\0")  # e.g. a rebuild that did not reproduce bit for bit
    cache._write_seal(path.parent, path.parent / cache.SEAL)  # ... sealed as a rebuild is (else: corrupt, rebuilt)
    assert Workbench(data_dir=data_dir).outputs_key("tiny_test", "onnx_fp32", "onnxruntime") != key


def test_a_failed_evaluation_stores_nothing(tiny_model, data_dir, isolated_cache, monkeypatch):
    def run_split(self, model, variant, backend):
        raise RunnerError("the runtime failed")

    monkeypatch.setattr(Workbench, "_run_split", run_split)
    with pytest.raises(RunnerError):
        Workbench(data_dir=data_dir).outputs("tiny_test", "fp32", "torch")
    assert not [p for p in (isolated_cache / "outputs").iterdir() if p.suffix != ".lock"]


def test_measured_reads_figures_an_earlier_run_left_without_evaluating(tiny_model, data_dir, monkeypatch):
    """A latency-only run after the budget checks reports their accuracy and agreement figures."""
    assert Workbench(data_dir=data_dir).measured("tiny_test", "onnx_fp32", "onnxruntime") == {}
    earlier = Workbench(data_dir=data_dir)
    expected = {**earlier.accuracy("tiny_test", "onnx_fp32", "onnxruntime"),
                **earlier.agreement("tiny_test", "onnx_fp32", "onnxruntime")}
    _forbid_runs(monkeypatch)
    later = Workbench(data_dir=data_dir)
    assert later.measured("tiny_test", "onnx_fp32", "onnxruntime") == expected
    assert Workbench(data_dir=data_dir, reuse_outputs=False).measured("tiny_test", "onnx_fp32", "onnxruntime") == {}


def test_peak_memory_is_probed_once_per_identical_inputs(tiny_model, data_dir, isolated_cache, monkeypatch):
    """A warm run and make bench's latency phase read the first probe's figures back (in measured() too)."""
    first = Workbench(data_dir=data_dir).memory("tiny_test", "onnx_fp32", "onnxruntime")
    assert first["peak_rss_mb"] > 0
    monkeypatch.setattr("edgeopt.memory.peak_rss", lambda *a, **k: pytest.fail("probed again"))
    assert Workbench(data_dir=data_dir).memory("tiny_test", "onnx_fp32", "onnxruntime") == first
    assert Workbench(data_dir=data_dir).measured("tiny_test", "onnx_fp32", "onnxruntime")["peak_rss_mb"] == first["peak_rss_mb"]
    with pytest.raises(pytest.fail.Exception, match="probed again"):  # another thread count is another measurement
        Workbench(data_dir=data_dir, threads=2).memory("tiny_test", "onnx_fp32", "onnxruntime")


def test_outputs_key_ignores_code_that_only_judges_or_reports(tmp_path):
    """Editing the pytest plugin or the report must not re-run every evaluation; editing a runner must."""
    import shutil
    from pathlib import Path

    from edgeopt import workbench

    package = Path(workbench.__file__).parent

    def digest_after_editing(rel: str) -> str:
        copy = tmp_path / rel.replace("/", "_")
        shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__", "weights"))
        with (copy / rel).open("a") as f:
            f.write("\n# edited\n")
        return cache.source_digest(copy, exclude=workbench.DECIDING_CODE)

    untouched = cache.source_digest(package, exclude=workbench.DECIDING_CODE)
    assert digest_after_editing("suite/plugin.py") == untouched
    assert digest_after_editing("report/charts.py") == untouched
    assert digest_after_editing("backends/torch_eager.py") != untouched
