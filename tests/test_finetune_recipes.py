"""Recipes that fine-tune (unstructured pruning + fine-tune, structured channel pruning) and what they stack into."""
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgeopt import metrics
from edgeopt.artifact import Artifact, resize_to_state_dict
from edgeopt.backends import runner_class
from edgeopt.data import DataError, DatasetSpec, load_split
from edgeopt.models import ModelSpec, register_model, unregister_model
from edgeopt.recipes import VARIANTS, BuildContext, _data_identity, build
from edgeopt.recipes.base import RecipeError
from edgeopt.recipes.export import OnnxExport
from edgeopt.recipes.onnx_quant import OrtStaticInt8, op_histogram
from edgeopt.recipes.pruning import PruneL1Unstructured, PruneStructured
from tests.conftest import TinyNet, quantized_conv_weights, write_image_folder

X = np.random.default_rng(0).standard_normal((6, 3, 8, 8)).astype(np.float32)
STRUCTURED = PruneStructured(name="ps", ratio=0.5, round_to=1, finetune_epochs=1, finetune_lr=0.01)
STRUCTURED_ONNX = OnnxExport(name="ps_onnx", source=STRUCTURED)


def run(artifact, backend):
    with runner_class(backend)(artifact) as runner:
        return runner.run(X)


@pytest.fixture
def weights(tiny_model):
    return tiny_model.build()


def test_structured_pruning_removes_channels_and_the_state_dict_reloads_at_the_new_width(tiny_model, weights, data_dir):
    pruned = build(tiny_model, STRUCTURED, weights, data_dir=data_dir)
    dense = build(tiny_model, VARIANTS["fp32"], weights, data_dir=data_dir)
    state = torch.load(pruned.path, weights_only=True)
    assert state["conv.weight"].shape[0] == 2 and state["fc.weight"].shape == (3, 2)  # classifier outputs kept
    assert pruned.meta["macs_ratio"] < 0.6 and pruned.meta["params_ratio"] < 0.7
    assert pruned.size_bytes < dense.size_bytes
    assert pruned.meta["finetune_epochs"] == 1
    module = pruned.load_module()
    assert module.conv.out_channels == 2 and module.bn.num_features == 2
    assert run(pruned, "torch").shape == (6, 3)


def test_structured_pruning_exports_to_onnx_and_quantizes_on_top(tiny_model, weights, data_dir):
    pruned = build(tiny_model, STRUCTURED, weights, data_dir=data_dir)
    exported = build(tiny_model, STRUCTURED_ONNX, weights, data_dir=data_dir)
    conv = next(i for i in onnx.load(str(exported.path)).graph.initializer if len(i.dims) == 4)
    assert conv.dims[0] == 2
    assert metrics.max_abs_error(run(pruned, "torch"), run(exported, "onnxruntime")) < 1e-4
    quantized = build(tiny_model, OrtStaticInt8(name="ps_int8", base=STRUCTURED_ONNX), weights, data_dir=data_dir)
    assert quantized.meta["ops"].get("QuantizeLinear", 0) >= 1
    assert metrics.top1_agreement(run(exported, "onnxruntime"), run(quantized, "onnxruntime")) >= 0.5
    assert not STRUCTURED_ONNX.lossless and VARIANTS["onnx_fp32"].lossless
    # The stack with 7-bit weights: the pruned widths, every quantized weight within +-64.
    reduced = build(tiny_model, OrtStaticInt8(name="ps_int8_rr", base=STRUCTURED_ONNX, reduce_range=True), weights,
                    data_dir=data_dir)
    [conv_q] = quantized_conv_weights(reduced)
    assert conv_q.shape[0] == 2 and conv_q.dtype == np.int8
    assert 32 < np.abs(conv_q.astype(np.int32)).max() <= 64


