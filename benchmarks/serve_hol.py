"""Head-of-line blocking in ``distilrt serve``: small requests while large QA requests flood one model.

Serves one question-answering bundle twice, with the large-request lane (the default) and without it
(``--large-request-tokens`` above any request), and runs the same closed loop against each: ``--large``
clients send QA requests with contexts of about ``--context-words`` words (many windows each), ``--small``
clients send one-window QA requests.  Reports the small requests' latency (p50, p99) and both kinds'
throughput, so the lane's effect is a ratio measured on one machine.

    python -m distilrt.benchmarks.serve_hol --bundle QA_BUNDLE [--seconds 20]

Writes benchmarks/results/serve_hol.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .serve_load import RESULTS, WORDS, _machine, _wait_ready, stop_server
from .serve_soak import _send, _start

logger = logging.getLogger("serve_hol")
MODES = {"lane on (default)": (), "lane off": ("--large-request-tokens", "100000000")}


async def _loop(port: int, path: str, bodies: dict[str, bytes], clients: dict[str, int], seconds: float) -> dict:
    latencies: dict[str, list[float]] = {kind: [] for kind in clients}
    statuses: dict[str, dict[int, int]] = {kind: {} for kind in clients}
    stop_at = time.perf_counter() + seconds

    async def client(kind: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                status, _ = await _send(reader, writer, path, bodies[kind])
                latencies[kind].append(time.perf_counter() - started)
                statuses[kind][status] = statuses[kind].get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(kind) for kind, count in clients.items() for _ in range(count)))
    elapsed = time.perf_counter() - started
    out: dict[str, Any] = {}
    for kind, values in latencies.items():
        values.sort()

        def pct(p: float) -> float:
            return round(values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000, 1) if values else float("nan")

        out[kind] = {"requests": len(values), "rps": round(len(values) / elapsed, 2), "p50_ms": pct(50),
                     "p99_ms": pct(99), "statuses": statuses[kind]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True, help="a question-answering bundle")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--large", type=int, default=4, help="clients sending long contexts (default: 4)")
    parser.add_argument("--small", type=int, default=8, help="clients sending one-window requests (default: 8)")
    parser.add_argument("--context-words", type=int, default=2500)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from distilrt.runtime.manifest import Manifest

    name = Manifest.read(args.bundle).name
    long_context = " ".join(WORDS[i % len(WORDS)] for i in range(args.context_words))
    bodies = {"large": json.dumps({"inputs": {"question": "What keeps latency low?", "context": long_context}}).encode(),
              "small": json.dumps({"inputs": {"question": "What keeps latency low?",
                                              "context": " ".join(WORDS[:30])}}).encode()}
    results = {}
    for mode, extra in MODES.items():
        proc, port = _start([args.bundle], None, extra)
        try:
            _wait_ready(port)
            results[mode] = asyncio.run(_loop(port, f"/models/{name}", bodies,
                                              {"large": args.large, "small": args.small}, args.seconds))
            logger.info("%s: %s", mode, json.dumps(results[mode]))
        finally:
            stop_server(proc)
    report = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": _machine(),
              "settings": vars(args) | {"bundle": str(args.bundle), "out": str(args.out)}, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_hol.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    lines = [f"# Head-of-line: {args.small} small vs {args.large} large QA clients ({args.context_words}-word contexts), "
             f"{args.seconds:g} s per mode, bundle {name}", "",
             f"{report['created']}; load average before {report['machine'].get('load_average_before')}", "",
             "| mode | small p50 (ms) | small p99 (ms) | small req/s | large p50 (ms) | large req/s |",
             "|---|---:|---:|---:|---:|---:|"]
    for mode, r in results.items():
        lines.append(f"| {mode} | {r['small']['p50_ms']} | {r['small']['p99_ms']} | {r['small']['rps']} | "
                     f"{r['large']['p50_ms']} | {r['large']['rps']} |")
    (args.out / "serve_hol.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
