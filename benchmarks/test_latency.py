from edgeopt.suite.test_latency import test_latency  # noqa: F401  the packaged concern test, collected here
