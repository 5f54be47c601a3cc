"""The benchmark suite as an installed pytest plugin (entry point ``pytest11``: :mod:`edgeopt.suite.plugin`).

Its concern tests (``test_accuracy``, ``test_agreement``, ``test_size``, ``test_memory``, ``test_latency``) live
here, so a project with ``pip install edgeopt`` and a ``[tool.edgeopt]`` table runs them on its own models with
``pytest --pyargs edgeopt.suite`` (or imports them into its own test files, as this repository's ``benchmarks/``
does) without copying anything.
"""
