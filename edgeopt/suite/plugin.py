"""The suite's pytest plugin (entry point ``pytest11``): collection, the case fixtures, latency panels, reports.

Cases are model x variant x backend triples built from the registries (ids ``{model}-{variant}-{backend}``,
stable, so pytest-benchmark and the metric baselines can match them).  A test takes part by naming its concern
with ``@pytest.mark.concern("accuracy")`` (the key budget entries scope to with ``tests = [...]``), which
parametrizes its ``case`` fixture (and ``bench``, the measurements and budget of that case).  A combination the budgets file marks as a known failure is collected
as a strict xfail carrying its reason, so the capability matrix stays visible and a fix shows up as XPASS.  All
expensive work lives in one session-wide :class:`~edgeopt.workbench.Workbench` and the on-disk artifact cache.
The budgets file is ``--edgeopt-budgets`` or ``budgets`` of ``[tool.edgeopt]`` in the root pyproject.toml.
"""
from __future__ import annotations

import contextlib
import fnmatch
import random
from pathlib import Path

import pytest

from edgeopt.budgets import BudgetError, Budgets
from edgeopt.models import get_model
from edgeopt.pytest_plugin import metric_drift, tool_config
from edgeopt.recipes import VARIANTS
from edgeopt.suite import gate
from edgeopt.suite.case import Bench, Case, all_cases, reported_errors, xdist_group
from edgeopt.suite.reports import CapabilityMatrix, fastest_within_budget, latency_table, measured_nothing
from edgeopt.workbench import Workbench

_BUDGETS = pytest.StashKey["Budgets | None"]()
_MATRIX = pytest.StashKey[CapabilityMatrix]()
_LATENCY = pytest.StashKey[dict]()
_PANELS = pytest.StashKey[dict]()
_CHECKED = pytest.StashKey[bool]()
_PANEL_MEDIANS = pytest.StashKey[dict]()
_SCALES = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    gate.addoptions(parser.getgroup("edgeopt"))


def pytest_configure(config: pytest.Config) -> None:
    gate.check_options(config)
    config.addinivalue_line("markers", "concern(name): the budget concern a case test checks (accuracy, size, ...)")
    config.addinivalue_line("markers", "per_variant: parametrize over model x variant only (backend-independent)")
    config.addinivalue_line("markers", "skip_reference: do not collect the FP32 PyTorch reference case")
    config.addinivalue_line("markers", "xdist_group(name): run on one pytest-xdist worker under --dist loadgroup")
    path = config.getoption("edgeopt_budgets")
    if not path and (configured := tool_config(config).get("budgets")):
        path = tool_config(config)["_dir"] / configured
    try:  # validated at start-up: a typo in the file stops the run before anything is built
        config.stash[_BUDGETS] = Budgets.load(path) if path else None
    except BudgetError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not hasattr(config, "workerinput"):
        config.stash[_MATRIX] = CapabilityMatrix()
        config.pluginmanager.register(config.stash[_MATRIX], "edgeopt-capability-matrix")


def _concern(node) -> str | None:
    marker = node.get_closest_marker("concern")
    return marker.args[0] if marker else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("concern") is None:
        return  # not a suite test (a project's own fixture named ``case`` is left alone)
    config = metafunc.config
    budgets = config.stash[_BUDGETS]
    if budgets is None:
        pytest.fail("edgeopt: no budgets file; pass --edgeopt-budgets FILE or set budgets = \"FILE\" in "
                    "[tool.edgeopt] of pyproject.toml", pytrace=False)
    _check_names_once(config, budgets)
    per_backend = metafunc.definition.get_closest_marker("per_variant") is None
    skip_reference = metafunc.definition.get_closest_marker("skip_reference") is not None
    concern = _concern(metafunc.definition)
    params = []
    for case in all_cases(config, per_backend):
        if skip_reference and case.is_reference:
            continue
        budget = budgets.for_(case.model, case.variant, case.backend, concern)
        marks = [pytest.mark.xdist_group(xdist_group(case))]
        if reason := _why_not_run(case, budget):
            marks.append(pytest.mark.skip(reason=reason))
        if budget.xfail:
            marks.append(pytest.mark.xfail(reason=budget.xfail, strict=True))
        params.append(pytest.param(case, id=case.id, marks=marks))
    metafunc.parametrize("case", params)


