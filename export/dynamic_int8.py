"""The dynamic int8 variant: which graph is quantised, and the accuracy policy that may keep layers in fp32.

The int8 file is quantised from one graph (:data:`INT8_SOURCE_ORDER`) with a preset; under the
``accuracy`` policy, a result that misses the agreement target is quantised again with the preset's
fallbacks (:meth:`~distilrt.export.quantize.QuantizationPreset.accuracy_ladder`), most sensitive layers
in fp32 first, until one reaches it: the evaluation set's targets (:data:`~distilrt.export.evaluate.TARGETS`)
when the export measures it, else the quick check on the validation batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import evaluate
from .load import Checkpoint
from .progress import Steps
from .quantize import QuantizationPreset, quantize
from .validate import check_variant

INT8_POLICIES = ("accuracy", "speed")
#: The dynamic int8 variant is quantised from the first of these graphs the export could build.  A fixed
#: rule, not a measurement: the flash graph's int8 was the fastest on full-size DistilBERT-QA at every
#: shape measured (see ``attention``), and quantising one graph keeps export quick.
INT8_SOURCE_ORDER: tuple[str, ...] = ("flash", "fused", "plain")
#: Fused attention operators: a graph with them has no activation x activation MatMuls.
ATTENTION_OPS = frozenset({"Attention", "MultiHeadAttention"})
#: What an int8 variant must reach to be preferred over a more accurate fallback.
INT8_COSINE_TARGET = 0.99
INT8_AGREEMENT_TARGET = 1.0


@dataclass(frozen=True)
class Int8Candidate:
    """One quantised file: its tag (graph + fallback level), where it is, its preset and its agreement."""

    tag: str
    path: Path
    preset: QuantizationPreset
    figures: dict[str, Any]

    @property
    def meets_target(self) -> bool:
        if "agreement" in self.figures:  # the evaluation set's targets, when it was measured
            return bool(self.figures["agreement"]["target_met"])
        if "embedding_cosine_min" in self.figures:
            return self.figures["embedding_cosine_min"] >= INT8_COSINE_TARGET
        return self.figures.get("top1_agreement", 0.0) >= INT8_AGREEMENT_TARGET


@dataclass(frozen=True)
class Int8Choice:
    """The int8 file kept, its manifest details and its agreement figures."""

    path: Path
    details: dict[str, Any]
    figures: dict[str, Any]


def build_int8(checkpoint: Checkpoint, label: str, graph: Path, work: Path, steps: Steps, batches: list,
               mask_token_id: int | None, preset: QuantizationPreset, *, ladder: bool,
               evalset: evaluate.EvalSet | None = None) -> Int8Choice:
    """Quantise ``graph`` (the ``label`` graph) with ``preset``, then (``ladder``) its fallbacks until one agrees.

    The accuracy policy keeps the most-quantised level that reaches the agreement target, else (no
    level does) the most faithful on the evaluation set when it was measured, the fully quantised one
    when not; the speed policy builds only the fully quantised one.
    """
    op_types = _op_types(graph)
    tried: list[Int8Candidate] = []
    built: set[tuple[tuple[str, ...], tuple[str, ...], bool]] = set()
    for suffix, level_preset in preset.accuracy_ladder() if ladder else (("", preset),):
        # With fused attention there are no activation MatMuls left to keep in fp32.
        activation_matmuls = level_preset.activation_matmuls and not op_types & ATTENTION_OPS
        key = (tuple(o for o in level_preset.operators if o in op_types), level_preset.keep_fp32, activation_matmuls)
        if key in built:
            continue
        built.add(key)
        tag = f"{label}{suffix}"
        path = work / f"int8_{tag}.onnx"
        with steps.step("quantise", f"int8 {tag}, preset {preset.name}"):
            quantize(graph, path, level_preset)
            figures = check_variant("int8", path, checkpoint, batches, mask_token_id=mask_token_id)
            if evalset is not None:
                figures["agreement"] = evaluate.measure(path, evalset)
        tried.append(Int8Candidate(tag, path, level_preset, figures))
        if tried[-1].meets_target:
            break
    met = tried[-1].meets_target
    chosen = tried[-1] if met else tried[0]
    if not met and evalset is not None:  # none reaches the target: the most faithful, measured
        chosen = max(tried, key=lambda c: evaluate.fidelity(c.figures["agreement"]))
    details = {
        "graph": label, "preset": chosen.preset.to_dict(),
        "source": f"first of {', '.join(INT8_SOURCE_ORDER)} the export built",
        "candidates": {c.tag: _candidate_figures(c.figures) for c in tried},
        "target": dict(evaluate.TARGETS[checkpoint.task]) if evalset is not None
        else {"embedding_cosine_min": INT8_COSINE_TARGET} if checkpoint.task == "feature-extraction"
        else {"top1_agreement": INT8_AGREEMENT_TARGET},
        "target_met": met,
        "chosen": chosen.tag,
        "policy": "accuracy" if ladder else "speed",
    }
    steps.note(f"int8 {chosen.tag}: {'meets' if met else 'misses'} the agreement target")
    return Int8Choice(chosen.path, details, chosen.figures)


def _candidate_figures(figures: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in figures.items() if k not in ("reference", "agreement")}
    agreement = figures.get("agreement")
    if agreement is not None:
        kept.update({name: agreement[name] for name in agreement["target"]})
    return kept


def _op_types(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}
