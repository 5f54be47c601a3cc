"""Issue 20's BitOps cross-check: edgeopt's per-layer MACs and BitOps (torch hooks, edgeopt/bitops.py) against
qonnx's ``inference_cost`` on the model's own ONNX export carrying the same bits (edgeopt/qonnx_cost.py)."""
import pytest

from edgeopt.qonnx_cost import inference_cost
from edgeopt.suite.case import all_cases, reported_errors, xdist_group
from edgeopt.suite.plugin import skip_reason

NO_WEIGHT_MULTIPLIES = {"ReduceMean", "ReduceMax"}  # global pooling: qonnx has no cost rule, nor needs one


def pytest_generate_tests(metafunc):
    params = []
    for case in all_cases(metafunc.config, per_backend=False):
        if case.variant.startswith("lowbit_"):
            reason = skip_reason(metafunc.config, case, "size")
            marks = [pytest.mark.xdist_group(xdist_group(case))] + ([pytest.mark.skip(reason=reason)] if reason else [])
            params.append(pytest.param(case, id=case.id, marks=marks))
    metafunc.parametrize("case", params or [pytest.param(None, marks=pytest.mark.skip(
        reason="no low-bit variant among the selected cases"))])


def test_bitops_agree_with_qonnx(workbench, case):
    with reported_errors():
        layers = workbench.artifact(case.model, case.variant).meta["layers"]
        qonnx = inference_cost(workbench.artifact(case.model, "onnx_fp32").path, layers)
    assert set(qonnx["uncounted"]) <= NO_WEIGHT_MULTIPLIES, f"qonnx could not count {qonnx['uncounted']}"
    ours = {"macs": sum(lay["macs"] for lay in layers), "bitops": sum(lay["bitops"] for lay in layers),
            "weight_bits": sum(lay["weights"] * lay["weight_bits"] for lay in layers)}  # qonnx counts no biases
    assert {k: qonnx[k] for k in ours} == ours, f"{case.id}: qonnx {qonnx} vs edgeopt {ours}"
