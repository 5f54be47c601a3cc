"""pytest plugin: edgeopt's command-line options, user model discovery, benchmark machine info and where
latency baselines are kept (one directory per kind of CPU and thread count).

Installed with the package (entry point ``pytest11``), as is the suite itself (:mod:`edgeopt.suite.plugin`).
User models are registered by modules listed in ``[tool.edgeopt] models = ["my_models"]`` of the
root ``pyproject.toml`` (imported with the root directory on ``sys.path``), by any ``conftest.py``
calling :func:`edgeopt.models.register_model`, or by an ``edgeopt.models`` entry point.
"""
from __future__ import annotations

import functools
import importlib
import json
import sys
import tomllib
import traceback
from importlib import metadata
from pathlib import Path

import pytest

from edgeopt.atomic import write_atomically
from edgeopt.machine import cpu_info, cpu_kind, notable_flags
from edgeopt.metric_baselines import MetricBaselineError, MetricBaselines


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgeopt", "edgeopt benchmark suite")
    group.addoption("--edgeopt-threads", type=int, default=1, metavar="N",
                    help="threads for every runtime (default 1, as on a small edge core)")
    group.addoption("--edgeopt-data", default=None, metavar="DIR",
                    help="data root with ImageFolder trees (default: $EDGEOPT_DATA or ../shared/data)")
    group.addoption("--edgeopt-models", default="*", metavar="GLOB[,GLOB]", help="models to run (default: all)")
    group.addoption("--edgeopt-variants", default="*", metavar="GLOB[,GLOB]", help="variants to run")
    group.addoption("--edgeopt-backends", default="*", metavar="GLOB[,GLOB]", help="backends to run")
    group.addoption("--edgeopt-limit", type=int, default=None, metavar="N",
                    help="evaluate N evenly spaced images of each evaluation split (quick runs)")
    group.addoption("--edgeopt-latency-loads", type=int, default=1, metavar="N",
                    help="load a model's latency cases N times, one after the other, each with 1/N of the time "
                         "(where a load lands moves a case by a few percent: docs/latency-ranking.md)")
    group.addoption("--edgeopt-latency-panel", choices=("backend", "model"), default="backend",
                    help="time a model's latency cases one backend at a time (default: identical kernels rank "
                         "closer, docs/latency-ranking.md) or all together")
    group.addoption("--edgeopt-remeasure", action="store_true",
                    help="run every evaluation again instead of reusing the cached outputs of identical inputs "
                         "(same artifact bytes, runtime version, threads, images and edgeopt code)")
    group.addoption("--edgeopt-budgets", default=None, metavar="TOML", help="budgets file (default: budgets of [tool.edgeopt] in the root pyproject.toml)")
    group.addoption("--edgeopt-baselines", default=None, metavar="DIR",
                    help="keep pytest-benchmark runs in DIR/<cpu kind>-<threads>t (replaces --benchmark-storage), "
                         "so --benchmark-compare only ever compares with a run on the same kind of CPU")
    group.addoption("--edgeopt-compare-relative", action="store_true",
                    help="on a CPU kind with no latency baseline of its own, compare each latency case's ratio to its "
                         "model's onnx_fp32-onnxruntime case with that ratio in the newest stored run of another kind")
    group.addoption("--edgeopt-metric-baselines", default=None, metavar="DIR",
                    help="fail a case whose top-1, drop, agreement, SQNR, size or MACs got worse than stored in DIR "
                         "(per CPU kind; size and MACs in DIR/portable.json) by more than its tolerance")
    group.addoption("--edgeopt-update-baselines", action="store_true",
                    help="record this run's figures as the metric baselines instead of checking them; written only "
                         "if the whole run passes, printing every old -> new")


_TOOL = pytest.StashKey[dict]()
TOOL_KEYS = ("models", "budgets")


def tool_config(config: pytest.Config) -> dict:
    """The ``[tool.edgeopt]`` table of pyproject.toml in the root directory or, failing that, the directory pytest
    was started in (``pytest --pyargs edgeopt.suite`` in a project whose pyproject has no pytest table); {} if none."""
    if _TOOL not in config.stash:
        pyproject = next((d / "pyproject.toml" for d in (Path(config.rootpath), config.invocation_params.dir)
                          if _edgeopt_table(d / "pyproject.toml")), Path(config.rootpath) / "pyproject.toml")
        try:
            table = tomllib.loads(pyproject.read_text()) if pyproject.is_file() else {}
        except tomllib.TOMLDecodeError as exc:
            raise pytest.UsageError(f"{pyproject}: {exc}") from None
        tool = table.get("tool", {}).get("edgeopt", {})
        if unknown := sorted(set(tool) - set(TOOL_KEYS)):  # a typo would otherwise switch a setting off unseen
            raise pytest.UsageError(f"{pyproject}: unknown key(s) {', '.join(unknown)} in [tool.edgeopt]; "
                                    f"known: {', '.join(TOOL_KEYS)}")
        config.stash[_TOOL] = {**tool, "_dir": pyproject.parent}
    return config.stash[_TOOL]


