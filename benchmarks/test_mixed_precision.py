"""Issue 20's regression gate, on measured figures: sensitivity-based mixed precision is never worse than the
position schedule at the same BitOps, on the CIFAR models (its whole evaluation split, torchscript)."""
import pytest

from edgeopt.suite.case import Case, all_cases, reported_errors

MODELS = ("simple_cnn", "cifar_resnet", "mobilenet_v2_cifar")


def pytest_generate_tests(metafunc):
    selected = set(all_cases(metafunc.config, per_backend=True))
    params = [pytest.param(m, id=m, marks=pytest.mark.xdist_group(f"{m}-lowbit_mixed")) for m in MODELS
              if {Case(m, "lowbit_mixed", "torchscript"), Case(m, "lowbit_position", "torchscript")} <= selected]
    metafunc.parametrize("model", params or [pytest.param(None, marks=pytest.mark.skip(
        reason="lowbit_mixed and lowbit_position on a CIFAR model are not among the selected cases"))])


def test_sensitivity_is_never_worse_than_position_at_its_bitops(workbench, model):
    with reported_errors():
        if not workbench.weights(model).pretrained:
            pytest.skip(f"{model}: needs trained weights")
        variants = ("lowbit_mixed", "lowbit_position")
        mixed, position = (workbench.accuracy(model, v, "torchscript")["top1"] for v in variants)
        bitops = {v: workbench.artifact(model, v).meta["bitops"] for v in variants}
    assert bitops["lowbit_mixed"] <= bitops["lowbit_position"], bitops
    assert mixed >= position, f"{model}: sensitivity top-1 {mixed:.4f} < position {position:.4f} at the same BitOps"
