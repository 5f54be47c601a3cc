"""``edgeopt models`` lists the registry; ``edgeopt measure MODEL VARIANT BACKEND`` measures one case;
``edgeopt finetune MODEL VARIANT`` runs a variant's fine-tune and commits its result (edgeopt.recipes.trained).

``measure --json`` prints one JSON object: top1, top1_drop, size_bytes, the agreement figures and
the latency median, measured exactly as the benchmark suite measures them.  Errors are one line on
stderr and exit status 2; nothing is printed to stdout but the result.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

from edgeopt.backends import RunnerError, runner_class
from edgeopt.data import DataError
from edgeopt.cache import CacheError
from edgeopt.models import WeightsError, get_model, list_models
from edgeopt.recipes import VARIANTS
from edgeopt.recipes.base import RecipeError
from edgeopt.workbench import Workbench


def _import_user_modules(modules: list[str]) -> None:
    import importlib
    import os

    sys.path.insert(0, os.getcwd())
    for name in modules:
        importlib.import_module(name)


def cmd_models(args) -> int:
    names = list_models(args.pattern)
    if args.json:
        print(json.dumps([_describe(n) for n in names], indent=2))
        return 0
    for name in names:
        d = _describe(name)
        print(f"{name:<22} {d['dataset']:<16} {'x'.join(map(str, d['input_size'])):<10} {d['description']}")
    return 0


def _describe(name: str) -> dict:
    spec = get_model(name)
    return {"name": name, "dataset": spec.dataset.name, "input_size": list(spec.input_size),
            "num_classes": spec.num_classes, "description": spec.description}


def latency_ms(runner, x, warmup: int, rounds: int) -> dict:
    for _ in range(warmup):
        runner.run(x)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        runner.run(x)
        times.append(time.perf_counter() - start)
    return {"latency_median_ms": 1000 * statistics.median(times), "latency_rounds": rounds}


def cmd_measure(args) -> int:
    wb = Workbench(data_dir=args.data, threads=args.threads, limit=args.limit, reuse_outputs=not args.remeasure)
    model, variant, backend = args.model, args.variant, args.backend
    get_model(model)
    if variant not in VARIANTS:
        raise KeyError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    if backend not in wb.backends(model, variant):
        raise KeyError(f"backend {backend!r} does not run {variant} artifacts; use one of "
                       f"{', '.join(wb.backends(model, variant))}")
    result: dict = {"model": model, "variant": variant, "backend": backend, "threads": args.threads}
    weights = wb.weights(model)
    result["pretrained"] = weights.pretrained
    if weights.pretrained:
        result.update(wb.accuracy(model, variant, backend))
    else:
        result["accuracy_skipped"] = weights.missing_reason
    result.update(wb.size(model, variant))
    result.update(wb.agreement(model, variant, backend))
    with runner_class(backend)(wb.artifact(model, variant), threads=args.threads) as runner:
        result.update(latency_ms(runner, wb.sample_input(model), args.warmup, args.rounds))
    result = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.items()}
    if args.json:
        print(json.dumps(result, sort_keys=True, allow_nan=False))
    else:
        for k, v in result.items():
            print(f"{k:>18}: {v}")
    return 0


def cmd_finetune(args) -> int:
    from edgeopt.recipes import get_variant, trained

    variant = get_variant(args.variant)
    stage = next((r for r in variant.lineage() if r.trains), variant)  # e.g. lowbit_w4a8_qat: its qat_w4a8
    entry = trained.publish(get_model(args.model), stage, args.data, args.force)
    print(json.dumps(entry, indent=2, sort_keys=True))
    return 0


def _at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="edgeopt", description="benchmark and regression gate for edge image models")
    p.add_argument("--models-from", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it registers user models); may repeat")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("models", help="list registered models")
    m.add_argument("pattern", nargs="?", default="*")
    m.add_argument("--json", action="store_true")
    s = sub.add_parser("measure", help="measure one model x variant x backend")
    s.add_argument("model")
    s.add_argument("variant")
    s.add_argument("backend")
    s.add_argument("--data", default=None, help="data root (default: $EDGEOPT_DATA or ../shared/data)")
    s.add_argument("--limit", type=_at_least(1), default=None, help="evaluate N evenly spaced images only")
    s.add_argument("--threads", type=_at_least(1), default=1)
    s.add_argument("--warmup", type=_at_least(0), default=10)
    s.add_argument("--rounds", type=_at_least(1), default=50)
    s.add_argument("--remeasure", action="store_true",
                   help="evaluate again instead of reusing cached outputs of identical inputs")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    f = sub.add_parser("finetune", help="run a variant's seeded fine-tune and commit its state dict to edgeopt/weights")
    f.add_argument("model")
    f.add_argument("variant")
    f.add_argument("--data", default=None, help="data root (default: $EDGEOPT_DATA or ../shared/data)")
    f.add_argument("--force", action="store_true", help="replace a committed result")
    from edgeopt.gate import cli as gate_cli

    gate_cli.add_parser(sub)
    from edgeopt.report import cli as report_cli

    report_cli.add_parser(sub)
    args = p.parse_args(argv)
    try:
        _import_user_modules(args.models_from)
        return {"models": cmd_models, "measure": cmd_measure, "finetune": cmd_finetune,
                "gate": gate_cli.cmd_gate, "report": report_cli.cmd_report}[args.command](args)
    except (KeyError, DataError, RunnerError, RecipeError, WeightsError, CacheError, ImportError, ValueError,
            gate_cli.ab.GateError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"edgeopt: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
