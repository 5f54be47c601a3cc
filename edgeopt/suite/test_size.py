"""Size of each artifact on disk, raw and gzip-compressed, against the FP32 state dict; MACs per image."""
import pytest


@pytest.mark.per_variant
@pytest.mark.concern("size")
def test_size(bench):
    bench.assert_within_budget(bench.size())
