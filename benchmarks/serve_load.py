"""Load generator for ``distilrt serve``: throughput and p50/p99 latency, dynamic batching on and off.

Starts ``distilrt serve BUNDLE`` on 127.0.0.1 (ephemeral port) once per batching mode, then runs a
closed loop at each concurrency level: C clients, each with its own keep-alive connection, send the
next request as soon as the previous answer arrives, for a fixed time (bounded also by a request cap).
Texts are a fixed, seeded mix of short and long inputs.  Client and server share the machine, so the
figures include the client's cost; they compare settings on one machine, not machines.

    python -m distilrt.benchmarks.serve_load --bundle BUNDLE_DIR [--concurrency 1 4 16 64] [--seconds 8]
    python -m distilrt.benchmarks.serve_load --model minilm-embed    # a bundle of distilrt bench's models

Writes benchmarks/results/serve_load-<model>.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from distilrt.runtime.hostinfo import cpu_info, package_versions
from distilrt.runtime.readiness import wait_until_ok

logger = logging.getLogger("serve_load")

RESULTS = Path("benchmarks/results")
WORDS = ("the model answers questions about documents and ranks passages for search while the service "
         "keeps latency low under load with dynamic batching of concurrent requests on one machine").split()
MODES = {"batching on": [], "batching off": ["--max-batch-size", "1"]}


def _texts(count: int, seed: int = 0) -> list[str]:
    """Seeded mix of lengths: mostly short (4-24 words), some long (60-120 words)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.randint(60, 120) if rng.random() < 0.2 else rng.randint(4, 24)
        out.append(" ".join(rng.choice(WORDS) for _ in range(n)))
    return out


def _bodies(task: str, mask_token: str, count: int) -> list[bytes]:
    texts = _texts(count)
    bodies: list[Any] = []
    for i, text in enumerate(texts):
        if task == "question-answering":
            bodies.append({"inputs": {"question": "What keeps latency low?", "context": text}})
        elif task == "fill-mask":
            words = text.split()
            words[len(words) // 2] = mask_token
            bodies.append({"inputs": " ".join(words)})
        else:
            bodies.append({"inputs": text})
    return [json.dumps(b).encode() for b in bodies]


async def post_json(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes, *,
                    host: str = "127.0.0.1", reconnect_on_close: bool = False) -> tuple[int, bytes]:
    """One HTTP/1.1 POST on a keep-alive connection: (status, body).  With ``reconnect_on_close``, an answer
    carrying ``Connection: close`` raises ConnectionResetError after its body is read, so the caller reconnects."""
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    payload = await reader.readexactly(int(match.group(1))) if match else b""
    if reconnect_on_close and re.search(rb"(?i)\r\nconnection:\s*close", head):
        raise ConnectionResetError("server closed the connection")
    return status, payload


async def closed_loop(port: int, path: str, bodies: list[bytes], concurrency: int, seconds: float,
                      max_requests: int, *, check: Callable[[int, bytes], bool] | None = None) -> dict[str, Any]:
    """``concurrency`` keep-alive clients POST ``bodies`` in turn for ``seconds`` (at most ``max_requests``).

    With ``check(index, payload)``, every 200 answer is checked against what body ``index`` should get and
    counted as verified or wrong.
    """
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    verified = wrong = 0
    counter = iter(range(max_requests))
    stop_at = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        nonlocal verified, wrong
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for n in counter:
                if time.perf_counter() >= stop_at:
                    break
                index = (n + offset) % len(bodies)
                started = time.perf_counter()
                status, payload = await post_json(reader, writer, path, bodies[index], host=f"127.0.0.1:{port}")
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200 and check is not None:
                    if check(index, payload):
                        verified += 1
                    else:
                        wrong += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(client(i * 7) for i in range(concurrency))), seconds + 180)
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000 if latencies else float("nan")

    ok = statuses.get(200, 0)
    return {"concurrency": concurrency, "requests": len(latencies), "ok": ok, "errors": len(latencies) - ok,
            "verified": verified, "wrong": wrong, "statuses": statuses, "seconds": round(elapsed, 3),
            "throughput_rps": round(ok / elapsed, 2), "p50_ms": round(pct(50), 2), "p99_ms": round(pct(99), 2),
            "mean_ms": round(sum(latencies) / len(latencies) * 1000, 2) if latencies else None}