def skip_reason(config: pytest.Config, case, concern: str | None) -> str | None:
    """Why ``case`` is not run for ``concern``: its recipe cannot build the model, or a budgets skip."""
    return _why_not_run(case, config.stash[_BUDGETS].for_(case.model, case.variant, case.backend, concern))


def _why_not_run(case, budget) -> str | None:
    return VARIANTS[case.variant].unsupported_reason(get_model(case.model)) or budget.skip


def _check_names_once(config: pytest.Config, budgets: Budgets) -> None:
    """At the first suite test collected (every conftest has registered its models by then): a selector or a
    budgets entry that names nothing is an error listing what exists, never an empty, green run."""
    if config.stash.get(_CHECKED, False):
        return
    from edgeopt.backends import BACKENDS
    from edgeopt.models import list_models

    names = {"models": list_models("*"), "variants": list(VARIANTS), "backends": list(BACKENDS)}
    for kind, existing in names.items():
        for pattern in filter(None, (p.strip() for p in config.getoption(f"edgeopt_{kind}").split(","))):
            if not any(fnmatch.fnmatchcase(n, pattern) for n in existing):
                pytest.fail(f"edgeopt: --edgeopt-{kind} {pattern!r} matches nothing; {kind}: {', '.join(existing)}",
                            pytrace=False)
    try:
        budgets.check_names(*names.values())
    except BudgetError as exc:
        pytest.fail(f"edgeopt: {exc}", pytrace=False)
    config.stash[_CHECKED] = True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Latency last: its extra_info then carries the accuracy, agreement and memory figures of the run."""
    items.sort(key=lambda item: _concern(item) == "latency")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """Each report names its case and concern (plain attributes: pytest-xdist carries them to the controller)."""
    report = yield
    case = getattr(item, "callspec", None) and item.callspec.params.get("case")
    if isinstance(case, Case):
        report.edgeopt_concern = _concern(item)
        report.edgeopt_model_variant, report.edgeopt_backend = f"{case.model}-{case.variant}", case.backend
    return report


@pytest.fixture(scope="session")
def workbench(pytestconfig: pytest.Config) -> Workbench:
    return Workbench(data_dir=pytestconfig.getoption("edgeopt_data"),
                     threads=pytestconfig.getoption("edgeopt_threads"),
                     limit=pytestconfig.getoption("edgeopt_limit"),
                     reuse_outputs=not pytestconfig.getoption("edgeopt_remeasure"))


@pytest.fixture
def bench(request: pytest.FixtureRequest, case: Case, workbench: Workbench) -> Bench:
    config = request.config
    def budget_of(concern: str | None):
        return config.stash[_BUDGETS].for_(case.model, case.variant, case.backend, concern)

    return Bench(case, workbench, budget_of(_concern(request.node)),
                 lambda case_id, measured: metric_drift(config, case_id, measured), request.node.user_properties,
                 budget_of)


def _latency_cases(session: pytest.Session, model: str | None = None) -> list[Case]:
    """The latency cases (of ``model``) this session runs (selected and not skipped), in collection order."""
    return [item.callspec.params["case"] for item in session.items
            if _concern(item) == "latency" and item.callspec.params["case"].model == (model or
                                                                                     item.callspec.params["case"].model)
            and item.get_closest_marker("skip") is None]


@pytest.fixture(scope="session")
def latency_panel(request: pytest.FixtureRequest, workbench: Workbench):
    """case -> :class:`edgeopt.latency.CaseLatency`: the first latency case of a model's backend times that
    backend's cases of the model together in interleaved rounds (runners opened side by side), with the model's
    ONNX Runtime FP32 case as the anchor that puts its panels on one scale; the others read their figures.
    ``--edgeopt-latency-panel model`` times all of a model's cases in one panel instead."""
    from edgeopt.backends import runner_class
    from edgeopt.latency import PanelTiming, on_scale, time_reloaded
    from edgeopt.suite.relative import REFERENCE

    config = request.config
    panels = config.stash.setdefault(_PANELS, {})
    timing = PanelTiming(seconds_per_case=float(config.getoption("benchmark_max_time")),
                         warmup_calls=int(config.getoption("benchmark_warmup_iterations")),
                         min_rounds=int(config.getoption("benchmark_min_rounds")))

    def open_case(c: Case):
        @contextlib.contextmanager
        def opened():
            x = workbench.sample_input(c.model)
            with runner_class(c.backend)(workbench.artifact(c.model, c.variant), threads=workbench.threads) as runner:
                yield lambda: runner.run(x)
        return opened()

    scales = config.stash.setdefault(_SCALES, {})  # model -> its anchor's figure in the model's first panel

    def measure(case: Case):
        if case not in panels:
            cases = _latency_cases(request.session, case.model) or [case]
            anchor = next((c for c in cases if (c.variant, c.backend) == REFERENCE), None)
            per_backend = config.getoption("edgeopt_latency_panel") == "backend"
            if per_backend:  # one backend's cases, and the anchor that puts every panel on one scale
                mine = [c for c in cases if c.backend == case.backend]
                cases = mine + ([anchor] if anchor and anchor not in mine else [])
            timed = time_reloaded(open_case, cases, timing, random.Random(f"{case.model}-{case.backend}"),
                                  loads=config.getoption("edgeopt_latency_loads"))
            timed, scales[case.model] = on_scale(timed, anchor, scales.get(case.model))
            panels.update({c: t for c, t in timed.items() if not per_backend or c.backend == case.backend})
            config.stash.setdefault(_PANEL_MEDIANS, {}).update({c: t.median_s for c, t in timed.items()})
        result = panels.pop(case)
        if result.error is not None:
            with reported_errors():
                raise result.error
        return result
    return measure


