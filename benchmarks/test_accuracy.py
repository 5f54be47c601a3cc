"""Top-1 on the evaluation split, and its drop against the FP32 PyTorch reference, within budget."""


def test_accuracy(bench, record_property):
    measured = bench.accuracy()
    for key, value in measured.items():
        record_property(key, value)
    bench.assert_within_budget(measured)
