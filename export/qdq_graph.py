"""Graph surgery on QDQ graphs: which operators are quantised, and giving some of them back their float inputs.

A calibrator places each ``QuantizeLinear`` -> ``DequantizeLinear`` pair on a tensor, so every consumer of
that tensor reads the rounded value, including consumers that were never meant to be quantised (the
residual ``Add`` after a layer norm, a ``Shape``).  :func:`dedicate_to_operators` points those consumers
back at the unrounded tensor: only the int8 operators read through the pair.

:func:`restore_operators` turns named operators back into float ones, exactly as the plain graph computes
them: its activations are read before quantisation and before any smoothing ``Mul`` the calibrator
inserted, its weight is the plain graph's (stored as fp16 and cast to fp32 at load, so a graph with some
float operators still stays small), and the bias ``Add`` after it gets the plain graph's bias back (bias
correction had moved it to offset the rounding the operator no longer has).
"""

from __future__ import annotations

from typing import Any, Iterable

QUANTISABLE = frozenset({"MatMul", "Gemm"})
_QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})


def _producers(graph: Any) -> dict[str, Any]:
    return {output: node for node in graph.node for output in node.output}


def _rounded_source(name: str, producers: dict[str, Any]) -> str | None:
    """The tensor a ``QuantizeLinear`` -> ``DequantizeLinear`` pair ending in ``name`` rounds, else None."""
    dq = producers.get(name)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = producers.get(dq.input[0])
    return q.input[0] if q is not None and q.op_type == "QuantizeLinear" else None


def dedicate_to_operators(model: Any) -> int:
    """Let only MatMul / Gemm read rounded activations; returns how many other inputs were pointed back."""
    producers = _producers(model.graph)
    moved = 0
    for node in model.graph.node:
        if node.op_type in QUANTISABLE or node.op_type in _QDQ:
            continue
        for index, name in enumerate(node.input):
            source = _rounded_source(name, producers)
            if source is not None:
                node.input[index] = source
                moved += 1
    _drop_unused(model)
    return moved


def quantised_operators(model: Any) -> list[str]:
    """Names of the MatMul / Gemm nodes that read any input through ``DequantizeLinear``, in graph order."""
    producers = _producers(model.graph)
    found = []
    for node in model.graph.node:
        if node.op_type not in QUANTISABLE:
            continue
        if any(producers.get(name) is not None and producers[name].op_type == "DequantizeLinear" for name in node.input):
            found.append(node.name)
    return found


class PlainGraph:
    """The graph a QDQ graph was quantised from, indexed once for :func:`restore_operators`: its nodes and
    weights by name, and each weight's fp16 copy made the first time it is needed (the sensitivity
    ranking restores nearly every operator once per operator)."""

    def __init__(self, model: Any) -> None:
        self.nodes = {node.name: node for node in model.graph.node}
        self.weights = {i.name: i for i in model.graph.initializer}
        self._fp16: dict[str, Any] = {}

    def fp16(self, name: str) -> Any:
        """The weight ``name`` as an fp16 initializer named ``<name>_fp16``."""
        if name not in self._fp16:
            import numpy as np
            from onnx import numpy_helper

            array = numpy_helper.to_array(self.weights[name]).astype(np.float16)
            self._fp16[name] = numpy_helper.from_array(array, f"{name}_fp16")
        return self._fp16[name]


def restore_operators(model: Any, plain: Any, names: Iterable[str]) -> list[str]:
    """Compute the operators ``names`` of ``model`` in float, with the plain graph's inputs, weight and bias.

    ``plain`` is the graph ``model`` was quantised from (same node names), as a model or a
    :class:`PlainGraph` (reuse one across calls).  Returns the names restored.
    """
    import onnx
    from onnx import helper

    if not isinstance(plain, PlainGraph):
        plain = PlainGraph(plain)
    wanted = set(names)
    graph = model.graph
    present = {o for node in graph.node for o in node.output} | {i.name for i in graph.input}
    initializers = {i.name: i for i in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    casts = []
    restored = []
    for node in graph.node:
        original = plain.nodes.get(node.name)
        if node.name not in wanted or original is None:
            continue
        for index, name in enumerate(original.input):
            if name in plain.weights:  # stored as fp16, cast to fp32 at load (once per weight)
                stored, cast = plain.fp16(name), f"{name}_float"
                if stored.name not in initializers:
                    graph.initializer.append(stored)
                    initializers[stored.name] = stored
                    casts.append(helper.make_node("Cast", [stored.name], [cast], name=f"{name}_Cast",
                                                  to=onnx.TensorProto.FLOAT))
                node.input[index] = cast
            elif name in present:
                node.input[index] = name  # before rounding and before any smoothing Mul
        for user in consumers.get(node.output[0], []):
            plain_user = plain.nodes.get(user.name)
            if user.op_type == "Add" and plain_user is not None:
                _restore_bias(user, plain_user, plain.weights, graph, initializers)
        restored.append(node.name)
    for cast in reversed(casts):
        graph.node.insert(0, cast)
    _drop_unused(model)
    return restored


def _restore_bias(add: Any, plain_add: Any, plain_weights: dict[str, Any], graph: Any,
                  initializers: dict[str, Any]) -> None:
    """Point ``add`` at the plain graph's bias: bias correction may have changed it, under the same name or not."""
    for index, name in enumerate(plain_add.input):
        mine = initializers.get(add.input[index])
        if name not in plain_weights or mine is None or mine == plain_weights[name]:
            continue
        restored = f"{name}_plain"
        if restored not in initializers:
            copy = graph.initializer.add()
            copy.CopyFrom(plain_weights[name])
            copy.name = restored
            initializers[restored] = copy
        add.input[index] = restored


def _drop_unused(model: Any) -> None:
    """Remove nodes none of whose outputs is read (a rounding pair or smoothing Mul left behind), then
    initializers nothing reads."""
    graph = model.graph
    while True:
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for initializer in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(initializer)
