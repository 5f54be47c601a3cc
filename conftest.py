# Root conftest: enables edgeopt's pytest plugin (options --edgeopt-*, user models, machine info),
# and pytester, with which tests/ runs the suite on a user's project.
pytest_plugins = ["edgeopt.pytest_plugin", "pytester"]
