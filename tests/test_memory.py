import pytest

from edgeopt.memory import peak_rss
from edgeopt.recipes import VARIANTS, build


def test_peak_rss_is_measured_in_a_fresh_process(tiny_model):
    artifact = build(tiny_model, VARIANTS["onnx_fp32"], tiny_model.build())
    result = peak_rss(artifact, "onnxruntime", threads=1, input_shape=(1, 3, 8, 8))
    # A spawned interpreter that imported onnxruntime: tens of MB, and the peak is at least the runtime's RSS.
    assert 10 < result["runtime_rss_mb"] <= result["peak_rss_mb"] < 2000
    assert result["model_rss_mb"] == pytest.approx(result["peak_rss_mb"] - result["runtime_rss_mb"], abs=0.11)
    # a fresh interpreter that imports onnxruntime and not torch (which alone is ~700 MB resident here)
    assert result["peak_rss_mb"] < 300


def test_a_failing_child_reports_instead_of_hanging(tiny_model, tmp_path):
    from dataclasses import replace

    import pytest

    artifact = build(tiny_model, VARIANTS["onnx_fp32"], tiny_model.build())
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"junk")
    with pytest.raises(RuntimeError, match="memory probe .* failed: RunnerError"):
        peak_rss(replace(artifact, path=broken), "onnxruntime", threads=1, input_shape=(1, 3, 8, 8))
