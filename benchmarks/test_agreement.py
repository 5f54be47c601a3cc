from edgeopt.suite.test_agreement import test_agreement  # noqa: F401  the packaged concern test, collected here
