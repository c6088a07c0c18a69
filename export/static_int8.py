"""The static int8 variant: calibrate with each method, keep the most faithful, fall back by sensitivity.

1. Each chosen method (default :data:`~distilrt.export.quantize_static.DEFAULT_METHODS`) quantises every
   projection; each result is measured on the evaluation set.  The winner is the one closest to its
   targets (fidelity first); the first method in the list wins a tie.
2. If the winner misses a target (accuracy policy), each quantised operator is ranked by the error it
   adds when it alone is int8 (every other one computed in float, see
   :func:`~distilrt.export.qdq_graph.restore_operators`), measured against the fp32 graph on
   calibration examples.  Both its rounded activation and its rounded weight count: with every
   weight int8 and no activation rounded, all-MiniLM-L6-v2 still lost 2% of top-1 retrievals.
3. The fewest most-sensitive operators (1, 2, 3, 4, 6, 8, ...) computed in float that let the graph reach the
   target are kept so (no second calibration is needed), as long as the file stays under half the
   fp32 file: the most restored graph is measured first (one evaluation when the target is out of
   reach), then a binary search finds the fewest.  If nothing reaches the target, the fully quantised
   graph is kept and the manifest says the target was missed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import evaluate
from .calibration import CalibrationSet, FeedReader
from .progress import Steps
from .qdq_graph import PlainGraph, quantised_operators, restore_operators
from .quantize import fold_weight_transposes
from .quantize_static import DEFAULT_METHODS, check_method, describe_graph, nncf_available, quantize_static

logger = logging.getLogger(__name__)

#: Calibration examples used to rank operator sensitivity (each ranking runs one graph per operator),
#: picked evenly across the lengths of the calibration set.
SENSITIVITY_EXAMPLES = 12
#: Longest example the ranking runs: its cost grows with length, the ranking hardly does.
SENSITIVITY_MAX_TOKENS = 128
#: The fallback stops before the file would pass this fraction of the plain fp32 file: past it, the
#: variant has stopped being the small one.
MAX_SIZE_FRACTION = 0.5


@dataclass
class Candidate:
    tag: str
    method: str
    path: Path
    in_float: tuple[str, ...]  # operators computed in float (fallback)
    figures: dict[str, Any]
    seconds: float


def available_methods(methods: Sequence[str] | None = None) -> list[str]:
    """The calibration methods to run: ``methods`` (each checked) or the default, NNCF; ONNX Runtime's
    min/max stands in for NNCF when it is not installed."""
    chosen = [check_method(m) for m in methods] if methods else list(DEFAULT_METHODS)
    if "nncf" in chosen and not nncf_available():
        logger.warning("NNCF is not installed; static int8 uses ONNX Runtime's calibration "
                       "(pip install 'distilrt[export]' brings NNCF)")
        chosen = [m for m in chosen if m != "nncf"] or ["ort-minmax"]
    return chosen


def build(plain: Path, work: Path, reader: FeedReader, calibration: CalibrationSet, evalset: evaluate.EvalSet,
          steps: Steps, *, methods: Sequence[str] | None = None, fallback: bool = True) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Make the static int8 variant of the plain fp32 graph; returns (path, manifest details, agreement figures)."""
    candidates: list[Candidate] = []
    for method in available_methods(methods):
        candidates.append(_attempt(plain, work, reader, evalset, steps, method, ()))
    winner = max(candidates, key=lambda c: evaluate.fidelity(c.figures))  # max keeps the first of equals
    first_pass = list(candidates)
    ranking: list[tuple[str, float]] = []
    if fallback and not winner.figures["target_met"]:
        reference = fold_weight_transposes(plain, work / "qdq_reference.onnx") or plain  # what was quantised
        with steps.step("sensitivity", f"int8-static operators ranked on {min(len(reader), SENSITIVITY_EXAMPLES)} "
                                       "calibration examples"):
            ranking = rank_sensitivity(winner.path, reference, spread(reader.feeds, SENSITIVITY_EXAMPLES,
                                                                      max_length=SENSITIVITY_MAX_TOKENS))
        with steps.step("fallback", "fewest sensitive operators computed in float that reach the target"):
            attempt = fewest_to_restore(winner, [name for name, _ in ranking], evalset, work, reference,
                                        max_bytes=int(plain.stat().st_size * MAX_SIZE_FRACTION))
        if attempt is not None:
            candidates.append(attempt)
            winner = attempt
    chosen = winner
    steps.note(f"int8-static {chosen.tag}: {'meets' if chosen.figures['target_met'] else 'MISSES'} the agreement "
               f"target ({_summary(chosen.figures)})")
    details = {
        "format": "QDQ",
        "method": chosen.method,
        "graph": "plain",
        "calibration": {**calibration.describe(), "method": chosen.method},
        # Computed in float as the plain graph does (weights stored as fp16, cast to fp32 at load).
        "float_operators": list(chosen.in_float),
        "quantized_graph": describe_graph(chosen.path),
        "candidates": {c.tag: {"method": c.method, "float_operators": len(c.in_float), "seconds": round(c.seconds, 1),
                               **{k: v for k, v in c.figures.items() if k in c.figures["target"]}}
                       for c in candidates},
        "why": _why(first_pass, chosen),
        "sensitivity": [[name, float(f"{error:.4g}")] for name, error in ranking[:16]],
        "target_met": bool(chosen.figures["target_met"]),
        "batch_independent": True,  # every scale is fixed at export; tests check it bit for bit
        "attention_products": "float",  # score and context MatMuls (see quantize_static.activation_products)
    }
    return chosen.path, details, chosen.figures


