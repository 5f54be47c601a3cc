"""A suite case (model x variant x backend) and :class:`Bench`, the measurements and budget a concern test uses."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest

from edgeopt.backends import RunnerError, RunnerUnavailable, RunnerUnsupported, backends_for
from edgeopt.budgets import CONCERN_METRICS, Budget
from edgeopt.cache import CacheError
from edgeopt.data import DataError, InvalidData
from edgeopt.memory import MemoryProbeError
from edgeopt.models import WeightsError, list_models, matches
from edgeopt.recipes import VARIANTS
from edgeopt.recipes.base import RecipeError
from edgeopt.workbench import REFERENCE, Workbench


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


def xdist_group(case: Case) -> str:
    """The pytest-xdist worker group of a case under ``-n N --dist loadgroup``: its model and the variant its
    artifact is built from when that one trains (a fine-tune and everything stacked on it on one worker,
    which builds it while the other goes on), else its own variant.  Workers share the rest (artifacts,
    reference outputs) through the on-disk cache, where the first to need an entry builds it."""
    lineage = VARIANTS[case.variant].lineage()
    trained = [r.name for r in lineage if r.trains]
    return f"{case.model}-{trained[-1] if trained else case.variant}"


@contextlib.contextmanager
def reported_errors():
    """Missing data or a backend the installed runtime lacks -> skip with the reason; an operator the runtime
    reports as not implemented -> xfail with the runtime's message (a capability gap of that runtime version);
    any other runtime or recipe failure -> one readable failure line."""
    try:
        yield
    except (InvalidData, WeightsError, CacheError) as exc:
        pytest.fail(str(exc), pytrace=False)
    except (DataError, RunnerUnavailable) as exc:
        pytest.skip(str(exc))
    except RunnerUnsupported as exc:
        pytest.xfail(str(exc))
    except (RunnerError, RecipeError, MemoryProbeError) as exc:
        pytest.fail(str(exc), pytrace=False)


class Bench:
    """One case's measurements and budget, as the concern tests use them."""

    def __init__(self, case: Case, workbench: Workbench, budget: Budget, drift, properties: list, budget_of=None):
        self.case, self.wb, self.budget, self._drift, self._properties = case, workbench, budget, drift, properties
        self._budget_of = budget_of  # concern -> this case's Budget for that concern (the report's verdicts)

    def require_trained_weights(self) -> None:
        with reported_errors():
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
        with reported_errors():
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
        of this run measured (they run before the latency tests; see the plugin's collection order)."""
        m, v, b = self.case.model, self.case.variant, self.case.backend
        with reported_errors():
            # the budget travels with the figures, so a report from any machine can judge them (edgeopt report)
            xfails = {c: r for c in CONCERN_METRICS if self._budget_of and (r := self._budget_of(c).xfail)}
            return {**self.wb.size(m, v), **self.wb.measured(m, v, b), "budget": dict(self.budget.limits),
                    "budget_xfail": self.budget.xfail, "budget_xfails": xfails}

    def assert_within_budget(self, measurement: dict) -> None:
        """Records every figure (the test's user properties: JUnit XML, the metric baselines), then checks the
        budgets (the hard floor) and drift from the stored metric baselines (within the floor)."""
        self._properties.extend(measurement.items())
        violations = self.budget.check(measurement)
        assert not violations, f"{self.case.id} over budget:\n  " + "\n  ".join(violations)
        drift = self._drift(self.case.id, measurement)
        assert not drift, f"{self.case.id} worse than its metric baseline:\n  " + "\n  ".join(drift)
