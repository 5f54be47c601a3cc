from edgeopt.suite.test_memory import test_memory  # noqa: F401  the packaged concern test, collected here