def _edgeopt_table(pyproject: Path) -> bool:
    return pyproject.is_file() and "[tool.edgeopt" in pyproject.read_text()


def _import_user_models(config: pytest.Config) -> None:
    modules = tool_config(config).get("models", [])
    if isinstance(modules, str):
        modules = [modules]
    project = str(tool_config(config)["_dir"])
    if modules and project not in sys.path:
        sys.path.insert(0, project)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 (whatever the user's module raises: one line, not INTERNALERROR)
            where = next((f" ({f.filename}:{f.lineno})" for f in reversed(traceback.extract_tb(exc.__traceback__))
                          if f.filename.startswith(project)), "")
            raise pytest.UsageError(f"[tool.edgeopt] models in {project}/pyproject.toml: cannot import {name!r}: "
                                    f"{type(exc).__name__}: {exc}{where}") from None


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_NOTES] = []
    if config.getoption("edgeopt_threads") < 1:
        raise pytest.UsageError("--edgeopt-threads must be >= 1")
    if config.getoption("edgeopt_limit") is not None and config.getoption("edgeopt_limit") < 1:
        raise pytest.UsageError("--edgeopt-limit must be >= 1")
    _import_user_models(config)
    _store_baselines_per_cpu_kind(config)
    _load_metric_baselines(config)


_NOTES = pytest.StashKey[list]()
_METRICS = pytest.StashKey["MetricBaselines | None"]()


def baseline_kind(threads: int) -> str:
    """The baseline directory name of this machine at ``threads`` threads, e.g. ``amd-epyc-avx2-1t``."""
    return f"{cpu_kind()}-{threads}t"


def _store_baselines_per_cpu_kind(config: pytest.Config) -> None:
    root = config.getoption("edgeopt_baselines")
    if not root or not hasattr(config.option, "benchmark_storage"):
        return
    root = Path(root) if Path(root).is_absolute() else Path(config.rootpath) / root
    directory = root / baseline_kind(config.getoption("edgeopt_threads"))
    config.option.benchmark_storage = f"file://{directory}"
    relative = config.getoption("edgeopt_compare_relative")
    if config.getoption("benchmark_compare"):
        _check_stored_runs(directory)
    if (config.getoption("benchmark_compare") or relative) and not any(directory.glob("*/*.json")):
        # Hosted runners change CPU kind from job to job: no stored baseline is the common case, not an error.
        # The same-runner A/B gate (`edgeopt gate`) needs none; latency is comparable only on the same kind of CPU.
        recorded = sorted(p.name for p in root.iterdir() if any(p.glob("*/*.json"))) if root.is_dir() else []
        message = (f"--benchmark-compare: no latency baseline for this CPU kind in {directory} (baselines exist for: "
                   f"{', '.join(recorded) or 'none'}); latency is not compared in this run. Gate on this machine with "
                   f"`edgeopt gate --base REF`, or record a baseline with `make baseline` and commit it.")
        if relative:
            from edgeopt.suite import relative as rel

            stored = config.stash[rel.STORED] = rel.load(root, directory.name, config.option.benchmark_compare_fail)
            if stored is not None:
                message = (f"no latency baseline for this CPU kind in {directory}: each latency case is compared as a "
                           f"ratio to its model's {'-'.join(rel.REFERENCE)} case with {stored.kind}/{stored.path.name} "
                           f"(fails past +{stored.threshold:.0%}; kernels differ between CPU kinds, a coarse check)")
        config.option.benchmark_compare = None
        config.option.benchmark_compare_fail = None
        config.stash[_NOTES].append(message)
        config.issue_config_time_warning(pytest.PytestWarning(message), stacklevel=2)


def _check_stored_runs(directory: Path) -> None:
    """A damaged baseline is an error naming it: pytest-benchmark would skip it and compare an older run, or none."""
    for path in sorted(directory.glob("*/*.json")):
        try:
            data = json.loads(path.read_text())
            if not isinstance(data.get("benchmarks"), list):
                raise ValueError("no 'benchmarks' list")
        except (OSError, ValueError, AttributeError) as exc:
            raise pytest.UsageError(f"latency baseline {path} is damaged ({str(exc)[:100]}); restore it "
                                    f"(git checkout -- {path.name}) or remove it in a reviewed change") from None


