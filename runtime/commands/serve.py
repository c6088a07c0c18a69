"""distilrt serve BUNDLE [BUNDLE ...]: an HTTP inference service with dynamic batching."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os

from ..engines.choose import PRECISION_CHOICES, PROVIDER_CHOICES
from ..serve.config import ServeSettings
from ._common import non_negative_float, positive_float, positive_int

HELP = "serve bundles over HTTP (Hugging Face Inference API and OpenAI embeddings routes, dynamic batching)"
DESCRIPTION = """\
Serve one or more bundles over HTTP, each under the name in its manifest.

Routes:
  POST /models/NAME     Hugging Face Inference API (huggingface_hub.InferenceClient(model="http://HOST:PORT/models/NAME"))
  POST /v1/embeddings   OpenAI embeddings (openai.OpenAI(base_url="http://HOST:PORT/v1")), feature-extraction bundles
  GET  /v1/models       OpenAI model list
  GET  /health /ready /metrics   liveness, readiness (loaded and warmed up), Prometheus metrics

Concurrent requests for a model are batched together for up to --max-wait-ms or --max-batch-size inputs.
Needs the serve extra: pip install 'distilrt[serve]'.
"""


#: The bounds of the service (positive integers), each the ServeSettings field of the same name (and its default).
LIMITS = {
    "max_batch_size": "most inputs per model call; 1 turns dynamic batching off",
    "max_queue": "requests waiting per model before answering 503",
    "max_body_bytes": "largest request body; bigger ones get 413",
    "max_inputs_per_request": "most inputs in one request",
    "max_input_tokens": "most tokens in one request, counting every question-answering window; more gets 413 before "
                        "any model time",
    "max_batch_tokens": "most tokens in one coalesced batch (default: 16384, or --max-input-tokens if larger)",
    "large_request_tokens": "requests above this many tokens wait in their own lane, taking turns with small ones "
                            "(default: the model's maximum sequence length)",
    "max_masks_per_input": "fill-mask: most mask tokens in one input",
    "max_fill_predictions": "fill-mask: most predictions (masks x top_k) in one request",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundles", nargs="+", metavar="MODEL",
                        help="bundle directories or model ids to serve (ids resolve as in `distilrt info`)")
    parser.add_argument("--revision", default=None, help="hub revision for model ids (branch, tag or commit)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default: 8000; 0 picks a free one)")
    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES,
                        help="variant to run (default: auto, what `distilrt tune` chose here or the best for the "
                             "provider; bf16 runs on OpenVINO)")
    parser.add_argument("--provider", default="auto", choices=PROVIDER_CHOICES,
                        help="ONNX Runtime execution provider, or openvino (default: auto)")
    parser.add_argument("--threads", type=positive_int, default=None, help="intra-op threads per model")
    parser.add_argument("--max-wait-ms", type=non_negative_float, default=5.0,
                        help="how long a request may wait for others to join its batch (default: 5)")
    parser.add_argument("--pipeline-batch-size", type=positive_int, default=8,
                        help="sequences per ONNX Runtime run inside a coalesced batch, length-sorted to limit padding "
                             "(default: 8, best measured on CPU; raise it on GPU)")
    defaults = {f.name: f.default for f in dataclasses.fields(ServeSettings)}
    for name, text in LIMITS.items():
        default = defaults[name]
        parser.add_argument("--" + name.replace("_", "-"), type=positive_int, default=default,
                            help=text if default is None else f"{text} (default: {default})")
    parser.add_argument("--api-key-env", metavar="VAR", default=None,
                        help="require 'Authorization: Bearer <key>' with the key read from environment variable VAR")
    parser.add_argument("--header-timeout", type=positive_float, default=10.0,
                        help="seconds a connection gets to send a request's headers before it is closed (default: 10)")
    parser.add_argument("--body-timeout", type=positive_float, default=30.0,
                        help="seconds a request gets to send its whole body; slower ones get 408 (default: 30)")
    parser.add_argument("--graceful-timeout", type=non_negative_float, default=30.0,
                        help="seconds in-flight requests get to finish after SIGTERM (default: 30)")


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError, require_extra
    from ..validation import check_threads

    require_extra("serve", ("fastapi", "uvicorn"), feature="distilrt serve")

    from ..serve.server import bundle_model, serve

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise InputError(f"--api-key-env {args.api_key_env}: that environment variable is unset or empty; "
                             f"export {args.api_key_env}=<key> before starting the server")
    check_threads(args.threads)
    try:
        settings = ServeSettings(host=args.host, port=args.port, max_wait_ms=args.max_wait_ms,
                                 **{name: getattr(args, name) for name in LIMITS},
                                 api_key=api_key, graceful_timeout_s=args.graceful_timeout,
                                 header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    from ..resolve import resolve_model

    models = [bundle_model(resolve_model(b, revision=args.revision).path, precision=args.precision,
                           provider=args.provider, threads=args.threads, batch_size=args.pipeline_batch_size)
              for b in args.bundles]
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"several bundles are named {', '.join(duplicates)}; serve each name once")
    level = logging.getLogger().getEffectiveLevel()
    log_level = "debug" if level <= logging.DEBUG else "info"
    return serve(models, settings, log_level=log_level)
