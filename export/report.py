"""The summary table printed at the end of an export."""

from __future__ import annotations

from typing import Any, Sequence

from .api import ExportResult


def parity_cell(precision: str, parity: dict[str, Any]) -> str:
    diffs = parity.get("max_abs_diff", {})
    worst = max(diffs.values()) if diffs else float("nan")
    parts = [f"max|Δ| {worst:.1e}"]
    if precision == "int8" or "top1_agreement" in parity:
        if "top1_agreement" in parity:
            parts.append(f"top-1 {parity['top1_agreement']:.0%}")
    if "embedding_cosine_min" in parity:
        parts.append(f"cos≥{parity['embedding_cosine_min']:.4f}")
    agreement = parity.get("agreement")
    if agreement:
        figures = "/".join(f"{agreement[name]:.2%}" if "agreement" in name else f"{agreement[name]:.4f}"
                           for name in agreement["target"])
        parts.append(f"eval {figures} " + ("meets target" if agreement["target_met"] else "MISSES target"))
    return ", ".join(parts)


def summary_table(results: Sequence[ExportResult]) -> str:
    rows = [("bundle", "task", "variant", "size MB", "parity vs PyTorch", "graph", "export s")]
    for result in results:
        manifest = result.manifest
        entries = {k: v for precision, variant in manifest.variants.items()  # each variant, then its extra graphs
                   for k, v in ((precision, variant), *((g, x) for g, x in manifest.graphs.items()
                                                       if x.precision == precision))}
        for key, variant in entries.items():
            rows.append((
                result.name, result.manifest.task, key, f"{variant.bytes / 1e6:.1f}",
                parity_cell(variant.precision, variant.parity), variant.graph,
                f"{result.total_seconds:.1f}" if result.total_seconds else "reused",
            ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
