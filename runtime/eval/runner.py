"""Run a bundle's precisions over SQuAD-format data and score them: QA (SQuAD metric) and retrieval."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

import numpy as np

from ..errors import InputError
from ..registry import PRECISIONS
from . import squad_metric
from .data import SquadData

logger = logging.getLogger(__name__)

CHUNK = 32  # items per pipeline call: the progress bar moves once per chunk


class Progress:
    """A one-line progress bar on a terminal stream (nothing when ``stream`` is None)."""

    def __init__(self, label: str, total: int, *, stream: TextIO | None) -> None:
        self.label, self.total, self.stream, self.done = label, total, stream, 0
        self.started = time.perf_counter()

    def advance(self, count: int) -> None:
        self.done += count
        if self.stream is None:
            return
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        elapsed = time.perf_counter() - self.started
        print(f"\r{self.label:<24} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {elapsed:6.1f}s",
              end="" if self.done < self.total else "\n", file=self.stream, flush=True)


def resolve_precisions(requested: str, available: Sequence[str]) -> list[str]:
    """The precisions to run, in registry order; "all" is every variant the bundle has.  fp32 always runs
    first when the bundle has it, since agreement is measured against it."""
    if requested.strip() == "all":
        wanted = list(available)
    else:
        wanted = [p.strip() for p in requested.split(",") if p.strip()]
        unknown = [p for p in wanted if p not in PRECISIONS]
        if unknown or not wanted:
            raise InputError(f"unknown precision(s) {unknown or requested!r}; choose from {', '.join(PRECISIONS)} or all")
        missing = [p for p in wanted if p not in available]
        if missing:
            raise InputError(f"the bundle has no {', '.join(missing)} variant; it has {', '.join(available)}. "
                             "Re-export with `distilrt export MODEL --precision ...` or choose among those")
    if "fp32" in available and "fp32" not in wanted:
        wanted.insert(0, "fp32")
    return [p for p in PRECISIONS if p in wanted]


def _chunks(n: int) -> list[range]:
    return [range(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]


def evaluate_squad(bundle: Path, data: SquadData, precisions: Sequence[str], *, provider: str = "cpu",
                   progress: TextIO | None = None, load: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Answer every question with each precision; SQuAD figures per precision and agreement with fp32."""
    from ..pipeline import pipeline

    load = load or pipeline
    v2 = data.has_impossible
    golds = {q.id: q.answers for q in data.questions}
    results: dict[str, Any] = {}
    reference: dict[str, str] | None = None
    for precision in precisions:
        qa = load("question-answering", model=bundle, precision=precision, provider=provider)
        bar = Progress(f"squad {precision}", len(data.questions), stream=progress)
        started = time.perf_counter()
        predictions: dict[str, str] = {}
        for chunk in _chunks(len(data.questions)):
            batch = [data.questions[i] for i in chunk]
            answers = qa(question=[q.question for q in batch], context=[q.context for q in batch],
                         handle_impossible_answer=v2)
            for q, answer in zip(batch, answers if isinstance(answers, list) else [answers]):
                predictions[q.id] = answer["answer"]
            bar.advance(len(batch))
        figures: dict[str, Any] = squad_metric.score(golds, predictions)
        figures["seconds"] = round(time.perf_counter() - started, 2)
        if precision == "fp32":
            reference = predictions
        if reference is not None:
            figures["agreement_with_fp32"] = float(np.mean([predictions[k] == reference[k] for k in reference]))
        results[precision] = figures
    return {"task": "squad", "version": "2.0" if v2 else "1.1", "questions": len(data.questions),
            "precisions": results}


def evaluate_retrieval(bundle: Path, data: SquadData, precisions: Sequence[str], *, provider: str = "cpu",
                       progress: TextIO | None = None, load: Callable[..., Any] | None = None,
                       keep_top1: bool = False) -> dict[str, Any]:
    """Question -> paragraph retrieval: recall@1/@5, MRR and top-1 agreement with fp32, per precision.

    Questions marked impossible (SQuAD v2) still belong to their paragraph and are kept.  ``keep_top1``
    adds each precision's retrieved paragraph per question (``top1``) for comparisons of one's own.
    """
    from ..pipeline import pipeline

    load = load or pipeline
    gold = np.array([q.paragraph for q in data.questions])
    results: dict[str, Any] = {}
    reference: np.ndarray | None = None
    for precision in precisions:
        embed = load("feature-extraction", model=bundle, precision=precision, provider=provider)
        pooling = (embed.manifest.pooling or {}).get("mode", "mean")
        texts = list(data.paragraphs) + [q.question for q in data.questions]
        bar = Progress(f"retrieval {precision}", len(texts), stream=progress)
        started = time.perf_counter()
        vectors = []
        for chunk in _chunks(len(texts)):
            vectors.append(np.asarray(embed([texts[i] for i in chunk], pooling=pooling, normalize=True)))
            bar.advance(len(chunk))
        matrix = np.concatenate(vectors)
        paragraphs, questions = matrix[:len(data.paragraphs)], matrix[len(data.paragraphs):]
        scores = questions @ paragraphs.T
        order = np.argsort(-scores, axis=1, kind="stable")
        ranks = np.argmax(order == gold[:, None], axis=1) + 1
        figures: dict[str, Any] = {
            "recall@1": float((ranks <= 1).mean()),
            "recall@5": float((ranks <= 5).mean()),
            "mrr": float((1.0 / ranks).mean()),
            "seconds": round(time.perf_counter() - started, 2),
        }
        top1 = order[:, 0]
        if precision == "fp32":
            reference = top1
        if reference is not None:
            figures["top1_agreement_with_fp32"] = float((top1 == reference).mean())
        if keep_top1:
            figures["top1"] = top1.tolist()
        results[precision] = figures
    return {"task": "retrieval", "questions": len(data.questions), "paragraphs": len(data.paragraphs),
            "precisions": results}


def table(report: dict[str, Any]) -> str:
    """The report as a terminal table: one row per precision."""
    rows = report["precisions"]
    columns = [c for c in dict.fromkeys(k for figures in rows.values() for k in figures)]
    header = ["precision", *columns]
    lines = [header]
    for precision, figures in rows.items():
        cells = [precision]
        for column in columns:
            value = figures.get(column)
            if value is None:
                cells.append("-")
            elif column in ("total", "HasAns_total", "NoAns_total"):
                cells.append(str(int(value)))
            elif column in ("seconds",):
                cells.append(f"{value:.1f}")
            elif "agreement" in column or column.startswith("recall") or column == "mrr":
                cells.append(f"{100 * value:.2f}%" if "agreement" in column or column.startswith("recall")
                             else f"{value:.4f}")
            else:
                cells.append(f"{value:.2f}")
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def default_stream() -> TextIO | None:
    return sys.stderr if sys.stderr.isatty() else None
