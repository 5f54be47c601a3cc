"""Everything one measurement needs, built once and remembered: weights, artifacts, data, outputs.

The benchmark suite and the CLI share one :class:`Workbench` per run.  It composes the package's
parts (registry -> recipe -> artifact -> runner -> metrics) and holds no policy: deciding what
passes is the suite's job.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from edgeopt import cache, metrics
from edgeopt.artifact import Artifact
from edgeopt.backends import backends_for, runner_class
from edgeopt.backends import RunnerError
from edgeopt.data import InvalidData, Split, batches, default_data_dir, load_split
from edgeopt.machine import cpu_kind
from edgeopt.models import ModelSpec, Weights, get_model
from edgeopt.progress import progress
from edgeopt.recipes import VARIANTS, build, get_variant

REFERENCE = ("fp32", "torch")
#: edgeopt's modules that judge, compare or report figures but never compute logits: editing them does not
#: invalidate cached outputs (every other module of the package is part of the outputs key).
DECIDING_CODE = ("cli.py", "pytest_plugin.py", "budgets.py", "metric_baselines.py", "gate", "report", "suite", "latency.py")


class Workbench:
    def __init__(self, data_dir: str | Path | None = None, cache_root: Path | None = None, threads: int = 1,
                 limit: int | None = None, reuse_outputs: bool = True):
        self.data_dir = data_dir
        self.reuse_outputs = reuse_outputs
        self.cache_root = cache_root
        self.threads = threads
        self.limit = limit
        self._weights: dict[str, Weights] = {}
        self._artifacts: dict[tuple[str, str], Artifact] = {}
        self._splits: dict[tuple[str, str], Split] = {}
        self._outputs: dict[tuple[str, str, str], np.ndarray] = {}
        self._macs: dict[str, int] = {}
        self._memory: dict[tuple[str, str, str], dict] = {}
        self._file_digests: dict[Path, str] = {}
        self._image_digests: dict[str, str] = {}

    # -- inputs ---------------------------------------------------------------------------
    def spec(self, model: str) -> ModelSpec:
        return get_model(model)

    def weights(self, model: str) -> Weights:
        if model not in self._weights:
            self._weights[model] = self.spec(model).build()
        return self._weights[model]

    def artifact(self, model: str, variant: str) -> Artifact:
        key = (model, variant)
        if key not in self._artifacts:
            self._artifacts[key] = build(self.spec(model), get_variant(variant), self.weights(model), self.cache_root,
                                         self.data_dir)
        return self._artifacts[key]

    def _meta(self, model: str, recipe) -> dict:
        """Metadata of the artifact of ``recipe`` (a variant or a recipe a variant starts from)."""
        if recipe.name in VARIANTS and VARIANTS[recipe.name] == recipe:
            return self.artifact(model, recipe.name).meta
        return build(self.spec(model), recipe, self.weights(model), self.cache_root, self.data_dir).meta

    def split(self, model: str, split: str = "eval") -> Split:
        spec = self.spec(model)
        key = (spec.dataset.name, split)
        if key not in self._splits:
            self._splits[key] = load_split(spec.dataset, split, self.data_dir, self.cache_root)
        classes = self._splits[key].classes
        if len(classes) != spec.num_classes:
            raise InvalidData(f"{spec.dataset.split_dir(split, self.data_dir or default_data_dir())} has "
                              f"{len(classes)} class folders ({classes[0]} ... {classes[-1]}) but {model} predicts "
                              f"{spec.num_classes} classes: labels would not match the outputs")
        return self._splits[key].subset(self.limit)

    def backends(self, model: str, variant: str) -> list[str]:
        return backends_for(get_variant(variant).format)

    # -- outputs --------------------------------------------------------------------------
    def outputs(self, model: str, variant: str, backend: str) -> np.ndarray:
        """Logits of the whole evaluation split (raises RunnerError if the runtime cannot run it).

        Computed once per identical inputs and kept in the cache (see :meth:`outputs_key`), unless the
        workbench was made with ``reuse_outputs=False``; a failed run stores nothing.
        """
        key = (model, variant, backend)
        if key not in self._outputs:
            if not self.reuse_outputs:
                self._outputs[key] = self._run_split(model, variant, backend)
            else:
                path = self._outputs_path(model, variant, backend)
                cache.get_or_create(path, lambda tmp: _save_npy(tmp, self._run_split(model, variant, backend)))
                self._outputs[key] = np.load(path, allow_pickle=False)
        return self._outputs[key]

    def _outputs_path(self, model: str, variant: str, backend: str) -> Path:
        return (self.cache_root or cache.cache_dir()) / "outputs" / \
            f"{model}-{variant}-{backend}-{self.outputs_key(model, variant, backend)[:20]}.npy"

    def _has_outputs(self, model: str, variant: str, backend: str) -> bool:
        """Whether the logits are at hand without running anything: computed in this run, or (when outputs are
        reused) left in the cache by an earlier run on identical inputs, e.g. the budget checks that ran before a
        latency-only run."""
        if (model, variant, backend) in self._outputs:
            return True
        return self.reuse_outputs and self._outputs_path(model, variant, backend).is_file()

    def outputs_key(self, model: str, variant: str, backend: str) -> str:
        """Everything the logits depend on: what :meth:`_run_inputs` names, the evaluation images, their
        preprocessing and batching."""
        spec = self.spec(model)
        return cache.digest({**self._run_inputs(model, variant, backend), "images": self._images_digest(model),
                             "mean": spec.mean, "std": spec.std, "batch": spec.eval_batch})

    def _run_inputs(self, model: str, variant: str, backend: str) -> dict:
        """What any run of an artifact depends on: its bytes, the runtime and its version, the kind of CPU (INT8
        kernels with and without VNNI round differently), the thread count and edgeopt's own code."""
        artifact = self.artifact(model, variant)
        if artifact.path not in self._file_digests:
            self._file_digests[artifact.path] = cache.file_sha256(artifact.path)
        return {"artifact": artifact.key, "artifact_sha256": self._file_digests[artifact.path], "backend": backend,
                "runtime": runner_class(backend).describe(), "cpu": cpu_kind(), "threads": self.threads,
                "edgeopt": cache.source_digest(Path(__file__).parent, exclude=DECIDING_CODE)}

    def _images_digest(self, model: str) -> str:
        """sha256 of the decoded evaluation images (pixels, not file names), once per dataset."""
        dataset = self.spec(model).dataset.name
        if dataset not in self._image_digests:
            images = np.ascontiguousarray(self.split(model).images)
            self._image_digests[dataset] = hashlib.sha256(images).hexdigest()
        return self._image_digests[dataset]

    def _run_split(self, model: str, variant: str, backend: str) -> np.ndarray:
        spec = self.spec(model)
        images = self.split(model).images
        chunks = []
        with runner_class(backend)(self.artifact(model, variant), threads=self.threads) as runner:
            steps = range(0, len(images), spec.eval_batch)
            for x in progress(batches(images, spec.mean, spec.std, spec.eval_batch),
                              desc=f"{model}-{variant}-{backend}", total=len(steps)):
                chunks.append(runner.run(x))
        return _valid_outputs(np.concatenate(chunks), spec, f"{model}-{variant} on {backend}")

    def reference(self, model: str) -> np.ndarray:
        return self.outputs(model, *REFERENCE)

    def sample_input(self, model: str, batch: int = 1) -> np.ndarray:
        """Real evaluation images (the first of the split), normalised, for latency runs."""
        spec = self.spec(model)
        return next(batches(self.split(model).images[:batch], spec.mean, spec.std, batch))

    # -- measurements (plain dicts of metric -> value) ------------------------------------
    def accuracy(self, model: str, variant: str, backend: str) -> dict:
        labels = self.split(model).labels
        top1 = metrics.top1(self.outputs(model, variant, backend), labels)
        ref = metrics.top1(self.reference(model), labels)
        return {"top1": top1, "reference_top1": ref, "top1_drop": round(100 * (ref - top1), 4),
                "eval_images": int(len(labels))}

    def agreement(self, model: str, variant: str, backend: str) -> dict:
        ref, out = self.reference(model), self.outputs(model, variant, backend)
        return {"top1_agreement": metrics.top1_agreement(ref, out), "max_abs_error": metrics.max_abs_error(ref, out),
                "sqnr_db": metrics.sqnr_db(ref, out), "compared_images": int(len(ref))}

    def size(self, model: str, variant: str) -> dict:
        path = self.artifact(model, variant).path
        ref_path = self.artifact(model, REFERENCE[0]).path
        size, ref = metrics.size_bytes(path), metrics.size_bytes(ref_path)
        packed, ref_packed = metrics.compressed_size_bytes(path), metrics.compressed_size_bytes(ref_path)
        out = {"size_bytes": size, "size_ratio": size / ref, "compressed_bytes": packed,
               "compressed_ratio": packed / ref_packed}
        meta = self.artifact(model, variant).meta
        out.update({k: meta[k] for k in ("sparsity", *_LOWBIT_META) if k in meta})
        if "layers" in meta and "bitops" in meta:  # low-bit: bits per layer, figures simulated (no 2-6 bit kernels)
            out["weight_bits"] = [layer["weight_bits"] for layer in meta["layers"]]
        # A recipe that changes the architecture (structured pruning) records the MACs it left; the
        # variants built on it (its ONNX export, INT8) inherit them.
        out["macs"] = next((m for r in get_variant(variant).lineage() if (m := self._meta(model, r).get("macs"))),
                           self.macs(model))
        out["macs_ratio"] = out["macs"] / self.macs(model)
        return out

    def macs(self, model: str) -> int:
        if model not in self._macs:
            self._macs[model] = metrics.macs(self.weights(model).module, self.spec(model).input_size)
        return self._macs[model]

    def memory(self, model: str, variant: str, backend: str) -> dict:
        """Peak RSS of the artifact on ``backend`` (a fresh probe process); kept in the cache like the logits, so
        a warm run and make bench's latency phase read it back instead of probing again."""
        from edgeopt.memory import peak_rss

        key = (model, variant, backend)
        if key not in self._memory:
            shape = (1, *self.spec(model).input_size)

            def probe() -> dict:
                return peak_rss(self.artifact(model, variant), backend, self.threads, shape)

            if not self.reuse_outputs:
                self._memory[key] = probe()
            else:
                path = self._memory_path(model, variant, backend)
                cache.get_or_create(path, lambda tmp: tmp.write_text(json.dumps(probe()), encoding="utf-8"))
                self._memory[key] = json.loads(path.read_text(encoding="utf-8"))
        return self._memory[key]

    def _memory_path(self, model: str, variant: str, backend: str) -> Path:
        shape = (1, *self.spec(model).input_size)
        key = cache.digest({**self._run_inputs(model, variant, backend), "shape": shape})
        return (self.cache_root or cache.cache_dir()) / "memory" / f"{model}-{variant}-{backend}-{key[:20]}.json"

    def measured(self, model: str, variant: str, backend: str) -> dict:
        """The accuracy, agreement and memory figures of this case that were already measured (no new runs; logits
        of an earlier run on identical inputs count, see :meth:`_has_outputs`)."""
        out: dict = {}
        if self._has_outputs(model, variant, backend) and self._has_outputs(model, *REFERENCE):
            if self.weights(model).pretrained:
                out.update(self.accuracy(model, variant, backend))
            out.update(self.agreement(model, variant, backend))
        if (model, variant, backend) in self._memory or (
                self.reuse_outputs and self._memory_path(model, variant, backend).is_file()):
            out.update(self.memory(model, variant, backend))
        return out


_LOWBIT_META = ("bitops", "bitops_ratio", "weight_memory_bits", "weight_memory_ratio", "simulated")


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a file object: np.save would append ".npy" to the temporary name
        np.save(fh, array, allow_pickle=False)


def _valid_outputs(logits: np.ndarray, spec: ModelSpec, what: str) -> np.ndarray:
    """Logits as the metrics need them, or a RunnerError naming what is wrong (Polygraphy's --validate: NaN, Inf)."""
    if logits.ndim != 2 or logits.shape[1] != spec.num_classes:
        raise RunnerError(f"{what}: outputs have shape {tuple(logits.shape)}, expected (images, {spec.num_classes}) "
                          f"for {spec.num_classes} classes")
    bad = ~np.isfinite(logits).all(axis=1)
    if bad.any():
        kinds = " and ".join(k for k, f in (("NaN", np.isnan), ("Inf", np.isinf)) if f(logits).any())
        raise RunnerError(f"{what}: outputs hold {kinds} for {int(bad.sum())} of {len(logits)} images "
                          f"(first: image {int(np.argmax(bad))})")
    return logits
