"""qonnx's ``inference_cost`` on a model's exported ONNX graph: an independent count of edgeopt's BitOps.

The FP32 export gets a qonnx ``Quant`` node on each Conv/Gemm/MatMul weight and input at the bits edgeopt/bitops.py
assigned that layer (matched by the weight initializer's name, ``<module>.weight``, which the dynamo exporter
keeps); qonnx then infers the datatypes and counts MACs from the graph's own shapes, so a mistake in edgeopt's
hooks or bit plan shows as a difference.  Where the definitions differ: qonnx's weight memory counts weights only
(edgeopt adds float biases, and the export folds BatchNorm into Conv biases); it discounts zero weights unless
told not to (here it is told not to: BitOps are a cost of the dense layer); it counts a batch, here of one image.
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgeopt.bitops import FLOAT_BITS
from edgeopt.recipes.base import RecipeError

_DOMAIN = "qonnx.custom_op.general"
_MULTIPLYING = ("Conv", "Gemm", "MatMul")


def _quant(graph: onnx.GraphProto, tensor: str, bits: int, signed: bool) -> tuple[onnx.NodeProto, str]:
    """A Quant node of ``tensor`` at ``bits`` (scale 1, zero point 0: qonnx infers a plain INTn/UINTn)."""
    names = [f"{tensor}_q{bits}_{part}" for part in ("scale", "zero", "bits", "out")]
    graph.initializer.extend(numpy_helper.from_array(np.array(value, np.float32), name)
                             for name, value in zip(names, (1.0, 0.0, float(bits))))
    node = helper.make_node("Quant", [tensor, *names[:3]], [names[3]], domain=_DOMAIN, signed=int(signed),
                            narrow=0, rounding_mode="ROUND")
    return node, names[3]


def annotated(onnx_path: Path, layers: list[dict]) -> tuple[onnx.ModelProto, dict[str, str]]:
    """The export at ``onnx_path``, batch 1, with a Quant node on each input of ``layers`` (bitops.Layer dicts)
    quantized, and the qonnx datatype of each quantized weight initializer."""
    model = onnx.load(str(onnx_path))
    graph = model.graph
    for value in (*graph.input, *graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1  # qonnx multiplies out static shapes only
    del graph.value_info[:]
    by_weight = {f"{lay['name']}.weight": lay for lay in layers}
    nodes, found, weights = [], set(), {}
    for node in graph.node:
        layer = by_weight.get(node.input[1]) if node.op_type in _MULTIPLYING and len(node.input) > 1 else None
        if layer is not None:
            found.add(node.input[1])
            if layer["weight_bits"] < FLOAT_BITS:  # what qonnx's FoldConstants makes of a Quant on a weight
                weights[node.input[1]] = f"INT{layer['weight_bits']}"
            if layer["act_bits"] < FLOAT_BITS:  # placed just before its reader: the graph stays topological
                quant, node.input[0] = _quant(graph, node.input[0], layer["act_bits"], signed=False)
                nodes.append(quant)
        nodes.append(node)
    if missing := sorted(set(by_weight) - found):
        raise RecipeError(f"{onnx_path.name}: no Conv/Gemm/MatMul reads {', '.join(missing[:3])}"
                          f"{' ...' if len(missing) > 3 else ''}; cannot match edgeopt's layers to the graph")
    del graph.node[:]
    graph.node.extend(nodes)
    model.opset_import.append(helper.make_opsetid(_DOMAIN, 1))
    return model, weights


def inference_cost(onnx_path: Path, layers: list[dict]) -> dict:
    """qonnx's totals for the export with edgeopt's bits: MACs, BitOps, weight bits, MACs/BitOps per node, and
    the op types qonnx has no cost rule for (global pooling's ReduceMean/ReduceMax: no multiplies by a weight)."""
    from qonnx.core.datatype import DataType  # imported here: qonnx pulls in its transforms
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.inference_cost import inference_cost as qonnx_cost

    model, weights = annotated(onnx_path, layers)
    wrapper = ModelWrapper(model)
    for name, datatype in weights.items():
        wrapper.set_tensor_datatype(name, DataType[datatype])
    result = qonnx_cost(wrapper, discount_sparsity=False, cost_breakdown=True)
    total = result["total_cost"]
    uncounted = set() if total["unsupported"] == "set()" else ast.literal_eval(total["unsupported"])  # str(set)
    per_node = {name: (int(cost["total_macs"]), int(cost["total_bops"]))
                for name, cost in result["node_cost"].items() if cost["total_macs"]}
    return {"macs": int(total["total_macs"]), "bitops": int(total["total_bops"]),
            "weight_bits": int(total["total_mem_w_bits"]), "nodes": per_node, "uncounted": sorted(uncounted)}