def runtime_versions() -> dict[str, str]:
    out = {}
    for dist in ("torch", "torchvision", "onnx", "onnxruntime", "opencv-python-headless", "numpy", "onnxscript",
                 "torchao", "torch-pruning"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info: dict) -> None:
    machine_info["cpu_model"] = cpu_info()[0]
    machine_info["cpu_kind"] = cpu_kind()
    machine_info["isa_flags"] = notable_flags()
    machine_info["runtimes"] = runtime_versions()
    machine_info["edgeopt_threads"] = config.getoption("edgeopt_threads")


# -- non-latency baselines (edgeopt.metric_baselines) ----------------------------------------------------------------
def _load_metric_baselines(config: pytest.Config) -> None:
    root = config.getoption("edgeopt_metric_baselines")
    config.stash[_METRICS] = None
    if not root:
        return
    root = Path(root) if Path(root).is_absolute() else Path(config.rootpath) / root
    try:
        config.stash[_METRICS] = MetricBaselines(root, baseline_kind(config.getoption("edgeopt_threads")))
    except MetricBaselineError as exc:
        raise pytest.UsageError(str(exc)) from None


def metric_drift(config: pytest.Config, case_id: str, measured: dict) -> list[str]:
    """Figures of ``measured`` that drifted past their tolerance from the stored baseline ([] when updating)."""
    baselines = config.stash.get(_METRICS, None)
    if baselines is None or config.getoption("edgeopt_update_baselines"):
        return []
    return baselines.check(case_id, measured)


class _Recorder:
    """Collects the figures of passing cases (only they become baselines); under xdist it lives in the
    controller, which receives every worker's reports with their recorded properties."""

    def __init__(self, baselines: MetricBaselines):
        self.baselines = baselines

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and report.passed and "[" in report.nodeid:
            self.baselines.record(report.nodeid.rsplit("[", 1)[1].rstrip("]"), dict(report.user_properties))


def pytest_sessionstart(session: pytest.Session) -> None:
    baselines = session.config.stash.get(_METRICS, None)
    if baselines is not None and not hasattr(session.config, "workerinput"):
        session.config.pluginmanager.register(_Recorder(baselines), "edgeopt-metric-recorder")


def _atomic_save(storage, output_json: dict, save: str) -> None:
    """pytest-benchmark's FileStorage.save, but written atomically: a run killed mid-write leaves at most a hidden
    temporary file (never matched by its ``NNNN_*`` glob), not a half baseline."""
    from pytest_benchmark.utils import safe_dumps

    target = storage.get(f"{storage._next_num}_{save}.json")
    write_atomically(target, safe_dumps(output_json, ensure_ascii=True, indent=4), fsync=True)
    storage.logger.info(f"Saved benchmark data in: {target}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int):
    """Nothing saved by a failing or interrupted run: pytest-benchmark saves in its own sessionfinish wrapper,
    which this one encloses, so turning its save off here keeps every stored latency baseline as it was."""
    config = session.config
    failed = exitstatus != 0 or session.testsfailed
    bs = getattr(config, "_benchmarksession", None)
    if failed and bs is not None and (bs.save or bs.autosave):
        bs.save = bs.autosave = None
        config.stash[_NOTES].append("latency baseline NOT saved: the run did not pass")
    elif bs is not None and (bs.save or bs.autosave) and hasattr(bs.storage, "_next_num"):
        bs.storage.save = functools.partial(_atomic_save, bs.storage)
    baselines = config.stash.get(_METRICS, None)
    if config.getoption("edgeopt_update_baselines") and baselines is not None and not hasattr(config, "workerinput"):
        if failed:
            config.stash[_NOTES].append("metric baselines NOT updated: the run did not pass")
        else:
            changes = baselines.changes()
            written = baselines.save()
            config.stash[_NOTES].extend([f"metric baselines updated ({', '.join(map(str, written)) or 'no change'}):",
                                         *(f"  {line}" for line in changes)])
    yield


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    notes = config.stash.get(_NOTES, [])
    baselines = config.stash.get(_METRICS, None)
    if baselines is not None and not baselines.has_kind and not config.getoption("edgeopt_update_baselines"):
        notes = [*notes, f"metric baselines: none for this CPU kind ({baselines.kind}) in {baselines.directory}; "
                 "only size and MACs were checked against portable.json"]
    if notes:
        terminalreporter.section("edgeopt baselines")
        for line in notes:
            terminalreporter.write_line(line)
