# Root conftest: enables edgeopt's pytest plugin (options --edgeopt-*, user models, machine info).
pytest_plugins = ["edgeopt.pytest_plugin"]
