# Root conftest: pytester, with which tests/ runs the suite in a user's project.  edgeopt's own plugins
# (options, the suite) load from the installed package's pytest11 entry points.
pytest_plugins = ["pytester"]
