"""distilrt deploy triton|ray: hand bundles to an existing serving engine."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..engines.choose import PROVIDER_CHOICES
from ._common import non_negative_float, non_negative_int, positive_int

HELP = "deploy bundles on Triton Inference Server (model repository) or Ray Serve (replicated HTTP app)"
DESCRIPTION = """\
distilrt deploy triton BUNDLE [BUNDLE ...] --output REPO
    Write a Triton model repository.  --backend python (default) serves each bundle with distilrt's
    runtime inside Triton's python backend: tensor REQUEST (BYTES, a Hugging Face Inference API JSON body)
    in, RESPONSE (BYTES, the JSON distilrt serve answers) out, with Triton's dynamic batcher.  The server's
    Python needs `pip install 'distilrt[cpu]'` (GPU servers: 'distilrt[gpu]').  --backend onnxruntime writes the ONNX graph as an onnxruntime_onnx
    model plus a python-backend model that tokenizes, calls it (BLS) and post-processes (same interface).

distilrt deploy ray BUNDLE [BUNDLE ...] --replicas N --port P
    Run the bundles as a Ray Serve application speaking distilrt serve's HTTP API, with @serve.batch
    dynamic batching; each replica loads every bundle.  Needs the ray extra: pip install 'distilrt[ray]'.
    For a Serve config file: import_path distilrt.runtime.deploy.ray_serve:build_app, args {bundles: [...]}.
"""

def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="engine", metavar="ENGINE", required=True)

    triton = sub.add_parser("triton", help="write a Triton Inference Server model repository",
                            description="Write a Triton model repository serving the bundles.")
    triton.add_argument("bundles", type=Path, nargs="+", metavar="BUNDLE", help="bundle directories")
    triton.add_argument("--output", "-o", type=Path, required=True, metavar="REPO", help="model repository directory")
    triton.add_argument("--backend", default="python", choices=("python", "onnxruntime"),
                        help="python: distilrt's runtime inside Triton (default); onnxruntime: Triton runs the "
                             "ONNX graph, a python model does tokenization and post-processing")
    triton.add_argument("--max-batch-size", type=positive_int, default=32, help="Triton max_batch_size (default: 32)")
    triton.add_argument("--max-queue-delay-us", type=non_negative_int, default=2000,
                        help="dynamic batcher: longest a request waits for others (default: 2000)")
    triton.add_argument("--preferred-batch-size", type=positive_int, nargs="+", default=None, metavar="N",
                        help="dynamic batcher preferred sizes (default: powers of two up to --max-batch-size)")
    triton.add_argument("--instances", type=positive_int, default=1, help="model instances (default: 1)")
    triton.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "int8"),
                        help="bundle variant to serve (default: auto)")
    triton.add_argument("--provider", default="cpu", choices=PROVIDER_CHOICES,
                        help="cpu (default), cuda, tensorrt or openvino: where each instance runs")
    triton.add_argument("--threads", type=positive_int, default=None,
                        help="intra-op threads per instance (default: physical cores; set cores / --instances)")
    triton.add_argument("--link", action="store_true", help="symlink the bundles instead of copying them")
    triton.add_argument("--force", action="store_true", help="replace models of the same name in REPO")

    ray = sub.add_parser("ray", help="run the bundles as a Ray Serve application (distilrt serve's HTTP API)",
                         description="Run the bundles on Ray Serve with replicas and @serve.batch batching.")
    ray.add_argument("bundles", type=Path, nargs="+", metavar="BUNDLE", help="bundle directories")
    ray.add_argument("--replicas", type=positive_int, default=1, help="replicas (default: 1)")
    ray.add_argument("--max-batch-size", type=positive_int, default=32, help="@serve.batch max_batch_size (default: 32)")
    ray.add_argument("--batch-wait-timeout-s", type=non_negative_float, default=0.005,
                     help="@serve.batch batch_wait_timeout_s (default: 0.005)")
    ray.add_argument("--num-cpus", type=float, default=None,
                     help="CPUs reserved per replica (default: cores / replicas)")
    ray.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per replica (default: 0)")
    ray.add_argument("--threads", type=positive_int, default=None,
                     help="intra-op threads per replica (default: its --num-cpus, at least 1)")
    ray.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "int8"))
    ray.add_argument("--provider", default="cpu", choices=PROVIDER_CHOICES)
    ray.add_argument("--host", default="127.0.0.1", help="HTTP address (default: 127.0.0.1)")
    ray.add_argument("--port", type=int, default=8000, help="HTTP port (default: 8000)")
    ray.add_argument("--address", default=None,
                     help="Ray cluster to join (default: start a local Ray instance)")


def run(args: argparse.Namespace) -> int:
    if args.engine == "triton":
        return _run_triton(args)
    return _run_ray(args)


def _run_triton(args: argparse.Namespace) -> int:
    from ..deploy.triton import TritonOptions, describe_repository, write_triton_repository

    options = TritonOptions(backend=args.backend, max_batch_size=args.max_batch_size,
                            max_queue_delay_us=args.max_queue_delay_us,
                            preferred_batch_sizes=tuple(args.preferred_batch_size or ()), instances=args.instances,
                            precision=args.precision, provider=args.provider, threads=args.threads, link=args.link)
    models = write_triton_repository(args.bundles, args.output, options=options, force=args.force)
    if args.backend == "onnxruntime":
        from ..deploy.triton_onnx import validate_repository

        for problem in validate_repository(args.output, require_protobuf=False):
            logging.getLogger(__name__).warning("%s", problem)
    for line in describe_repository(models):
        print(json.dumps(line))
    print(f"tritonserver --model-repository={args.output.resolve()}")
    return 0


def _run_ray(args: argparse.Namespace) -> int:
    from ..deploy.ray_serve import RayOptions, run_ray

    options = RayOptions(replicas=args.replicas, max_batch_size=args.max_batch_size,
                         batch_wait_timeout_s=args.batch_wait_timeout_s, num_cpus=args.num_cpus,
                         num_gpus=args.num_gpus, threads=args.threads, precision=args.precision,
                         provider=args.provider)
    return run_ray([str(b) for b in args.bundles], options, host=args.host, port=args.port, address=args.address)
