"""Train the CIFAR-10 models edgeopt ships: ``python -m edgeopt.train MODEL [--seed S] [--epochs E]``.

Seeded and reproducible on the same software and thread count; writes
``edgeopt/weights/MODEL.pt`` (a plain state dict) and records sha256, test top-1, seed, epochs and
minutes in ``edgeopt/weights/manifest.json``.  Existing weights are only replaced with ``--force``,
and only once training has finished.

Measured on this 2-core CPU: channels_last and bf16 autocast both pay for these networks
(bf16: 3.4x on the ResNet, 2.6x on MobileNetV2-CIFAR, per training step).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from edgeopt import cache, machine
from edgeopt.data import load_split, normalize
from edgeopt.models import WEIGHTS_DIR, get_model, load_state_dict
from edgeopt.progress import progress


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int = 128
    max_lr: float = 0.1
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    bf16: bool = True
    # Warm restarts: (epochs, max_lr) of each further one-cycle schedule run after the first, seeded with
    # seed + its position, so a run can resume from the committed weights of the cycles before it.
    restarts: tuple[tuple[int, float], ...] = ()

    def cycles(self) -> list["TrainConfig"]:
        """One restart-free config per one-cycle schedule, in order."""
        first = replace(self, restarts=())
        return [first] + [replace(first, epochs=epochs, max_lr=max_lr) for epochs, max_lr in self.restarts]


CONFIGS = {
    "simple_cnn": TrainConfig(epochs=20, batch_size=128, max_lr=0.05),
    "cifar_resnet": TrainConfig(epochs=50, batch_size=256, max_lr=0.2),
    "mobilenet_v2_cifar": TrainConfig(epochs=15, batch_size=128, max_lr=0.1, weight_decay=3e-4,
                                      restarts=((6, 0.04), (8, 0.02))),
}


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random 32x32 crop from the 4-pixel reflect-padded image, and a random horizontal flip."""
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    dy, dx = rng.integers(0, 9, n), rng.integers(0, 9, n)
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = dx[:, None] + np.arange(w)[None, :]
    out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return out


def evaluate(model, images, labels, mean, std, batch_size: int = 500) -> float:
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(normalize(images[start:start + batch_size], mean, std))
            correct += (model(x).argmax(1).numpy() == labels[start:start + batch_size]).sum()
    return float(correct) / len(labels)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al.'s soft-target loss: KL(teacher || student) at ``temperature``, scaled by T^2 so its
    gradients keep their size as T changes."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits.float() / t, 1), F.log_softmax(teacher_logits.float() / t, 1),
                    log_target=True, reduction="batchmean") * t * t


