from edgeopt.suite.test_size import test_size  # noqa: F401  the packaged concern test, collected here
