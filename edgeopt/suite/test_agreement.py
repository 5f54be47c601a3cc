"""Outputs of each variant on each runtime against the FP32 PyTorch reference, on the same images."""
import pytest


@pytest.mark.skip_reference
@pytest.mark.concern("agreement")
def test_agreement(bench):
    bench.assert_within_budget(bench.agreement())
