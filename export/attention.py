"""Attention for the CPU provider: fused Attention nodes rewritten so ONNX Runtime runs flash attention.

ONNX Runtime's CPU ``MultiHeadAttention`` kernel has a flash-attention path (MLAS, blocked to the L2
cache, no score matrix in memory), but takes it only when the node has no mask input; with one it
falls back to the plain score-matrix path, which is what the ``Attention`` node and the unfused graph
run too.  The rewrite here moves the padding mask into the keys instead, so no mask input is needed:
every head's query gets one extra component that is always 1 and every head's key one extra component
that is 0 for a real token and ``-1e30 / scale`` for padding.  Their product adds exactly 0 to real
tokens' scores and -1e30 to padding's, which the softmax turns into a weight of exactly 0, as the
model's own masking (the float minimum) does; a milder -10000 is not enough when activations are
large enough to give real scores of that size.  Values keep their head size.

Each layer's Q, K and V projections become plain ``MatMul`` + ``Add`` nodes (Q and K with one
zero-weight column per head for the extra component), so the int8 quantiser gives them per-channel
int8 weights sharing one activation quantisation, like the unfused graph's -- unlike ``QAttention``,
which measured 2x slower (28.5 vs 13.7 ms at 1x128).

Measured on full-size DistilBERT-QA int8, 2 threads, one ``python -m research.compare``
run (median ms at 1x128 / 1x384 / 4x384 / 8x128): this rewrite 9.00 / 28.9 / 111.1 / 55.4 against the
unfused graph with fp32 attention MatMuls 9.46 / 31.3 / 122.3 / 58.4.  A MultiHeadAttention node that
keeps the mask input (plain score-matrix path) was slower than the unfused graph at 4x384 (134.0 vs
118.7 ms) and 8x128.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: Added to padding keys' scores (before the softmax): far below any real score, and finite even
#: after division by a small scale, so no inf or NaN can appear.
PADDING_SCORE = -1.0e30


def rewrite_for_flash_attention(model_path: Path, out_path: Path, *, mask_input: str = "attention_mask") -> int:
    """Rewrite the fused ``Attention`` nodes of ``model_path`` (see module doc) into ``out_path``.

    Returns how many nodes were rewritten; 0 (and no file written) when the graph has no ``Attention``
    node this rewrite understands, or no ``mask_input`` graph input, or an opset older than 13.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    mask = next((i for i in graph.input if i.name == mask_input), None)
    candidates = [n for n in graph.node if n.op_type == "Attention" and n.domain == "com.microsoft"]
    if opset < 13 or mask is None or not candidates:
        return 0
    weights = {i.name: i for i in graph.initializer}
    usable = [n for n in candidates if _plain_self_attention(n, weights)]
    if len(usable) != len(candidates):
        logger.info("%d of %d Attention nodes use options the flash rewrite does not handle; graph left alone",
                    len(candidates) - len(usable), len(candidates))
        return 0

    heads = {int(_attribute(n, "num_heads")) for n in usable}
    hidden = {int(weights[n.input[1]].dims[0]) for n in usable}
    if len(heads) != 1 or len(hidden) != 1:
        return 0
    num_heads, hidden_size = heads.pop(), hidden.pop()
    head_size = hidden_size // num_heads
    scale = _attribute(usable[0], "scale") or 1.0 / math.sqrt(head_size)

    def const(name: str, value: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(value, name))
        return name

    prefix = "flash_attention/"
    wide = head_size + 1
    # Shared by every layer: what padding adds to each key's extra component, [batch, seq, heads x wide]:
    # (mask - 1) x pattern, with pattern = padding score / scale at each head's extra component, else 0.
    pattern = np.zeros((num_heads, wide), np.float32)
    pattern[:, head_size] = -PADDING_SCORE / scale
    shared = [
        helper.make_node("Cast", [mask.name], [prefix + "mask_float"], to=onnx.TensorProto.FLOAT,
                         name=prefix + "mask_float"),
        helper.make_node("Sub", [prefix + "mask_float", const(prefix + "one", np.array(1.0, np.float32))],
                         [prefix + "mask_minus_one"], name=prefix + "mask_minus_one"),
        helper.make_node("Unsqueeze", [prefix + "mask_minus_one", const(prefix + "axis_2", np.array([2], np.int64))],
                         [prefix + "mask_column"], name=prefix + "mask_column"),
        helper.make_node("Mul", [prefix + "mask_column", const(prefix + "pattern", pattern.reshape(-1))],
                         [prefix + "key_padding"], name=prefix + "key_padding"),
    ]

    rewritten = {id(n) for n in usable}
    nodes = []
    for node in graph.node:
        if id(node) not in rewritten:
            nodes.append(node)
            continue
        if shared:  # shared nodes go right before the first rewritten layer (the mask is a graph input)
            nodes.extend(shared)
            shared = []
        name = node.name or node.output[0]
        p = f"{prefix}{name}/"
        x = node.input[0]
        w = numpy_helper.to_array(weights[node.input[1]]).reshape(hidden_size, 3, num_heads, head_size)
        b = numpy_helper.to_array(weights[node.input[2]]).reshape(3, num_heads, head_size)
        projections = {}
        for index, part in enumerate("qkv"):
            weight, bias = w[:, index], b[index]
            if part != "v":  # one more component per head: 0 x input + (1 for queries, 0 for keys)
                weight = np.concatenate([weight, np.zeros((hidden_size, num_heads, 1), np.float32)], axis=-1)
                bias = np.concatenate([bias, np.full((num_heads, 1), 1.0 if part == "q" else 0.0, np.float32)], -1)
            nodes += [
                helper.make_node("MatMul", [x, const(p + part + "_weight", weight.reshape(hidden_size, -1))],
                                 [p + part + "_mm"], name=p + part + "/MatMul"),
                helper.make_node("Add", [p + part + "_mm", const(p + part + "_bias", bias.reshape(-1))],
                                 [p + part], name=p + part + "/Add"),
            ]
            projections[part] = p + part
        nodes.append(helper.make_node("Add", [projections["k"], prefix + "key_padding"], [p + "k_masked"],
                                      name=p + "k/AddPadding"))
        nodes.append(helper.make_node("MultiHeadAttention", [projections["q"], p + "k_masked", projections["v"]],
                                      [node.output[0]], domain="com.microsoft", num_heads=num_heads,
                                      scale=float(scale), name=p + "MultiHeadAttention"))
    del graph.node[:]
    graph.node.extend(_drop_unused(nodes, {o.name for o in graph.output}))
    _drop_unused_initializers(graph)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(out_path))
    return len(usable)


