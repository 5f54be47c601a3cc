"""Size of each artifact on disk, raw and gzip-compressed, against the FP32 state dict; MACs per image."""
import pytest


@pytest.mark.per_variant
def test_size(bench, record_property):
    measured = bench.size()
    for key, value in measured.items():
        record_property(key, value)
    bench.assert_within_budget(measured)
