"""The benchmark suite's collection and fixtures.

Cases are model x variant x backend triples built from the registries (ids ``{model}-{variant}-{backend}``,
stable, so pytest-benchmark can match baselines).  A combination the budgets file marks as a known
failure is collected as a strict xfail carrying its reason, so the capability matrix stays visible
and a fix shows up as XPASS.  All expensive work lives in one session-wide
:class:`~edgeopt.workbench.Workbench` and in the on-disk artifact cache.
"""
from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgeopt.backends import RunnerError, RunnerUnavailable, RunnerUnsupported, backends_for
from edgeopt.budgets import BudgetError, Budgets
from edgeopt.data import DataError
from edgeopt.memory import MemoryProbeError
from edgeopt.models import get_model, list_models, matches
from edgeopt.pytest_plugin import metric_drift
from edgeopt.recipes import VARIANTS
from edgeopt.recipes.base import RecipeError
from edgeopt.workbench import REFERENCE, Workbench

BUDGETS_FILE = Path(__file__).with_name("budgets.toml")


@dataclass(frozen=True)
class Case:
    model: str
    variant: str
    backend: str | None = None

    @property
    def id(self) -> str:
        return "-".join(p for p in (self.model, self.variant, self.backend) if p)

    @property
    def is_reference(self) -> bool:
        return (self.variant, self.backend) == REFERENCE


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "per_variant: parametrize over model x variant only (backend-independent)")
    config.addinivalue_line("markers", "skip_reference: do not collect the FP32 PyTorch reference case")
    config.addinivalue_line("markers", "xdist_group(name): run on one pytest-xdist worker under --dist loadgroup")
    path = config.getoption("edgeopt_budgets") or BUDGETS_FILE
    try:
        config.edgeopt_budgets = Budgets.load(path)
    except BudgetError as exc:
        raise pytest.UsageError(str(exc)) from None


def all_cases(config: pytest.Config, per_backend: bool) -> list[Case]:
    cases = []
    for model in list_models(config.getoption("edgeopt_models")):
        for variant, recipe in VARIANTS.items():
            if not matches(variant, config.getoption("edgeopt_variants")):
                continue
            if not per_backend:
                cases.append(Case(model, variant))
                continue
            for backend in backends_for(recipe.format):
                if matches(backend, config.getoption("edgeopt_backends")):
                    cases.append(Case(model, variant, backend))
    return cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" not in metafunc.fixturenames:
        return
    config = metafunc.config
    per_backend = metafunc.definition.get_closest_marker("per_variant") is None
    skip_reference = metafunc.definition.get_closest_marker("skip_reference") is not None
    concern = metafunc.definition.originalname.removeprefix("test_")
    params = []
    for case in all_cases(config, per_backend):
        if skip_reference and case.is_reference:
            continue
        budget = config.edgeopt_budgets.for_(case.model, case.variant, case.backend, concern)
        marks = [pytest.mark.xdist_group(xdist_group(case))]
        if reason := VARIANTS[case.variant].unsupported_reason(get_model(case.model)) or budget.skip:
            marks.append(pytest.mark.skip(reason=reason))
        if budget.xfail:
            marks.append(pytest.mark.xfail(reason=budget.xfail, strict=True))
        params.append(pytest.param(case, id=case.id, marks=marks))
    metafunc.parametrize("case", params)


def xdist_group(case) -> str:
    """The pytest-xdist worker group of a case under ``-n N --dist loadgroup``: its model and the variant its
    artifact is built from when that one trains (a fine-tune and everything stacked on it on one worker,
    which builds it while the other goes on), else its own variant.  Workers share the rest (artifacts,
    reference outputs) through the on-disk cache, where the first to need an entry builds it."""
    lineage = VARIANTS[case.variant].lineage()
    trained = [r.name for r in lineage if r.trains]
    return f"{case.model}-{trained[-1] if trained else case.variant}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Latency last: its extra_info then carries the accuracy, agreement and memory figures of the run."""
    items.sort(key=lambda item: item.path.name == "test_latency.py")


@pytest.fixture(scope="session")
def workbench(pytestconfig: pytest.Config) -> Workbench:
    return Workbench(data_dir=pytestconfig.getoption("edgeopt_data"),
                     threads=pytestconfig.getoption("edgeopt_threads"),
                     limit=pytestconfig.getoption("edgeopt_limit"),
                     reuse_outputs=not pytestconfig.getoption("edgeopt_remeasure"))