def _attempt(plain: Path, work: Path, reader: FeedReader, evalset: evaluate.EvalSet, steps: Steps, method: str,
             keep: tuple[str, ...]) -> Candidate:
    tag = method + (f"+{len(keep)}-fp32" if keep else "")
    path = work / f"qdq_{tag}.onnx"
    with steps.step("quantise", f"int8-static {tag} (calibrated on {len(reader)} examples)"):
        started = time.perf_counter()
        quantize_static(plain, path, reader, method=method, keep_fp32=keep)
        seconds = time.perf_counter() - started
        figures = evaluate.measure(path, evalset)
    steps.note(f"int8-static {tag}: {_summary(figures)}")
    return Candidate(tag, method, path, keep, figures, seconds)


def _summary(figures: dict[str, Any]) -> str:
    return ", ".join(f"{name} {figures[name]:.4f}" for name in figures["target"])


def _why(first_pass: list[Candidate], chosen: Candidate) -> str:
    if len(first_pass) == 1:
        return f"{first_pass[0].method} was the only method available"
    ranked = sorted(first_pass, key=lambda c: evaluate.fidelity(c.figures), reverse=True)
    parts = "; ".join(f"{c.method}: {_summary(c.figures)}" for c in ranked)
    return (f"{ranked[0].method} kept the most agreement with PyTorch fp32 on the evaluation set, every "
            f"operator quantised ({parts})" + (f"; then the {len(chosen.in_float)} most sensitive operators computed in float to reach the "
                                     "target" if chosen.in_float else ""))


def spread(feeds: list[dict[str, np.ndarray]], count: int, *, max_length: int | None = None) -> list[dict[str, np.ndarray]]:
    """``count`` feeds evenly spaced over the set sorted by length (up to ``max_length`` tokens when given)."""
    ordered = sorted(feeds, key=lambda feed: feed["input_ids"].shape[1])
    short = [f for f in ordered if max_length is None or f["input_ids"].shape[1] <= max_length]
    ordered = short or ordered[:1]
    if len(ordered) <= count:
        return ordered
    return [ordered[round(i * (len(ordered) - 1) / (count - 1))] for i in range(count)]