@pytest.fixture(scope="session")
def latency_gate(request: pytest.FixtureRequest):
    """case -> its A/B verdict against ``--edgeopt-gate-base`` (all latency cases gated in one run), or None."""
    if not gate.gate_mode(request.config):
        return lambda case: None
    session = request.session
    return lambda case: gate.verdict_for(session, _latency_cases(session), case)


@pytest.fixture(scope="session")
def latency_relative(pytestconfig: pytest.Config):
    """case, median -> a message when it grew relative to its model's reference case against another CPU kind's
    stored run (``--edgeopt-compare-relative`` on a kind without a baseline), else None."""
    from edgeopt.suite.relative import REFERENCE, STORED

    stored = pytestconfig.stash.get(STORED, None)
    if stored is None:
        return lambda case, median_s: None
    medians = pytestconfig.stash.setdefault(_PANEL_MEDIANS, {})
    return lambda case, median_s: stored.check(case.id, case.model, median_s, next(
        (t for c, t in medians.items() if (c.model, c.variant, c.backend) == (case.model, *REFERENCE)), None))


@pytest.fixture(scope="session")
def latency_medians(pytestconfig: pytest.Config) -> dict:
    """Case -> (median seconds, budget verdict), filled by test_latency, printed at the end of the run."""
    return pytestconfig.stash.setdefault(_LATENCY, {})


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _MATRIX in session.config.stash and exitstatus == 0 and measured_nothing(session.config.stash[_MATRIX]):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _MATRIX in config.stash and (why := measured_nothing(config.stash[_MATRIX])):
        terminalreporter.section("edgeopt: nothing measured", red=True)
        terminalreporter.write_line(why)
    if config.stash.get(_LATENCY, None):
        latency_table(terminalreporter, config.stash[_LATENCY])
        fastest_within_budget(terminalreporter, config.stash[_LATENCY])
    if _MATRIX in config.stash:
        config.stash[_MATRIX].write(terminalreporter)
