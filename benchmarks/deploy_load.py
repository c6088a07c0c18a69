"""One workload against ``distilrt serve``, Triton (python backend) and Ray Serve, side by side.

Each system serves the same bundle at fp32 on 127.0.0.1 and gets the same closed loop: C clients, each
on its own keep-alive connection, send the next request when the previous answer arrives, for a fixed
time (and at most a request cap).  Every answer is checked against the direct pipeline's answer to that
body (fp32: answers do not depend on batch mates), so the table counts verified answers, not just 200s.
Client and server share the machine; the figures compare systems on one machine, not machines.

    python -m distilrt.benchmarks.deploy_load --bundle BUNDLE [--concurrency 64] [--seconds 10]
    python -m distilrt.benchmarks.deploy_load --model minilm-embed

Systems: serve (one process, --threads = cores), triton (tritonserver from the nvidia-pytriton wheel, one
python-backend instance with --threads = cores), triton-instances (one instance per core, one thread
each), ray (a local Ray instance, one replica per core, one thread each).  Writes benchmarks/results/deploy_load-<model>.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .serve_load import (_machine, _start_server, _wait_ready, closed_loop, load_arguments, load_workload, stop_server,
                         write_report)

logger = logging.getLogger("deploy_load")

RESULTS = Path("benchmarks/results")
TOLERANCE = 1e-4


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in b)
    if isinstance(b, list):
        return isinstance(a, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(b, float):
        return isinstance(a, (int, float)) and math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    return a == b


def _expected(bundle: Path, bodies: list[bytes]) -> list[Any]:
    """The direct pipeline's answer to each body, shaped as the HTTP API answers it (serve's own handler)."""
    from distilrt.runtime.deploy.requests import RequestRunner, served_model

    model = served_model(bundle, precision="fp32", provider="cpu")
    model.load()
    runner = RequestRunner(model)
    return [json.loads(runner.run([b])[0].body or b"null") for b in bodies]


def _run_points(port: int, path: str, bodies: list[bytes], expected: list[Any], decode: Callable[[bytes], Any],
                args: argparse.Namespace, system: str) -> list[dict[str, Any]]:
    asyncio.run(closed_loop(port, path, bodies, 4, 1.0, 200))  # warm connections and caches
    rows = []
    for c in args.concurrency:
        row = asyncio.run(closed_loop(port, path, bodies, c, args.seconds, args.max_requests,
                                      check=lambda i, payload: _same(decode(payload), expected[i])))
        logger.info("%-6s c=%-3d %7.1f req/s  p50 %7.1f ms  p99 %7.1f ms  %d requests, %d verified, %d errors",
                    system, c, row["throughput_rps"], row["p50_ms"], row["p99_ms"], row["requests"], row["verified"],
                    row["errors"])
        rows.append(row)
    return rows


def run_serve(bundle: Path, name: str, bodies: list[bytes], expected: list[Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    proc, port = _start_server(bundle, ["--precision", "fp32", "--provider", "cpu", "--max-batch-size",
                                        str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms)], os.cpu_count())
    try:
        _wait_ready(port)
        return _run_points(port, f"/models/{name}", bodies, expected, json.loads, args, "serve")
    finally:
        stop_server(proc)


def _triton_body(body: bytes) -> bytes:
    return json.dumps({"inputs": [{"name": "REQUEST", "shape": [1, 1], "datatype": "BYTES",
                                   "data": [body.decode()]}]}).encode()


def _triton_answer(payload: bytes) -> Any:
    return json.loads(json.loads(payload)["outputs"][0]["data"][0])


def run_triton(bundle: Path, name: str, bodies: list[bytes], expected: list[Any], args: argparse.Namespace, *,
               instances: int = 1) -> list[dict[str, Any]]:
    from distilrt.runtime.deploy.triton import TritonOptions, write_triton_repository
    from distilrt.runtime.deploy.triton_local import local_triton

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="distilrt-triton-") as tmp:
        options = TritonOptions(max_batch_size=args.max_batch_size, max_queue_delay_us=int(args.max_wait_ms * 1000),
                                precision="fp32", provider="cpu", threads=max(1, cores // instances),
                                instances=instances, link=True)
        write_triton_repository([bundle], Path(tmp) / "repo", options=options)
        with local_triton(Path(tmp) / "repo", Path(tmp) / "work", timeout_s=300) as server:
            return _run_points(server.http_port, f"/v2/models/{name}/infer", [_triton_body(b) for b in bodies],
                               expected, _triton_answer, args, f"triton x{instances}")


def run_ray(bundle: Path, name: str, bodies: list[bytes], expected: list[Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    import ray
    from ray import serve

    from distilrt.runtime.deploy.ray_serve import RayOptions, start_ray
    from distilrt.runtime.deploy.triton_local import free_port

    cores = os.cpu_count() or 1
    port = free_port()
    ray.init(num_cpus=cores, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="WARNING",
             log_to_driver=False)
    try:
        start_ray([bundle], RayOptions(replicas=cores, num_cpus=1, threads=1, precision="fp32",
                                       max_batch_size=args.max_batch_size,
                                       batch_wait_timeout_s=args.max_wait_ms / 1000), port=port)
        _wait_ready(port)
        return _run_points(port, f"/models/{name}", bodies, expected, json.loads, args, "ray")
    finally:
        serve.shutdown()
        ray.shutdown()


SYSTEMS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "serve": run_serve,
    "triton": run_triton,
    # one python-backend instance (a stub process) per core, one thread each: the same split as ray's replicas
    "triton-instances": lambda *a: run_triton(*a, instances=os.cpu_count() or 1),
    "ray": run_ray,
}


def _markdown(report: dict[str, Any]) -> str:
    s, m = report["settings"], report["machine"]
    lines = [f"# Scale-out load test: {report['model']} ({report['task']})", "",
             f"{report['created']}; {m['cpu']}, {m['logical_cores']} logical cores; load average before "
             f"{m.get('load_average_before')}", "",
             f"Closed loop, {s['seconds']} s per point (cap {s['max_requests']}), {s['bodies']} seeded bodies, fp32, "
             f"batches of up to {s['max_batch_size']} with {s['max_wait_ms']} ms wait. serve: 1 process x "
             f"{m['logical_cores']} threads; triton: 1 python-backend instance x {m['logical_cores']} threads; "
             f"triton-instances: {m['logical_cores']} instances x 1 thread; ray: {m['logical_cores']} replicas x 1 "
             "thread. Client and server share the machine.", "",
             "| system | clients | requests | verified | errors | throughput (req/s) | p50 (ms) | p99 (ms) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for system, rows in report["results"].items():
        for r in rows:
            lines.append(f"| {system} | {r['concurrency']} | {r['requests']} | {r['verified']} | {r['errors']} | "
                         f"{r['throughput_rps']} | {r['p50_ms']} | {r['p99_ms']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    load_arguments(parser, concurrency=[64], seconds=10.0, max_requests=5000)
    parser.add_argument("--systems", nargs="+", choices=sorted(SYSTEMS), default=list(SYSTEMS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    bundle, manifest, bodies, _ = load_workload(args)
    expected = _expected(Path(bundle), bodies)
    report: dict[str, Any] = {
        "model": manifest.name, "task": manifest.task, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(), "results": {},
        "settings": {"seconds": args.seconds, "max_requests": args.max_requests, "max_batch_size": args.max_batch_size,
                     "max_wait_ms": args.max_wait_ms, "concurrency": args.concurrency, "bodies": len(bodies)}}
    for system in args.systems:
        report["results"][system] = SYSTEMS[system](Path(bundle), manifest.name, bodies, expected, args)
    write_report(args.out / f"deploy_load-{manifest.name}", report, _markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
