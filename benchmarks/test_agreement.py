"""Outputs of each variant on each runtime against the FP32 PyTorch reference, on the same images."""
import pytest


@pytest.mark.skip_reference
def test_agreement(bench, record_property):
    measured = bench.agreement()
    for key, value in measured.items():
        record_property(key, value)
    bench.assert_within_budget(measured)
