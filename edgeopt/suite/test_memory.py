"""Peak RSS of loading the artifact and running batch-1 inference, measured in a fresh child process."""
import pytest


@pytest.mark.concern("memory")
def test_memory(bench):
    bench.assert_within_budget(bench.memory())