@contextlib.contextmanager
def reported_errors():
    """Missing data or a backend the installed runtime lacks -> skip with the reason; an operator the runtime reports as not implemented -> xfail
    with the runtime's message (a capability gap of that runtime version); any other runtime or recipe
    failure -> one readable failure line."""
    try:
        yield
    except (DataError, RunnerUnavailable) as exc:
        pytest.skip(str(exc))
    except RunnerUnsupported as exc:
        pytest.xfail(str(exc))
    except (RunnerError, RecipeError, MemoryProbeError) as exc:
        pytest.fail(str(exc), pytrace=False)


class Bench:
    """One case's measurements and budget, as the test files use them."""

    def __init__(self, case: Case, workbench: Workbench, budgets: Budgets, concern: str, config: pytest.Config):
        self.case, self.wb, self.config = case, workbench, config
        self.budget = budgets.for_(case.model, case.variant, case.backend, concern)

    def require_trained_weights(self) -> None:
        weights = self.wb.weights(self.case.model)
        if not weights.pretrained:
            pytest.skip(f"{self.case.model}: accuracy needs trained weights: {weights.missing_reason}")

    def accuracy(self) -> dict:
        self.require_trained_weights()
        with reported_errors():
            return self.wb.accuracy(self.case.model, self.case.variant, self.case.backend)

    def agreement(self) -> dict:
        """Agreement figures.  An approximate variant of a model without its trained weights is skipped before
        anything is evaluated: how a quantizer treats random weights says nothing, and evaluating them only to
        show ungated figures cost CI 18 CPU-minutes for MobileNetV2 (ImageNet) alone (measured at 3ea24e8)."""
        weights = self.wb.weights(self.case.model)
        if not weights.pretrained and not VARIANTS[self.case.variant].lossless:
            pytest.skip(f"{self.case.id}: approximate variant on random weights ({weights.missing_reason}): "
                        "agreement not gated, so not measured (`edgeopt measure` measures it on request)")
        with reported_errors():
            return self.wb.agreement(self.case.model, self.case.variant, self.case.backend)

    def size(self) -> dict:
        with reported_errors():
            return self.wb.size(self.case.model, self.case.variant)

    def memory(self) -> dict:
        with reported_errors():
            return self.wb.memory(self.case.model, self.case.variant, self.case.backend)

    def sample_input(self):
        with reported_errors():
            return self.wb.sample_input(self.case.model)

    @contextlib.contextmanager
    def runner(self):
        from edgeopt.backends import runner_class

        with reported_errors():
            artifact = self.wb.artifact(self.case.model, self.case.variant)
            with runner_class(self.case.backend)(artifact, threads=self.wb.threads) as runner:
                yield runner

    def summary(self) -> dict:
        """This case's figures for benchmark.extra_info: size and MACs, plus every figure the other tests
        of this run measured (they run before the latency tests; see pytest_collection_modifyitems)."""
        m, v, b = self.case.model, self.case.variant, self.case.backend
        with reported_errors():
            return {**self.wb.size(m, v), **self.wb.measured(m, v, b)}

    def assert_within_budget(self, measurement: dict) -> None:
        """The budgets (the hard floor), then drift from the stored metric baselines (within the floor)."""
        violations = self.budget.check(measurement)
        assert not violations, f"{self.case.id} over budget:\n  " + "\n  ".join(violations)
        drift = metric_drift(self.config, self.case.id, measurement)
        assert not drift, f"{self.case.id} worse than its metric baseline:\n  " + "\n  ".join(drift)


@pytest.fixture
def bench(request: pytest.FixtureRequest, case: Case, workbench: Workbench) -> Bench:
    concern = request.node.originalname.removeprefix("test_")
    return Bench(case, workbench, request.config.edgeopt_budgets, concern, request.config)


# -- latency: a model's cases timed together (edgeopt.latency) ---------------------------------------------------
_LATENCY = pytest.StashKey[dict]()
_PANELS = pytest.StashKey[dict]()


def _latency_cases(session: pytest.Session, model: str) -> list[Case]:
    """The latency cases of ``model`` this session runs (selected and not skipped), in collection order."""
    return [item.callspec.params["case"] for item in session.items
            if getattr(item, "originalname", "") == "test_latency" and item.callspec.params["case"].model == model
            and item.get_closest_marker("skip") is None]