def fit(model: torch.nn.Module, split, spec, cfg: TrainConfig, rng: np.random.Generator, desc: str,
        on_epoch: Callable[[int, float, float], None] | None = None, teacher: torch.nn.Module | None = None,
        distill_weight: float = 0.0, distill_temperature: float = 4.0) -> float:
    """Train ``model`` in place on ``split`` (augmented, normalised for ``spec``) with SGD + OneCycle; minutes taken.

    Seed torch before building the model and pass a seeded ``rng``: together they make a run reproducible
    on the same software and thread count.  Also used by the fine-tuning recipes, which may pass a
    ``teacher`` (the unpruned model): the loss is then ``(1 - distill_weight) * cross-entropy +
    distill_weight * distillation_loss`` against the teacher's logits on the same augmented batch.
    """
    if teacher is not None and not 0.0 < distill_weight <= 1.0:
        raise ValueError(f"distill_weight must be in (0, 1] with a teacher, got {distill_weight}")
    if teacher is not None:
        teacher.to(memory_format=torch.channels_last).eval()
    model.to(memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(len(split) / cfg.batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.max_lr, momentum=0.9, nesterov=True,
                          weight_decay=cfg.weight_decay)
    # A quarter of the steps warm up; a very short run (a few steps) gets at least 1.5 so that OneCycleLR's
    # warm-up phase is not empty (it divides by its length).
    pct_start = min(0.9, max(0.25, 1.5 / (cfg.epochs * steps_per_epoch)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.max_lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
                                                pct_start=pct_start)
    start = time.time()
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(len(split))
        total_loss = 0.0
        for step in progress(range(steps_per_epoch), desc=f"{desc} epoch {epoch + 1}/{cfg.epochs}"):
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            x = torch.from_numpy(normalize(augment(split.images[idx], rng), spec.mean, spec.std))
            x = x.contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(split.labels[idx])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                logits = model(x)
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                if teacher is not None:
                    with torch.no_grad():
                        teacher_logits = teacher(x)
                    loss = (1 - distill_weight) * loss + distill_weight * distillation_loss(
                        logits, teacher_logits, distill_temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item()
        if on_epoch is not None:
            on_epoch(epoch + 1, total_loss / steps_per_epoch, (time.time() - start) / 60)
    model.to(memory_format=torch.contiguous_format).eval()
    if teacher is not None:
        teacher.to(memory_format=torch.contiguous_format)
    return (time.time() - start) / 60


def _without_restarts(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != "restarts"}


def _completed_cycles(name: str, cycles: list[TrainConfig], out) -> list[dict]:
    """The cycles (config and figures) the committed weights of ``name`` already went through, checked
    against the manifest and this recipe; at least one cycle must remain."""
    manifest_path = WEIGHTS_DIR / "manifest.json"
    record = json.loads(manifest_path.read_text()).get(name) if manifest_path.exists() else None
    if record is None or not out.exists() or cache.file_sha256(out) != record["sha256"]:
        raise SystemExit(f"--resume needs {out} and its manifest entry (sha256 matching); train from scratch instead")
    done = record.get("cycles") or [{"config": record["config"], "test_top1": record["test_top1"],
                                     "minutes": record["minutes"]}]
    for i, cycle in enumerate(done):
        if i >= len(cycles) or _without_restarts(cycle["config"]) != _without_restarts(asdict(cycles[i])):
            raise SystemExit(f"--resume: the committed weights' cycle {i + 1} ({cycle['config']}) is not this "
                             f"recipe's; train from scratch instead")
    if len(done) == len(cycles):
        raise SystemExit(f"--resume: {out} already went through all {len(cycles)} cycles of the recipe")
    return done


def train(name: str, seed: int, epochs: int | None, data_dir: str | None, force: bool, resume: bool = False) -> dict:
    spec = get_model(name)
    if name not in CONFIGS:
        raise SystemExit(f"no training recipe for {name!r}; trainable: {', '.join(CONFIGS)}")
    cfg = CONFIGS[name]
    if epochs:
        cfg = replace(cfg, epochs=epochs, restarts=())
    cycles = cfg.cycles()
    out = WEIGHTS_DIR / f"{name}.pt"
    if out.exists() and not (force or resume):
        raise SystemExit(f"{out} exists; pass --force to retrain and replace it (or --resume to run the cycles it lacks)")
    history = _completed_cycles(name, cycles, out) if resume else []
    if cfg.bf16 and machine.emulates_bf16():
        print(f"warning: {name}'s recipe trains under bf16 autocast, which this CPU ({machine.cpu_info()[0]}) "
              f"emulates: expect many times the committed minutes", file=sys.stderr, flush=True)
    train_split = load_split(spec.dataset, "train", data_dir)
    test_split = load_split(spec.dataset, "eval", data_dir)
    torch.manual_seed(seed)
    model = spec.factory()
    if resume:
        model.load_state_dict(load_state_dict(out))

    for index in range(len(history), len(cycles)):
        cycle = cycles[index]
        if index:  # the first cycle keeps the torch seed set before the model was built
            torch.manual_seed(seed + index)
        rng = np.random.default_rng(seed + index)
        label = f"cycle {index + 1}/{len(cycles)}"

        def report(epoch: int, loss: float, minutes: float) -> None:
            top1 = evaluate(model, test_split.images, test_split.labels, spec.mean, spec.std)
            print(f"{name} {label} epoch {epoch}/{cycle.epochs} loss {loss:.3f} test top-1 {top1:.4f} "
                  f"({minutes:.1f} min)", file=sys.stderr, flush=True)

        minutes = fit(model, train_split, spec, cycle, rng, desc=f"{name} {label}", on_epoch=report)
        top1 = evaluate(model, test_split.images, test_split.labels, spec.mean, spec.std)
        history.append({"config": asdict(cycle), "test_top1": round(top1, 4), "minutes": round(minutes, 1)})
    tmp = out.with_suffix(".pt.tmp")
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, out)
    record = {"sha256": cache.file_sha256(out), "test_top1": history[-1]["test_top1"], "test_images": len(test_split),
              "seed": seed, "minutes": round(sum(c["minutes"] for c in history), 1),
              "threads": torch.get_num_threads(), "torch": torch.__version__, "config": asdict(cfg)}
    if len(history) > 1:
        record["cycles"] = history
    manifest_path = WEIGHTS_DIR / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest[name] = record
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return record


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m edgeopt.train", description=__doc__.splitlines()[0])
    p.add_argument("model", choices=sorted(CONFIGS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epoch count")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--data", default=None, help="data root (default: $EDGEOPT_DATA or ../shared/data)")
    p.add_argument("--force", action="store_true", help="replace existing weights")
    p.add_argument("--resume", action="store_true",
                   help="start from the committed weights and run only the warm-restart cycles they have not had")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(json.dumps(train(args.model, args.seed, args.epochs, args.data, args.force, args.resume), indent=2))


if __name__ == "__main__":
    main()