def _attribute(node, name: str):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), None)


def _plain_self_attention(node, weights) -> bool:
    """Self-attention with packed QKV weights, one output and no past state, bias or special options."""
    if len(node.output) != 1 or len(node.input) < 3 or node.input[1] not in weights or node.input[2] not in weights:
        return False
    if any(node.input[i] for i in range(4, len(node.input))):  # past, attention bias, past length...
        return False
    allowed = {"num_heads", "mask_filter_value", "scale"}
    if any(a.name not in allowed for a in node.attribute):
        return False
    w = weights[node.input[1]].dims
    heads = _attribute(node, "num_heads")
    return len(w) == 2 and w[1] == 3 * w[0] and heads and w[0] % heads == 0


def _drop_unused(nodes: list, outputs: set[str]) -> list:
    """Nodes whose outputs nothing reads any more (e.g. the old mask-index computation), removed."""
    while True:
        read = {name for n in nodes for name in n.input} | outputs
        kept = [n for n in nodes if any(o in read for o in n.output if o)]
        if len(kept) == len(nodes):
            return kept
        nodes = kept


def _drop_unused_initializers(graph) -> None:
    read = {name for n in graph.node for name in n.input}
    unused = [i for i in graph.initializer if i.name not in read]
    for initializer in unused:
        graph.initializer.remove(initializer)