def test_distillation_loss_is_zero_only_when_the_student_matches_the_teacher():
    from edgeopt.train import distillation_loss

    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    assert distillation_loss(teacher.clone(), teacher, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.zeros_like(teacher, requires_grad=True)
    loss = distillation_loss(student, teacher, 4.0)
    assert loss.item() > 0
    loss.backward()
    assert (student.grad.argmin(1) == teacher.argmax(1)).all()  # descent raises the teacher's top class


def test_structured_pruning_distils_from_the_unpruned_model_when_asked(tiny_model, weights, data_dir):
    longer = replace(STRUCTURED, finetune_epochs=4, finetune_lr=0.5)
    plain = build(tiny_model, longer, weights, data_dir=data_dir)
    distilled = build(tiny_model, replace(longer, name="ps_kd", distill_weight=0.7), weights, data_dir=data_dir)
    assert plain.meta["distill_weight"] == 0.0 and distilled.meta["distill_weight"] == 0.7
    a, b = (torch.load(x.path, weights_only=True) for x in (plain, distilled))
    assert a["conv.weight"].shape == b["conv.weight"].shape  # same channels pruned
    assert (a["fc.weight"] - b["fc.weight"]).abs().max() > 1e-3  # a different fine-tune
    with pytest.raises(RecipeError, match="distill_weight"):
        build(tiny_model, replace(STRUCTURED, name="ps_bad", distill_weight=1.5), weights, data_dir=data_dir)


def test_finetuning_keeps_the_pruning_masks_and_changes_the_kept_weights(tiny_model, weights, data_dir):
    plain = build(tiny_model, PruneL1Unstructured(name="p", amount=0.5), weights, data_dir=data_dir)
    tuned = build(tiny_model, PruneL1Unstructured(name="pf", amount=0.5, finetune_epochs=2, finetune_lr=0.05), weights,
                  data_dir=data_dir)
    a, b = (torch.load(x.path, weights_only=True)["conv.weight"] for x in (plain, tuned))
    assert torch.equal(a == 0, b == 0)  # same weights pruned, still exactly zero
    assert not torch.allclose(a, b)
    assert tuned.meta["sparsity"] == pytest.approx(0.5, abs=0.05)


def test_finetune_is_seeded(tiny_model, weights, data_dir, tmp_path):
    first = build(tiny_model, STRUCTURED, weights, data_dir=data_dir, cache_root=tmp_path / "a")
    second = build(tiny_model, STRUCTURED, weights, data_dir=data_dir, cache_root=tmp_path / "b")
    assert first.path != second.path
    sa, sb = (torch.load(x.path, weights_only=True) for x in (first, second))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_finetune_runs_on_the_recipes_thread_count_not_the_machines(tiny_model, weights, data_dir, monkeypatch):
    import edgeopt.train

    seen, fit = [], edgeopt.train.fit
    monkeypatch.setattr(edgeopt.train, "fit", lambda *a, **k: seen.append(torch.get_num_threads()) or fit(*a, **k))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        build(tiny_model, replace(STRUCTURED, name="ps1"), weights, data_dir=data_dir)
        assert seen == [1] and torch.get_num_threads() == 2  # restored afterwards
    finally:
        torch.set_num_threads(before)
    one = build(tiny_model, STRUCTURED, weights, data_dir=data_dir)
    two = build(tiny_model, replace(STRUCTURED, threads=2), weights, data_dir=data_dir)
    assert one.key != two.key  # the thread count is part of what the weights depend on


@pytest.mark.parametrize("recipe", [replace(STRUCTURED, threads=0),
                                    PruneL1Unstructured(name="pf", finetune_epochs=1, threads=0)])
def test_a_thread_count_below_one_is_refused_with_the_recipes_name(tiny_model, weights, data_dir, recipe):
    with pytest.raises(RecipeError, match=f"{recipe.name}: threads must be >= 1"):
        build(tiny_model, recipe, weights, data_dir=data_dir)


def test_training_images_enter_the_cache_key_of_everything_built_on_a_finetune(tiny_model, weights, data_dir):
    ctx = BuildContext(tiny_model, weights, None, data_dir)
    stacked = OrtStaticInt8(name="ps_int8", base=STRUCTURED_ONNX)
    before = {r: _data_identity(ctx, r) for r in (STRUCTURED, stacked, VARIANTS["onnx_fp32"])}
    assert before[VARIANTS["onnx_fp32"]] is None
    write_image_folder(data_dir / "tiny" / "train", per_class=6, seed=3)
    assert _data_identity(ctx, STRUCTURED) != before[STRUCTURED]
    assert _data_identity(ctx, stacked) != before[stacked]


def test_models_without_a_training_tree_are_not_finetuned(data_dir):
    holdout_only = DatasetSpec("tiny-holdout", eval_dir="tiny/test", crop=8)
    spec = register_model(ModelSpec("tiny_holdout", TinyNet, None, holdout_only, (3, 8, 8), (0.5,) * 3, (0.25,) * 3,
                                    num_classes=3))
    try:
        for name in ("prune_finetune_50", "prune_structured", "prune_structured_onnx", "prune_structured_int8"):
            assert "no training tree" in VARIANTS[name].unsupported_reason(spec)
        assert VARIANTS["ort_int8_static"].unsupported_reason(spec) is None
        assert VARIANTS["prune_l1_50"].unsupported_reason(spec) is None
        with pytest.raises(RecipeError, match="no training tree"):
            build(spec, STRUCTURED, spec.build(), data_dir=data_dir)
        with pytest.raises(DataError, match="leak evaluation images"):
            load_split(holdout_only, "train", data_dir)
    finally:
        unregister_model("tiny_holdout")


class _Depthwise(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.dw(self.stem(x)).mean(dim=(2, 3)))


def test_resize_keeps_depthwise_convolutions_depthwise(tmp_path):
    import torch_pruning as tp

    torch.manual_seed(0)
    net = _Depthwise().eval()
    tp.pruner.BasePruner(net, torch.zeros(1, 3, 8, 8), importance=tp.importance.GroupMagnitudeImportance(p=2),
                         pruning_ratio=0.5, ignored_layers=[net.head]).step()
    net.eval()
    torch.save(net.state_dict(), tmp_path / "pruned.pt")
    artifact = Artifact("m", "v", "torch", tmp_path / "pruned.pt", key="", recipe=None, factory=_Depthwise)
    rebuilt = artifact.load_module()
    assert rebuilt.dw[0].groups == rebuilt.dw[0].out_channels == 4
    x = torch.from_numpy(X)
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), net(x), atol=1e-5)


