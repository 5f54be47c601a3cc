from edgeopt.suite.test_accuracy import test_accuracy  # noqa: F401  the packaged concern test, collected here
