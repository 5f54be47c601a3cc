"""Non-latency baselines: the figures each case measured last time it was accepted, to catch drift within budgets.

Budgets are the hard floor; a pull request that moves a variant's top-1 drop from 0.1 to 0.9 pt stays inside a
1.0 pt budget and passes them.  These baselines hold, per case id, the figures of the last accepted run and fail a
case whose figure got worse by more than its tolerance.  Figures of integer kernels depend on the CPU, so
accuracy and agreement live in ``<dir>/<cpu kind>-<threads>t.json``; size and MACs do not and live in
``<dir>/portable.json``, checked on every CPU.  The files change only under ``--edgeopt-update-baselines`` and only
at the end of a run that passed as a whole: written to a temporary file and renamed, so a failing or interrupted
run leaves every file byte-identical.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from edgeopt.atomic import write_atomically

PORTABLE = "portable"
_INF = ("inf", "-inf")


@dataclass(frozen=True)
class Tolerance:
    """How much worse a figure may get: ``absolute`` in its own unit, or ``relative`` as a fraction of the old
    value; ``higher_is_better`` gives the direction.  Better figures never fail (they print under an update)."""
    higher_is_better: bool
    absolute: float = 0.0
    relative: float = 0.0
    portable: bool = False

    def allowed(self, old: float) -> float:
        return self.absolute + (self.relative * abs(old) if self.relative else 0.0)  # 0 * inf would be nan

    def worse_by(self, old: float, new: float) -> float:
        if old == new:  # also inf == inf (a lossless variant's SQNR)
            return 0.0
        return (old - new) if self.higher_is_better else (new - old)


#: Per-metric tolerances: a fraction of a point of top-1 is noise between runtime patch releases on 5,000 images
#: (1 image = 0.02 pt); a file growing by 1% or one more MAC is a change of the graph.
TOLERANCES = {
    "top1": Tolerance(higher_is_better=True, absolute=0.002),
    "top1_drop": Tolerance(higher_is_better=False, absolute=0.2),
    "top1_agreement": Tolerance(higher_is_better=True, absolute=0.002),
    "sqnr_db": Tolerance(higher_is_better=True, absolute=0.5),
    "size_bytes": Tolerance(higher_is_better=False, relative=0.01, portable=True),
    "macs": Tolerance(higher_is_better=False, portable=True),
    "bitops_ratio": Tolerance(higher_is_better=False, portable=True),  # bit plans are exact: any growth is a change
    "weight_memory_ratio": Tolerance(higher_is_better=False, portable=True),
}


class MetricBaselineError(ValueError):
    """A baseline file that cannot be read as edgeopt wrote it."""


def _load(path: Path) -> dict[str, dict[str, float]]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MetricBaselineError(f"{path}: not a metric baseline written by edgeopt ({exc})") from None
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, dict) or not all(isinstance(v, dict) for v in cases.values()):
        raise MetricBaselineError(f"{path}: expected {{\"cases\": {{case id: {{metric: value}}}}}}")
    return {case: {k: float(v) if v in _INF else v for k, v in figures.items()} for case, figures in cases.items()}


def _write_atomically(path: Path, cases: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Strict JSON: a lossless variant's infinite SQNR is written as the string "inf".
    plain = {case: {k: str(v) if isinstance(v, float) and math.isinf(v) else v for k, v in figures.items()}
             for case, figures in cases.items()}
    write_atomically(path, json.dumps({"cases": plain}, indent=1, sort_keys=True, allow_nan=False) + "\n")


def _fmt(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.6g}"


class MetricBaselines:
    """The stored figures of one CPU kind (plus the portable ones) and the figures this run measured."""

    def __init__(self, directory: Path, kind: str):
        self.directory, self.kind = Path(directory), kind
        self.paths = {False: self.directory / f"{kind}.json", True: self.directory / f"{PORTABLE}.json"}
        self.stored = {portable: _load(path) for portable, path in self.paths.items()}
        self.measured: dict[str, dict[str, float]] = {}

    @property
    def has_kind(self) -> bool:
        return bool(self.stored[False])

    def old(self, case_id: str, metric: str) -> float | None:
        return self.stored[TOLERANCES[metric].portable].get(case_id, {}).get(metric)

    def check(self, case_id: str, measured: dict) -> list[str]:
        """One line per figure of ``measured`` that got worse than its stored value by more than its tolerance."""
        lines = []
        for metric, tol in TOLERANCES.items():
            new, old = measured.get(metric), self.old(case_id, metric)
            if new is None or old is None or (isinstance(new, float) and math.isnan(new)):
                continue
            if tol.worse_by(old, new) > tol.allowed(old):
                lines.append(f"{metric} drifted {old:.6g} -> {new:.6g} (tolerance {tol.allowed(old):.4g} worse; "
                             "a reviewed change: --edgeopt-update-baselines)")
        return lines

    def record(self, case_id: str, properties: dict) -> None:
        figures = {k: v for k, v in properties.items() if k in TOLERANCES and isinstance(v, (int, float))
                   and not (isinstance(v, float) and math.isnan(v))}
        if figures:
            self.measured.setdefault(case_id, {}).update(figures)

    def changes(self) -> list[str]:
        """``case metric old -> new`` for every figure this run measured that differs from the stored one."""
        lines = []
        for case_id, figures in sorted(self.measured.items()):
            for metric, new in sorted(figures.items()):
                old = self.old(case_id, metric)
                if old != new:
                    lines.append(f"{case_id} {metric}: {'(new)' if old is None else _fmt(old)} -> {_fmt(new)}")
        return lines

    def save(self) -> list[Path]:
        """Merge this run's figures into the stored ones (cases not run keep theirs) and write each changed file."""
        written = []
        for portable, path in self.paths.items():
            merged = {case: dict(figures) for case, figures in self.stored[portable].items()}
            for case_id, figures in self.measured.items():
                mine = {k: v for k, v in figures.items() if TOLERANCES[k].portable == portable}
                if mine:
                    merged.setdefault(case_id, {}).update(mine)
            if merged != self.stored[portable]:
                _write_atomically(path, merged)
                self.stored[portable] = merged
                written.append(path)
        return written