def test_resize_refuses_a_layer_it_cannot_rebuild():
    net = nn.Sequential(nn.LayerNorm(4))
    with pytest.raises(ValueError, match="cannot resize"):
        resize_to_state_dict(net, {"0.weight": torch.ones(2), "0.bias": torch.zeros(2)})


@pytest.fixture
def finetuned_dir(tmp_path, monkeypatch):
    from edgeopt.recipes import trained

    monkeypatch.setattr(trained, "FINETUNED_DIR", tmp_path / "finetuned")
    return tmp_path / "finetuned"


def test_a_committed_finetune_is_loaded_instead_of_training_and_keys_the_artifact(tiny_model, weights, data_dir,
                                                                                 finetuned_dir, monkeypatch):
    from edgeopt.recipes import pruning, trained

    trained_here = build(tiny_model, STRUCTURED, weights, data_dir=data_dir)
    entry = trained.publish(tiny_model, STRUCTURED, data_dir=data_dir)
    assert (finetuned_dir / entry["file"]).read_bytes() == trained_here.path.read_bytes()  # the cached fine-tune
    assert entry["config"]["finetune_epochs"] == 1 and entry["artifact_meta"]["finetune_committed"] is False

    def no_training(*args, **kwargs):
        raise AssertionError("fine-tuned although a committed result matches")

    monkeypatch.setattr(pruning, "finetune", no_training)
    loaded = build(tiny_model, STRUCTURED, weights, data_dir=data_dir)
    assert loaded.key != trained_here.key and loaded.meta["finetune_committed"] is True
    a, b = (torch.load(x.path, weights_only=True) for x in (trained_here, loaded))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    onnx_on_top = build(tiny_model, STRUCTURED_ONNX, weights, data_dir=data_dir)  # derived artifacts use it too
    assert onnx_on_top.path.exists() and run(onnx_on_top, "onnxruntime").shape == (6, 3)

    with pytest.raises(AssertionError, match="fine-tuned"):  # another config or other base weights: it trains
        build(tiny_model, replace(STRUCTURED, finetune_lr=0.02), weights, data_dir=data_dir)
    with pytest.raises(RecipeError, match="already committed"):
        trained.publish(tiny_model, STRUCTURED, data_dir=data_dir)


def test_a_committed_finetune_that_does_not_match_its_sha256_is_a_clear_error(tiny_model, weights, data_dir,
                                                                              finetuned_dir):
    from edgeopt.recipes import trained

    entry = trained.publish(tiny_model, STRUCTURED, data_dir=data_dir)
    with open(finetuned_dir / entry["file"], "ab") as f:
        f.write(b"x")
    with pytest.raises(RecipeError, match="restore it from git"):
        build(tiny_model, STRUCTURED, weights, data_dir=data_dir)


def test_qat_trains_the_float_weights_through_the_planned_quantizers(tiny_model, weights, data_dir):
    from edgeopt.recipes.lowbit import LowBit, fake_quantize_weight
    from edgeopt.recipes.qat import QatFinetune, _FakeQuantWeight

    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    out = _FakeQuantWeight(4)(w)
    out.sum().backward()
    assert torch.equal(out, fake_quantize_weight(w.detach(), 4)) and torch.equal(w.grad, torch.ones_like(w))
    target = LowBit(name="w4", weight_bits=4, edge_bits=4)
    qat = QatFinetune(name="qat", target=target, finetune_lr=0.05)
    tuned = build(tiny_model, qat, weights, data_dir=data_dir)
    state, base = torch.load(tuned.path, weights_only=True), weights.module.state_dict()
    assert state.keys() == base.keys() and not torch.equal(state["conv.weight"], base["conv.weight"])
    assert tuned.meta["qat_weight_bits"] == [4, 4]
    low = build(tiny_model, LowBit(name="w4_qat", weight_bits=4, edge_bits=4, source=qat), weights, data_dir=data_dir)
    assert {lay["weight_bits"] for lay in low.meta["layers"]} == {4} and run(low, "torchscript").shape == (6, 3)
    with pytest.raises(ValueError, match="fixed or position"):
        QatFinetune(target=LowBit(schedule="sensitivity"))
