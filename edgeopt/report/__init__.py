"""``edgeopt report``: the suite's pytest-benchmark JSON files as report.md, results.csv, charts and index.html."""
