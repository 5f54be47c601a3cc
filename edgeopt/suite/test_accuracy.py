"""Top-1 on the evaluation split, and its drop against the FP32 PyTorch reference, within budget."""
import pytest

@pytest.mark.concern("accuracy")
def test_accuracy(bench):
    bench.assert_within_budget(bench.accuracy())