def fallback_counts(total: int) -> list[int]:
    """How many operators each fallback step computes in float: 1, 2, 3, 4, 6, 8, 12, 16, 24, ... then ``total``."""
    counts = {total}
    k = 1
    while k < total:
        counts.update((k, min(total, k + k // 2)))
        k *= 2
    return sorted(c for c in counts if c >= 1)


def fewest_to_restore(quantised: Candidate, ranked: list[str], evalset: evaluate.EvalSet, work: Path, reference: Path,
                      *, max_bytes: int | None = None) -> Candidate | None:
    """The graph with the fewest top-ranked operators (one of :func:`fallback_counts`) computed in float
    that meets the target on the evaluation set; None if even the most restored graph within ``max_bytes``
    of file misses it.

    The most restored graph is measured first, so a target out of reach costs one evaluation; then a
    binary search over the counts (agreement grows with the count, near enough) finds the fewest.
    """
    import onnx

    plain = PlainGraph(onnx.load(str(reference)))
    started = time.perf_counter()
    built: dict[int, Path] = {}
    measured: dict[int, dict[str, Any]] = {}

    def build(k: int) -> Path:
        if k not in built:
            model = onnx.load(str(quantised.path))
            restore_operators(model, plain, ranked[:k])
            built[k] = work / f"qdq_{quantised.method}+{k}-float.onnx"
            onnx.save(model, str(built[k]))
        return built[k]

    def meets(k: int) -> bool:
        if k not in measured:
            measured[k] = evaluate.measure(build(k), evalset)
            logger.info("int8-static %s+%d-float: target %s", quantised.method, k,
                        "met" if measured[k]["target_met"] else "missed")
        return bool(measured[k]["target_met"])

    counts = fallback_counts(len(ranked))
    while counts and max_bytes is not None and build(counts[-1]).stat().st_size > max_bytes:
        logger.info("int8-static %s+%d-float: above the %d bytes allowed", quantised.method, counts[-1], max_bytes)
        counts.pop()
    if not counts or not meets(counts[-1]):
        return None
    low, high = 0, len(counts) - 1  # counts[high] meets the target
    while low < high:
        middle = (low + high) // 2
        if meets(counts[middle]):
            high = middle
        else:
            low = middle + 1
    k = counts[high]
    return Candidate(f"{quantised.method}+{k}-float", quantised.method, build(k), tuple(ranked[:k]), measured[k],
                     quantised.seconds + time.perf_counter() - started)


def rank_sensitivity(qdq_path: Path, reference: Path, feeds: list[dict[str, np.ndarray]]) -> list[tuple[str, float]]:
    """Operators of ``qdq_path``, most sensitive first, with the relative output error each adds when it is
    the only int8 operator (every other one computed in float from ``reference``, the graph it was quantised from)."""
    import onnx

    from distilrt.runtime.engines.onnxruntime import SessionSettings, create_session

    # Basic rewrites only: one session per operator, and the int8 kernel fusions cost more to set up than
    # they save on a dozen short runs (the quantise/dequantise arithmetic is the same either way).
    settings = SessionSettings(optimization="basic")
    reference_session = create_session(reference, settings)
    references = [reference_session.run(None, feed) for feed in feeds]
    quantised = onnx.load(str(qdq_path))
    plain = PlainGraph(onnx.load(str(reference)))
    operators = quantised_operators(quantised)
    errors = []
    for name in operators:
        model = onnx.ModelProto()
        model.CopyFrom(quantised)
        restore_operators(model, plain, [other for other in operators if other != name])
        session = create_session(model.SerializeToString(), settings)
        total = 0.0
        for feed, ref in zip(feeds, references):
            got = session.run(None, feed)
            total += float(np.mean([np.linalg.norm(g - r) / max(np.linalg.norm(r), 1e-12) for g, r in zip(got, ref)]))
        errors.append((name, total / max(len(feeds), 1)))
    return sorted(errors, key=lambda item: item[1], reverse=True)
