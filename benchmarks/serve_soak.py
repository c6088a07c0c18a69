"""Reliability soak for ``distilrt serve``: many clients, all four tasks, hostile requests mixed in.

Starts one ``distilrt serve`` process with a question-answering, a fill-mask, a feature-extraction and a
text-classification bundle (fp32, so an answer does not depend on its batch mates), then runs a closed
loop: C clients on their own keep-alive connections send requests drawn from a seeded corpus for a fixed
time.  About 10% of requests are hostile (lone surrogates, deep nesting, amplification, over-long QA
contexts, wrong types, unknown options); each must get a 4xx.  Every good answer is checked against a
direct ``pipeline()`` call on the same bundle (floats within 1e-4).  The server's RSS is sampled every
second.  Counts: sent, verified, wrong (a 200 with another answer, or a hostile request answered 200),
lost (no answer: connection error or timeout), 5xx, 503 shed.

    python -m distilrt.benchmarks.serve_soak --tiny --clients 500 --seconds 60
    python -m distilrt.benchmarks.serve_soak --bundle QA --bundle MLM --bundle EMB --bundle CLF

Writes benchmarks/results/serve_soak.json and .md.  Reuses the server helpers of serve_load.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .serve_load import RESULTS, WORDS, _machine, _start_server, _wait_ready, post_json, stop_server

logger = logging.getLogger("serve_soak")
TINY = {"question-answering": ("distilbert-base-uncased-distilled-squad", None),
        "fill-mask": ("distilbert-base-uncased", None),
        "feature-extraction": ("distilbert-base-cased-distilled-squad", "DistilBertModel"),
        "text-classification": ("distilbert-base-uncased", "DistilBertForSequenceClassification")}


def _tiny_bundles(work: Path) -> list[Path]:
    """Tiny seeded stand-ins of the four tasks, exported fp32 once into ``work``."""
    from distilrt.export import export_model
    from distilrt.export.standins import FULL, build_standin, tiny

    out = []
    for task, (seed, head) in TINY.items():
        name = task.replace("-", "_")
        target = work / "bundles" / name
        if not (target / "manifest.json").is_file():
            checkpoint = build_standin(tiny(FULL[seed], head=head), work / "checkpoints" / name)
            export_model(str(checkpoint), work / "bundles", precisions="fp32", name=name, force=True)
        out.append(target)
    return out


def _text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def _good(task: str, rng: random.Random, mask: str) -> tuple[dict[str, Any], Any]:
    """A request body and the keyword call that answers it directly."""
    if task == "question-answering":
        q, c = f"What does the {rng.choice(WORDS)} do?", _text(rng, 10, 200)
        return {"inputs": {"question": q, "context": c}}, ("qa", q, c)
    if task == "fill-mask":
        words = _text(rng, 4, 30).split()
        words.insert(rng.randrange(len(words) + 1), mask)
        return {"inputs": " ".join(words), "parameters": {"top_k": 3}}, ("fm", " ".join(words))
    texts = [_text(rng, 3, 40) for _ in range(rng.choice((1, 1, 1, 4)))]
    body = texts[0] if len(texts) == 1 else texts
    return {"inputs": body}, (task, body)


def _hostile(rng: random.Random, names: dict[str, str], mask: str) -> tuple[str, bytes]:
    """A request path and a raw body that must be refused with a 4xx."""
    kind = rng.randrange(8)
    model = rng.choice(list(names.values()))
    if kind == 0:
        return model, b'{"inputs": "caf\\ud800 ' + mask.encode() + b'"}'
    if kind == 1:
        return model, b'{"inputs": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    if kind == 2:
        return names["fill-mask"], json.dumps({"inputs": f"{mask} " * 400, "parameters": {"top_k": 100}}).encode()
    if kind == 3:
        return names["question-answering"], json.dumps(
            {"inputs": {"question": "Who?", "context": "word " * 40_000}}).encode()
    if kind == 4:
        return model, json.dumps({"inputs": 42}).encode()
    if kind == 5:
        return model, json.dumps({"inputs": "text", "parameters": {"x" * 5000: 1}}).encode()
    if kind == 6:
        return model, b'{"inputs": "unterminated'
    return names["text-classification"], json.dumps({"inputs": "long " * 3000}).encode()


def _close(got: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and set(got) == set(want) and all(_close(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(_close(g, w) for g, w in zip(got, want))
    if isinstance(want, float):
        return isinstance(got, (int, float)) and abs(got - want) <= 1e-4
    return got == want


def _expected(pipes: dict[str, Any], call: tuple) -> Any:
    """What the server should answer, as JSON values (the Inference API shapes of the route handlers)."""
    import numpy as np

    if call[0] == "qa":
        return json.loads(json.dumps(pipes["question-answering"](question=call[1], context=call[2])))
    if call[0] == "fm":
        return json.loads(json.dumps(pipes["fill-mask"](call[1], top_k=3)))
    task, body = call
    if task == "feature-extraction":
        # the route pools as sentence-transformers does ("auto") and answers [tokens, hidden] per text, where
        # the pipeline returns transformers' [1, tokens, hidden]
        result = pipes[task](body, pooling="auto", return_tensors=True)
        rows = [np.asarray(r, dtype=np.float32) for r in ([result] if isinstance(body, str) else list(result))]
        vectors = [(row[0] if row.ndim == 3 else row).tolist() for row in rows]
        return vectors[0] if isinstance(body, str) else vectors
    result = pipes[task](body, top_k=None)
    return [result] if isinstance(body, str) else result


async def _send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes) -> tuple[int, bytes]:
    return await post_json(reader, writer, path, body, host="soak", reconnect_on_close=True)


async def _soak(port: int, corpus: list[tuple[str, bytes, Any]], clients: int, seconds: float) -> dict[str, Any]:
    counts = {"sent": 0, "good": 0, "hostile": 0, "verified": 0, "wrong": 0, "lost": 0, "5xx": 0, "shed_503": 0,
              "hostile_refused": 0}
    statuses: dict[int, int] = {}
    wrong_examples: list[str] = []
    stop_at = time.perf_counter() + seconds

    async def client(index: int) -> None:
        rng = random.Random(index)
        connection = None
        while time.perf_counter() < stop_at:
            path, body, want = corpus[rng.randrange(len(corpus))]
            counts["sent"] += 1
            counts["hostile" if want is None else "good"] += 1
            try:
                if connection is None:
                    connection = await asyncio.open_connection("127.0.0.1", port)
                status, payload = await asyncio.wait_for(_send(*connection, path, body), 120)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
                if connection is not None:
                    connection[1].close()
                connection = None
                counts["lost"] += 1
                continue
            statuses[status] = statuses.get(status, 0) + 1
            if status >= 500:
                counts["5xx"] += 1
                if status == 503:
                    counts["shed_503"] += 1
            elif want is None:
                if 400 <= status < 500:
                    counts["hostile_refused"] += 1
                else:
                    counts["wrong"] += 1
            elif status == 200 and _close(json.loads(payload), want):
                counts["verified"] += 1
            else:
                counts["wrong"] += 1
                if len(wrong_examples) < 5:
                    wrong_examples.append(f"{status} {path} {body[:80]!r} -> {payload[:160]!r}")
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    return {**counts, "statuses": statuses, "wrong_examples": wrong_examples}


def _start(bundles: list[Path], threads: int | None, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, int]:
    """``distilrt serve`` on all bundles at fp32 on an ephemeral port; returns the process and its port."""
    return _start_server(bundles, ["--precision", "fp32", "--provider", "cpu", *extra], threads)


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, action="append", help="a bundle per task (all four tasks)")
    parser.add_argument("--tiny", action="store_true", help="export tiny seeded stand-ins of the four tasks")
    parser.add_argument("--work", type=Path, default=Path("/tmp/distilrt-soak"))
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--corpus", type=int, default=400, help="good requests in the corpus (default: 400)")
    parser.add_argument("--hostile-share", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from distilrt.runtime import pipeline
    from distilrt.runtime.manifest import Manifest

    bundles = _tiny_bundles(args.work) if args.tiny else list(args.bundle or [])
    manifests = {Manifest.read(b).task: (b, Manifest.read(b)) for b in bundles}
    if set(manifests) != set(TINY):
        parser.error(f"need one bundle per task ({', '.join(TINY)}); got {', '.join(manifests) or 'none'}")
    names = {task: m.name for task, (_, m) in manifests.items()}
    mask = "<mask>" if manifests["fill-mask"][1].model_type == "roberta" else "[MASK]"
    pipes = {task: pipeline(task, model=b, precision="fp32", provider="cpu") for task, (b, _) in manifests.items()}
    rng = random.Random(0)
    corpus: list[tuple[str, bytes, Any]] = []
    for i in range(args.corpus):
        task = list(TINY)[i % 4]
        body, call = _good(task, rng, mask)
        corpus.append((f"/models/{names[task]}", json.dumps(body).encode(), _expected(pipes, call)))
    hostile = round(args.corpus * args.hostile_share / (1 - args.hostile_share))
    for _ in range(hostile):
        name, body = _hostile(rng, names, mask)
        corpus.append((f"/models/{name}", body, None))
    logger.info("corpus: %d good requests (answers computed directly), %d hostile", args.corpus, hostile)

    proc, port = _start(bundles, args.threads)
    rss: list[tuple[float, float]] = []
    try:
        _wait_ready(port)
        started = time.monotonic()

        async def run() -> dict[str, Any]:
            async def sample() -> None:
                while True:
                    value = _rss_mb(proc.pid)
                    if value is not None:
                        rss.append((round(time.monotonic() - started, 1), round(value, 1)))
                    await asyncio.sleep(1.0)

            sampler = asyncio.ensure_future(sample())
            try:
                return await _soak(port, corpus, args.clients, args.seconds)
            finally:
                sampler.cancel()

        result = asyncio.run(run())
        elapsed = time.monotonic() - started
    finally:
        stop_server(proc)
    report = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": _machine(),
              "settings": {"clients": args.clients, "seconds": args.seconds, "corpus_good": args.corpus,
                           "corpus_hostile": hostile, "bundles": {t: n for t, n in names.items()},
                           "tiny": args.tiny}, "elapsed_s": round(elapsed, 1), "result": result, "rss_mb": rss}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_soak.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "serve_soak.md").write_text(_markdown(report))
    logger.info("%s", json.dumps({k: v for k, v in result.items() if k != "wrong_examples"}))
    logger.info("RSS MB (first, max, last): %s", (rss[0][1], max(r for _, r in rss), rss[-1][1]) if rss else None)
    return 0


def _markdown(report: dict[str, Any]) -> str:
    r, s, m = report["result"], report["settings"], report["machine"]
    curve = report["rss_mb"][:: max(1, len(report["rss_mb"]) // 12)]
    return "\n".join([
        f"# distilrt serve soak: {s['clients']} clients x {s['seconds']:g} s, four tasks, hostile requests mixed in", "",
        f"{report['created']}; {m['cpu']}, {m['logical_cores']} logical cores; load average before "
        f"{m.get('load_average_before')}; bundles {s['bundles']} (tiny={s['tiny']}, fp32).", "",
        f"Corpus: {s['corpus_good']} good requests, {s['corpus_hostile']} hostile.", "",
        "| sent | good | verified | wrong | lost | 5xx | 503 shed | hostile | hostile refused 4xx |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r['sent']} | {r['good']} | {r['verified']} | {r['wrong']} | {r['lost']} | {r['5xx']} | {r['shed_503']} "
        f"| {r['hostile']} | {r['hostile_refused']} |", "",
        f"Statuses: {r['statuses']}", "",
        "Server RSS (s -> MB): " + ", ".join(f"{t:g}->{v:g}" for t, v in curve), "",
    ])


if __name__ == "__main__":
    sys.exit(main())
