"""Peak RSS of loading the artifact and running batch-1 inference, measured in a fresh child process."""


def test_memory(bench, record_property):
    measured = bench.memory()
    for key, value in measured.items():
        record_property(key, value)
    bench.assert_within_budget(measured)