def _start_server(bundle: Path | Sequence[Path], extra: Sequence[str], threads: int | None) -> tuple[subprocess.Popen, int]:
    """``distilrt serve`` on one or several bundles on an ephemeral port; returns the process and its port."""
    bundles = [bundle] if isinstance(bundle, Path) else list(bundle)
    cmd = [sys.executable, "-m", "distilrt.runtime.cli", "serve", *map(str, bundles), "--port", "0",
           "--max-queue", "4096", *extra] + (["--threads", str(threads)] if threads else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        match = re.search(r"running on http://127\.0\.0\.1:(\d+)", line)
        if match:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, int(match.group(1))
    proc.kill()
    raise RuntimeError("server did not start within 300 s")


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM (the server drains, as in production), then kill if it has not exited within 60 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()


def _wait_ready(port: int, timeout_s: float = 300) -> None:
    if not wait_until_ok(f"http://127.0.0.1:{port}/ready", timeout_s=timeout_s):
        raise RuntimeError("server never became ready")


def _machine() -> dict[str, Any]:
    versions = {"python": platform.python_version(),
                **package_versions(("distilrt", "onnxruntime", "tokenizers", "numpy", "fastapi", "uvicorn", "starlette"))}
    return {"cpu": cpu_info()[0], "logical_cores": os.cpu_count(), "os": platform.platform(), "versions": versions,
            "load_average_before": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def _markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    m = report["machine"]
    lines = [f"# distilrt serve load test: {report['model']} ({report['task']})", "",
             f"{report['created']}; {m['cpu']}, {m['logical_cores']} logical cores; {m['os']}", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()), "",
             f"Settings: closed loop, {s['seconds']} s per point (cap {s['max_requests']} requests), "
             f"precision {s['precision']}, provider {s['provider']}, threads {s['threads'] or 'default'}; "
             f"--pipeline-batch-size {s['pipeline_batch_size']}; "
             f"batching on = --max-batch-size {s['max_batch_size']} --max-wait-ms {s['max_wait_ms']}, "
             "batching off = --max-batch-size 1. Client and server share the machine (loopback).", "",
             f"Load: {s['bodies']} seeded texts, 80% 4-24 words, 20% 60-120 words. {report['weights']}", "",
             f"Load average before the run: {m.get('load_average_before')} (other work on the machine skews figures).",
             "",
             "| mode | concurrency | throughput (req/s) | p50 (ms) | p99 (ms) | requests | non-200 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for mode, rows in report["results"].items():
        for r in rows:
            bad = r["requests"] - r["ok"]
            lines.append(f"| {mode} | {r['concurrency']} | {r['throughput_rps']:.1f} | {r['p50_ms']:.1f} | "
                         f"{r['p99_ms']:.1f} | {r['requests']} | {bad} |")
    return "\n".join(lines) + "\n"


def load_arguments(parser: argparse.ArgumentParser, *, concurrency: list[int], seconds: float,
                   max_requests: int) -> None:
    """The options of every closed-loop load benchmark: what to serve, the clients, the server's batching."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bundle", type=Path, help="bundle directory to serve")
    source.add_argument("--model", help="a model of distilrt bench (built and cached on first use)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=concurrency)
    parser.add_argument("--seconds", type=float, default=seconds, help=f"duration of each point (default: {seconds:g})")
    parser.add_argument("--max-requests", type=int, default=max_requests,
                        help=f"cap per point (default: {max_requests})")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)


def load_workload(args: argparse.Namespace) -> tuple[Path, Any, list[bytes], str | None]:
    """(bundle, its manifest, 200 seeded request bodies, the weights' label when --model built it)."""
    from distilrt.runtime.manifest import Manifest

    bundle, label = args.bundle, None
    if args.model:
        from .models import DEFAULT_WORK_DIR, MODELS, bundle_dir

        spec = MODELS[args.model]
        bundle, label = bundle_dir(spec, DEFAULT_WORK_DIR, progress=logger.info), spec.label
    manifest = Manifest.read(bundle)
    mask = "<mask>" if manifest.model_type in ("roberta", "xlm-roberta") else "[MASK]"
    return Path(bundle), manifest, _bodies(manifest.task, mask, 200), label


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    load_arguments(parser, concurrency=[1, 4, 16, 64], seconds=8.0, max_requests=20000)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--provider", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--pipeline-batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the .json and .md (default: %(default)s)")
    parser.add_argument("--weights-note", default=None, help="what the bundle's weights are, for the report")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    bundle, manifest, bodies, label = load_workload(args)
    weights = f"Weights: {label or args.weights_note or 'as in the bundle'}."
    report: dict[str, Any] = {
        "model": manifest.name, "task": manifest.task, "weights": weights,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": _machine(),
        "settings": {"seconds": args.seconds, "max_requests": args.max_requests, "precision": args.precision,
                     "provider": args.provider, "threads": args.threads, "max_batch_size": args.max_batch_size,
                     "pipeline_batch_size": args.pipeline_batch_size,
                     "max_wait_ms": args.max_wait_ms, "concurrency": args.concurrency, "bodies": len(bodies)},
        "results": {},
    }
    path = f"/models/{manifest.name}"
    for mode, extra in MODES.items():
        flags = extra or ["--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms)]
        proc, port = _start_server(bundle, flags + ["--precision", args.precision, "--provider", args.provider,
                                                    "--pipeline-batch-size", str(args.pipeline_batch_size)],
                                   args.threads)
        try:
            _wait_ready(port)
            asyncio.run(closed_loop(port, path, bodies, 4, 1.0, 500))  # warm the connections and caches
            rows = []
            for c in args.concurrency:
                row = asyncio.run(closed_loop(port, path, bodies, c, args.seconds, args.max_requests))
                logger.info("%-12s c=%-3d %7.1f req/s  p50 %7.1f ms  p99 %7.1f ms  (%d requests, statuses %s)",
                            mode, c, row["throughput_rps"], row["p50_ms"], row["p99_ms"], row["requests"],
                            row["statuses"])
                rows.append(row)
            report["results"][mode] = rows
        finally:
            stop_server(proc)
    write_report(args.out / f"serve_load-{manifest.name}", report, _markdown(report))
    return 0


def write_report(stem: Path, report: dict[str, Any], markdown: str) -> None:
    """``stem``.json (the figures) and ``stem``.md (their table), creating the folder."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    logger.info("wrote %s.json and .md", stem)


if __name__ == "__main__":
    sys.exit(main())
