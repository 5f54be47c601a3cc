"""Latency baselines are kept per kind of CPU, so --benchmark-compare never reads a CPU difference as a regression."""
import json

import pytest

from edgeopt import machine
from edgeopt.pytest_plugin import baseline_kind

ZEN3 = frozenset({"avx2", "fma", "f16c"})
ZEN4 = ZEN3 | {"avx512f", "avx512_vnni", "avx512_bf16"}
ZEN5 = ZEN4 | {"avx_vnni"}
XEON_AMX = ZEN5 | {"amx_int8", "amx_bf16"}


def test_cpu_kind_separates_the_cpus_whose_int8_kernels_differ():
    kinds = [machine.cpu_kind("AMD EPYC", flags) for flags in (ZEN3, ZEN4, ZEN5)]
    assert kinds == ["amd-epyc-avx2", "amd-epyc-avx512_vnni", "amd-epyc-avx_vnni"]
    assert machine.cpu_kind("Intel(R) Xeon(R) Processor", XEON_AMX) == "intel-xeon-amx_int8"


def test_cpu_kind_is_a_path_safe_name():
    kind = machine.cpu_kind("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", ZEN3)
    assert kind == "intel-core-i7-8700-avx2"
    assert machine.cpu_kind("", frozenset()).startswith("unknown-")
    assert "/" not in machine.cpu_kind("a/b\\c" * 30, frozenset())


BENCH = """
def test_noop(benchmark):
    benchmark(lambda: None)
"""


@pytest.fixture
def bench_project(pytester):
    pytester.makeconftest('pytest_plugins = ["edgeopt.pytest_plugin"]\n')
    pytester.makepyfile(test_bench=BENCH)
    return pytester


def test_saved_runs_go_to_this_cpu_kinds_directory(bench_project):
    result = bench_project.runpytest("--edgeopt-baselines=base", "--benchmark-save=first",
                                     "--benchmark-min-rounds=1", "--benchmark-max-time=0.01", "-p", "no:cacheprovider",
                                     "-p", "no:xdist")
    result.assert_outcomes(passed=1)
    saved = list((bench_project.path / "base" / baseline_kind(1)).glob("*/0001_first.json"))
    assert len(saved) == 1
    assert json.loads(saved[0].read_text())["machine_info"]["cpu_kind"] == machine.cpu_kind()
    # Another thread count is another kind of run: its baselines live apart.
    assert baseline_kind(2) != baseline_kind(1)


def test_compare_without_a_baseline_of_this_cpu_kind_warns_and_runs(bench_project):
    (bench_project.path / "base" / "other-cpu-avx2-1t" / "Linux").mkdir(parents=True)
    (bench_project.path / "base" / "other-cpu-avx2-1t" / "Linux" / "0001_b.json").write_text('{"benchmarks": []}')
    (bench_project.path / "base" / "empty-kind-1t").mkdir()  # a folder with no run is not listed as a baseline
    result = bench_project.runpytest("--edgeopt-baselines=base", "--benchmark-compare",
                                     "--benchmark-compare-fail=median:25%", "--benchmark-min-rounds=1",
                                     "--benchmark-max-time=0.01", "-p", "no:cacheprovider", "-p", "no:xdist")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*no latency baseline for this CPU kind*{baseline_kind(1)}*"
                                 "baselines exist for: other-cpu-avx2-1t*not compared*edgeopt gate*"])


def test_a_damaged_baseline_is_an_error_naming_it_not_a_silent_older_compare(bench_project):
    args = ["--edgeopt-baselines=base", "--benchmark-min-rounds=1", "--benchmark-max-time=0.01", "-p",
            "no:cacheprovider", "-p", "no:xdist"]
    bench_project.runpytest(*args, "--benchmark-save=one").assert_outcomes(passed=1)
    bench_project.runpytest(*args, "--benchmark-save=two").assert_outcomes(passed=1)
    newest = next((bench_project.path / "base" / baseline_kind(1)).glob("*/0002_two.json"))
    newest.write_text(newest.read_text()[:200])  # truncated
    result = bench_project.runpytest(*args, "--benchmark-compare", "--benchmark-compare-fail=median:25%")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*latency baseline *0002_two.json is damaged*"])


KILLER = """
import os, signal
import pytest_benchmark.utils

pytest_plugins = ["edgeopt.pytest_plugin"]
real_dumps, real_replace = pytest_benchmark.utils.safe_dumps, os.replace

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if os.environ.get("KILL_AT") == "serialise":
    pytest_benchmark.utils.safe_dumps = killed
elif os.environ.get("KILL_AT") == "rename":
    os.replace = lambda src, dst: killed() if str(dst).endswith(".json") else real_replace(src, dst)
"""


@pytest.mark.parametrize("kill_at", ["serialise", "rename"])
def test_a_run_killed_while_saving_its_baseline_leaves_every_stored_baseline_whole(pytester, monkeypatch, kill_at):
    import hashlib

    pytester.makeconftest(KILLER)
    pytester.makepyfile(test_bench=BENCH)
    args = ["--edgeopt-baselines=base", "--benchmark-min-rounds=1", "--benchmark-max-time=0.01", "-p",
            "no:cacheprovider", "-p", "no:xdist"]
    pytester.runpytest_subprocess(*args, "--benchmark-save=one").assert_outcomes(passed=1)
    stored = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (pytester.path / "base").rglob("*.json")}
    monkeypatch.setenv("KILL_AT", kill_at)
    assert pytester.runpytest_subprocess(*args, "--benchmark-save=two").ret == -9  # SIGKILL mid-save
    monkeypatch.delenv("KILL_AT")
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (pytester.path / "base").rglob("*.json")}
    assert after == stored  # nothing new under a baseline's name, nothing old changed
    result = pytester.runpytest_subprocess(*args, "--benchmark-compare", "--benchmark-compare-fail=median:500%")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_noop (0001_one)*"])  # the whole older baseline, not a half newer one