@pytest.fixture(scope="session")
def latency_panel(request: pytest.FixtureRequest, workbench: Workbench):
    """case -> :class:`edgeopt.latency.CaseLatency`: the first latency case of a model times all of that model's
    cases together in interleaved rounds (runners opened side by side); the others read their figures."""
    import random
    from edgeopt.backends import runner_class
    from edgeopt.latency import CaseLatency, PanelTiming, time_panel

    config = request.config
    panels = config.stash.setdefault(_PANELS, {})
    timing = PanelTiming(seconds_per_case=float(config.getoption("benchmark_max_time")),
                         warmup_calls=int(config.getoption("benchmark_warmup_iterations")),
                         min_rounds=int(config.getoption("benchmark_min_rounds")))

    def measure(case: Case):
        if case not in panels:
            cases = _latency_cases(request.session, case.model) or [case]
            with contextlib.ExitStack() as stack:
                calls, errors = {}, {}
                for c in cases:
                    try:
                        x = workbench.sample_input(c.model)
                        artifact = workbench.artifact(c.model, c.variant)
                        runner = stack.enter_context(runner_class(c.backend)(artifact, threads=workbench.threads))
                        calls[c] = (lambda r=runner, x=x: r.run(x))
                    except Exception as exc:  # raised again by that case's own test
                        errors[c] = exc
                timed = time_panel(calls, timing, random.Random(case.model))
            panels.update(timed)
            panels.update({c: CaseLatency(error=exc) for c, exc in errors.items()})
        result = panels.pop(case)
        if result.error is not None:
            with reported_errors():
                raise result.error
        return result
    return measure


@pytest.fixture(scope="session")
def latency_medians(pytestconfig: pytest.Config) -> dict:
    """Case -> median seconds, filled by test_latency, printed at the end of the run."""
    return pytestconfig.stash.setdefault(_LATENCY, {})


def _fp32_on(backend: str) -> str:
    return {"torch": "fp32", "torchscript": "torchscript"}.get(backend, "onnx_fp32")


def _latency_table(terminalreporter, medians: dict) -> None:
    by_key = {(c.model, c.variant, c.backend): t for c, t in medians.items()}
    tr = terminalreporter
    tr.section("edgeopt latency (batch 1, median) vs ONNX Runtime FP32 and PyTorch eager FP32")
    tr.write_line(f"{'case':<52}{'median ms':>11}{'vs ort fp32':>13}{'vs eager':>10}  flag")
    for (model, variant, backend), t in sorted(by_key.items()):
        ort, eager = by_key.get((model, "onnx_fp32", "onnxruntime")), by_key.get((model, "fp32", "torch"))
        same = by_key.get((model, _fp32_on(backend), backend))
        flag = "SLOWER than FP32 on this runtime" if same is not None and t > same * 1.05 else ""
        tr.write_line(f"{model + '-' + variant + '-' + backend:<52}{t * 1e3:>11.3f}"
                      f"{(f'{ort / t:.2f}x' if ort else '-'):>13}{(f'{eager / t:.2f}x' if eager else '-'):>10}  {flag}")


# -- capability matrix -------------------------------------------------------------------------
_OUTCOMES: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "test_accuracy.py::" not in report.nodeid or "[" not in report.nodeid:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        case_id = report.nodeid.rsplit("[", 1)[1].rstrip("]")
        model_variant, _, backend = case_id.rpartition("-")
        status = "xfail" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        status = {"passed": "ok", "failed": "FAIL", "skipped": "skip"}.get(status, status)
        _OUTCOMES[(model_variant, backend)] = {"status": status}


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if config.stash.get(_LATENCY, None):
        _latency_table(terminalreporter, config.stash[_LATENCY])
    if not _OUTCOMES:
        return
    rows = sorted({mv for mv, _ in _OUTCOMES})
    cols = sorted({b for _, b in _OUTCOMES})
    width = max(len(r) for r in rows) + 2
    cell = max(len(c) for c in cols) + 2  # backend names never run together
    tr = terminalreporter
    tr.section("edgeopt capability matrix (accuracy test outcome per model-variant x backend)")
    tr.write_line(" " * width + "".join(f"{c:>{cell}}" for c in cols))
    for r in rows:
        cells = "".join(f"{_OUTCOMES.get((r, c), {}).get('status', '-'):>{cell}}" for c in cols)
        tr.write_line(f"{r:<{width}}{cells}")
