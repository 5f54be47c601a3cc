import json

from edgeopt.suite.relative import StoredRun, newest_run, threshold
from pytest_benchmark.utils import parse_compare_fail


def test_flags_a_case_whose_ratio_to_the_reference_grew_past_the_threshold(tmp_path):
    stored = StoredRun(tmp_path / "run.json", "kind", {"m-onnx_fp32-onnxruntime": 2.0, "m-a-x": 1.0}, 0.25)
    assert stored.check("m-a-x", "m", 0.6, 1.0) is None  # 0.6x now, 0.5x stored: +20%
    assert "+30.0%" in stored.check("m-a-x", "m", 0.65, 1.0)
    assert stored.check("m-new-x", "m", 9.0, 1.0) is None  # not in the stored run: nothing to compare
    assert stored.check("m-a-x", "m", 9.0, None) is None  # no reference in this run


def test_newest_readable_run_of_another_kind(tmp_path):
    for kind, when in (("old", "2026-01-01"), ("new", "2026-06-01"), ("mine", "2026-12-01")):
        (tmp_path / kind / "m").mkdir(parents=True)
        (tmp_path / kind / "m" / "0001.json").write_text(json.dumps({"datetime": when, "benchmarks": []}))
    (tmp_path / "old" / "m" / "0002.json").write_text("{trunc")
    assert newest_run(tmp_path, exclude="mine")[0].parent.parent.name == "new"


def test_threshold_from_benchmark_compare_fail():
    assert threshold([parse_compare_fail("median:10%")]) == 0.10
    assert threshold([parse_compare_fail("min:5%")]) == 0.25
