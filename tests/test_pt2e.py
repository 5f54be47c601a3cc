"""PT2E INT8 (torchao X86InductorQuantizer) and the torch.compile runner, on the tiny model."""
import io

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from edgeopt import metrics
from edgeopt.backends import RunnerError, backends_for, runner_class
from edgeopt.backends.torch_compile import UnsafeArtifact, _weights_only_loads, load_program
from edgeopt.recipes import VARIANTS, build

pytest.importorskip("torchao")

X = np.random.default_rng(0).standard_normal((5, 3, 8, 8)).astype(np.float32)


def test_pt2e_int8_program_quantizes_the_weights_and_runs_compiled(tiny_model, data_dir):
    weights = tiny_model.build()
    artifact = build(tiny_model, VARIANTS["torch_int8_pt2e"], weights, data_dir=data_dir)
    assert artifact.format == "torch_export" and artifact.path.suffix == ".pt2"
    assert backends_for("torch_export") == ["torch_compile"]

    program = load_program(artifact.path)
    targets = [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
    assert any("dequantize_per_channel" in t for t in targets)  # per-channel weights (conv and linear)
    assert any("quantize_per_tensor" in t for t in targets)  # per-tensor activations
    stored = {name: t.dtype for name, t in program.state_dict.items()} | \
             {name: t.dtype for name, t in program.constants.items() if isinstance(t, torch.Tensor)}
    assert torch.int8 in stored.values()
    # The FP32 originals of the quantized weights are not kept beside their INT8 copies.
    assert not any(dtype == torch.float32 and name.endswith("conv.weight") for name, dtype in stored.items())

    with torch.no_grad():
        reference = weights.module(torch.from_numpy(X)).numpy()
    counters["inductor"].clear()
    with runner_class("torch_compile")(artifact) as runner:
        out = runner.run(X)
        assert runner.run(X[:1]).shape == (1, 3)  # the batch dimension is dynamic
    assert metrics.sqnr_db(reference, out) > 15
    assert torch._inductor.config.freezing is False  # the runner's setting ends with it
    # Inductor folded the Q/DQ pairs into oneDNN INT8 kernels (prepacked weights), not float ops.
    assert counters["inductor"]["qconv_weight_prepack_matcher_count"] > 0
    assert counters["inductor"]["qlinear_weight_prepack_matcher_count"] > 0


def _activation_quant_max(program) -> set:
    return {n.args[4] for n in program.graph.nodes
            if n.op == "call_function" and "quantize_per_tensor" in str(n.target) and "dequantize" not in str(n.target)}


def test_reduce_range_quantizes_activations_to_7_bits(tiny_model, data_dir):
    weights = tiny_model.build()
    default = build(tiny_model, VARIANTS["torch_int8_pt2e"], weights, data_dir=data_dir)
    reduced = build(tiny_model, VARIANTS["torch_int8_pt2e_reduce_range"], weights, data_dir=data_dir)
    assert _activation_quant_max(load_program(default.path)) == {255}
    assert _activation_quant_max(load_program(reduced.path)) == {127}
    assert reduced.meta["reduce_range"] is True
    with runner_class("torch_compile")(reduced) as runner:
        out = runner.run(X)
    with torch.no_grad():
        assert metrics.sqnr_db(weights.module(torch.from_numpy(X)).numpy(), out) > 15


def test_loading_refuses_to_unpickle():
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer)
    with _weights_only_loads():
        buffer.seek(0)
        assert torch.equal(torch.load(buffer)["w"], torch.ones(2))  # plain tensors load (weights_only=True)
        buffer.seek(0)
        with pytest.raises(UnsafeArtifact, match="refusing to unpickle"):
            torch.load(buffer, weights_only=False)
    buffer.seek(0)
    torch.load(buffer, weights_only=False)  # the guard is gone after the block


def test_a_broken_program_file_is_a_runner_error(tiny_model, tmp_path):
    from edgeopt.artifact import Artifact

    path = tmp_path / "model.pt2"
    path.write_bytes(b"not a zip archive")
    artifact = Artifact(model="tiny_test", variant="torch_int8_pt2e", format="torch_export", path=path, key="",
                        recipe=VARIANTS["torch_int8_pt2e"])
    with pytest.raises(RunnerError, match="torch_compile could not load model.pt2"):
        with runner_class("torch_compile")(artifact):
            pass
