"""The GPU check: the one command to run on a new GPU host (``python scripts/gpu_check.py``).

It prints a table and writes JSON: the providers and versions (onnxruntime, CUDA, cuDNN, TensorRT);
then, for one full-size DistilBERT-QA stand-in and MiniLM, on CUDA fp32 / fp16 and TensorRT fp16 / int8
(each built by ``distilrt.runtime.pipeline``, as users get it): which nodes run on which provider,
parity with CPU fp32 on a fixed text set (max abs diff of the raw outputs, top-1 agreement), session
latency p50 / p99 at 1x128, 8x128, 32x128 and 1x384 with IO binding on and off, and for TensorRT the
engine build time, a second load from the engine cache, and that a new sequence length inside the
profile builds no new engine.  A row that cannot run says why; nothing here exits non-zero for a
missing GPU, so on a CPU machine it finishes in seconds with every GPU row skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .gpuenv import CUDA as CUDA  # re-exported: the check's callers name the providers through this module
from .gpuenv import SYSTEMS, environment, system_reasons

logger = logging.getLogger(__name__)

SHAPES: tuple[tuple[int, int], ...] = ((1, 128), (8, 128), (32, 128), (1, 384))
MODELS: tuple[str, ...] = ("distilbert-qa", "minilm-embed")
QA_TEXTS: tuple[tuple[str, str], ...] = (
    ("Who wrote the report?", "The annual report was written by Maria Lopez, the head of finance, in March."),
    ("Where is the museum?", "The museum of modern art stands near the old river bridge in the city centre."),
    ("When did the bridge open?", "Construction began in 1931 and the bridge opened to traffic in May 1937."),
    ("What does the enzyme break down?", "Lactase is an enzyme that breaks down lactose, the sugar found in milk."),
    ("How many moons does Mars have?", "Mars has two small moons, Phobos and Deimos, discovered in 1877."),
    ("What is the capital of Kenya?", "Nairobi is the capital and largest city of Kenya, in East Africa."),
    ("Who painted the ceiling?", "Michelangelo painted the ceiling of the Sistine Chapel between 1508 and 1512."),
    ("What powers the device?", "The sensor runs on a coin cell battery that lasts for about two years."),
)
SENTENCES: tuple[str, ...] = (
    "The cat sat on the warm windowsill.", "Stock markets fell sharply on Tuesday.",
    "A quick brown fox jumps over the lazy dog.", "The recipe needs two cups of flour and an egg.",
    "Rain is expected across the north tomorrow.", "She plays the violin in the city orchestra.",
    "The update fixes a bug in the login screen.", "Glaciers are retreating faster than predicted.",
)



def feeds_for(task: Any, model: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The fixed text set as the task's session takes it, and its attention mask."""
    from distilrt.runtime.batching import pad_batch

    tokenizer = task.tokenizer
    encodings = (tokenizer.encode_pairs(list(QA_TEXTS)) if model == "distilbert-qa"
                 else tokenizer.encode(list(SENTENCES)))
    feeds = pad_batch(encodings, pad_id=tokenizer.pad_id, input_names=task.session.input_names,
                      dtypes=task.session.input_dtypes)
    return feeds, feeds["attention_mask"]


def parity(got: dict[str, np.ndarray], want: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, Any]:
    """Max abs diff per output over real tokens; top-1 agreement of each row's argmax (QA logits) or
    cosine of mean-pooled states (hidden states)."""
    figures: dict[str, Any] = {"max_abs_diff": {}}
    valid = mask.astype(bool)
    for name, ref in want.items():
        value = got[name]
        if value.ndim == 2:  # (batch, seq) logits
            figures["max_abs_diff"][name] = float(np.abs(value - ref)[valid].max())
            pick = np.where(valid, value, -np.inf).argmax(1) == np.where(valid, ref, -np.inf).argmax(1)
            figures.setdefault("top1_agreement", {})[name] = float(pick.mean())
        else:  # (batch, seq, hidden)
            figures["max_abs_diff"][name] = float(np.abs(value - ref)[valid].max())
            weights = valid[..., None].astype(np.float32)
            a, b = (value * weights).sum(1), (ref * weights).sum(1)
            cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
            figures["cosine_min"] = float(cosine.min())
    return figures


def placement(task: Any, feeds: dict[str, np.ndarray]) -> dict[str, int]:
    """Nodes that ran on each provider, from ONNX Runtime's profiler, in a session built like the task's."""
    from distilrt.runtime.engines.onnxruntime import create_session, session_options

    session = task.session
    with tempfile.TemporaryDirectory(prefix="gpucheck-") as tmp:
        options = session_options(session.settings)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        profiled = create_session(session.path, session.settings, plan=session.plan, options=options)
        profiled.run(None, feeds)
        events = json.loads(Path(profiled.end_profiling()).read_text())
    nodes: dict[str, set[str]] = {}
    for event in events:
        args = event.get("args") or {}
        if event.get("cat") == "Node" and "provider" in args:
            nodes.setdefault(args["provider"], set()).add(event["name"].rsplit("_kernel_time", 1)[0])
    return {provider: len(names) for provider, names in sorted(nodes.items())}


def latency(task: Any, *, vocab_size: int, seconds: float, shapes: tuple[tuple[int, int], ...] = SHAPES
            ) -> dict[str, Any]:
    """Session p50 / p99 (ms) at each shape, IO binding on and off."""
    from .timing import time_calls

    session = task.session
    rng = np.random.default_rng(0)
    found: dict[str, Any] = {}
    bound = session.io_binding
    try:
        for batch, seq in shapes:
            ids = rng.integers(1000, max(1001, vocab_size - 1), (batch, seq), dtype=np.int64)
            feeds = {name: (ids if name == "input_ids" else np.ones_like(ids) if name == "attention_mask"
                            else np.zeros_like(ids)).astype(session.input_dtypes[name]) for name in session.input_names}
            for io in (True, False):
                session.io_binding = io
                timed = time_calls(lambda: session.run(feeds), seconds=seconds, min_runs=10)
                found[f"{batch}x{seq} io_binding={'on' if io else 'off'}"] = {"p50": round(timed.p50, 3),
                                                                               "p99": round(timed.p99, 3)}
    finally:
        session.io_binding = bound
    return found


def engine_files(root: Path) -> set[Path]:
    return set(Path(root).rglob("*.engine")) if Path(root).is_dir() else set()


def tensorrt_cache(build: Callable[[], Any], root: Path, first_feeds: dict[str, np.ndarray],
                   other_lengths: tuple[int, ...] = (100, 200)) -> dict[str, Any]:
    """Engine build time (session creation plus first run, cache empty), a second load from the cache,
    and whether running new sequence lengths inside the profile builds another engine."""
    start = time.perf_counter()
    task = build()
    task.session.run(first_feeds)
    built_s = time.perf_counter() - start
    engines = engine_files(root)
    start = time.perf_counter()
    again = build()
    again.session.run(first_feeds)
    reload_s = time.perf_counter() - start
    reloaded = engine_files(root)
    for length in other_lengths:
        feeds = {name: np.resize(value, (1, length)) for name, value in first_feeds.items()}
        again.session.run(feeds)
    return {"engine_build_s": round(built_s, 2), "second_load_s": round(reload_s, 2), "engines": len(engines),
            "reloaded_from_cache": reloaded == engines and bool(engines),
            "new_engine_for_new_lengths": engine_files(root) != reloaded}


# -- the check ----------------------------------------------------------------------------------------

class Budget:
    """Wall-clock budget: rows after it is spent are skipped, with that reason."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.start = seconds, time.perf_counter()

    def spent(self) -> str | None:
        used = time.perf_counter() - self.start
        return f"the check's time budget of {self.seconds:.0f} s is spent ({used:.0f} s)" if used > self.seconds else None


def _brief(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0][:400]}" if lines else type(exc).__name__


def _row(rows: list[dict[str, Any]], model: str, system: str, check: str, *, status: str, reason: str | None = None,
         figures: Any = None) -> None:
    rows.append({"model": model, "system": system, "check": check, "status": status, "reason": reason,
                 "figures": figures})


CHECKS: tuple[str, ...] = ("placement", "parity", "latency", "engine cache")


def _bundles(args: argparse.Namespace, say: Callable[[str], None]) -> tuple[dict[str, Path], dict[str, str]]:
    """The two models' bundles (given, or exported once into the work folder), and why any is missing."""
    given = {"distilbert-qa": args.qa_bundle, "minilm-embed": args.minilm_bundle}
    bundles, missing = {}, {}
    for key in MODELS:
        if given[key]:
            bundles[key] = Path(given[key])
            continue
        try:
            from .models import MODELS as BENCH_MODELS, bundle_dir

            say(f"exporting {key} into {args.work} (once; pass --{key.split('-')[0]}-bundle to reuse one)")
            bundles[key] = bundle_dir(BENCH_MODELS[key], Path(args.work), progress=say)
        except Exception as exc:  # e.g. the export extra is not installed on the GPU host
            missing[key] = f"no bundle for {key}: {_brief(exc)} (pass one with --{key.split('-')[0]}-bundle)"
    return bundles, missing


def run_checks(args: argparse.Namespace, *, env: dict[str, Any] | None = None,
               say: Callable[[str], None] = print) -> dict[str, Any]:
    """Every row of the check; JSON-ready."""
    started = time.perf_counter()
    env = env if env is not None else environment()
    reasons = system_reasons(env)
    rows: list[dict[str, Any]] = []
    result = {"environment": env, "rows": rows, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    runnable = [system for system in SYSTEMS if reasons[system] is None]
    bundles, missing = _bundles(args, say) if runnable else ({}, {})
    budget = Budget(args.budget)
    for model in MODELS:
        for provider, precision in SYSTEMS:
            system = f"{provider} {precision}"
            why = reasons[(provider, precision)] or missing.get(model)
            checks = CHECKS if provider == "tensorrt" else CHECKS[:3]
            if why is None:
                why = budget.spent()
            if why is not None:
                for check in checks:
                    _row(rows, model, system, check, status="skipped", reason=why)
                continue
            _check_system(rows, model, provider, precision, bundles[model], args, budget, say)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _check_system(rows: list[dict[str, Any]], model: str, provider: str, precision: str, bundle: Path,
                  args: argparse.Namespace, budget: Budget, say: Callable[[str], None]) -> None:
    from distilrt.runtime import load_bundle, pipeline

    system = f"{provider} {precision}"
    trt_root = Path(args.work) / f"gpu-check-engines-{int(budget.start)}"

    def build() -> Any:
        return pipeline(model=bundle, provider=provider, precision=precision, batch_size=32, io_binding=True,
                        tensorrt_cache_dir=trt_root)

    say(f"{model} {system}: building")
    try:
        reference = pipeline(model=bundle, provider="cpu", precision="fp32")
        task = build()
    except Exception as exc:
        for check in CHECKS if provider == "tensorrt" else CHECKS[:3]:
            _row(rows, model, system, check, status="failed", reason=f"could not be built: {_brief(exc)}")
        return
    feeds, mask = feeds_for(task, model)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("placement", lambda: placement(task, feeds)),
        ("parity", lambda: parity(task.session.run(feeds), reference.session.run(feeds), mask)),
        ("latency", lambda: latency(task, vocab_size=load_bundle(bundle).vocab_size or 30522, seconds=args.seconds,
                                    shapes=tuple((b, min(s, task.max_sequence_length)) for b, s in SHAPES))),
    ]
    if provider == "tensorrt":
        first = {name: value[:1] for name, value in feeds.items()}
        fresh = Path(args.work) / f"gpu-check-fresh-{precision}-{model}-{int(time.time())}"

        def cache_row() -> dict[str, Any]:
            def fresh_build() -> Any:
                return pipeline(model=bundle, provider=provider, precision=precision, batch_size=32,
                                io_binding=True, tensorrt_cache_dir=fresh)
            try:
                return tensorrt_cache(fresh_build, fresh, first)
            finally:
                shutil.rmtree(fresh, ignore_errors=True)

        steps.append(("engine cache", cache_row))
    for check, measure in steps:
        spent = budget.spent()
        if spent:
            _row(rows, model, system, check, status="skipped", reason=spent)
            continue
        try:
            _row(rows, model, system, check, status="ok", figures=measure())
        except Exception as exc:
            logger.debug("%s %s %s failed", model, system, check, exc_info=True)
            _row(rows, model, system, check, status="failed", reason=_brief(exc))


def table(result: dict[str, Any]) -> str:
    """The rows as a plain-text table, environment first."""
    env = result["environment"]
    lines = [f"onnxruntime {env.get('onnxruntime')} ({env.get('build', {}).get('package_name', '?')}), providers: "
             f"{', '.join(env.get('providers') or []) or 'none'}",
             f"CUDA {env.get('build', {}).get('cuda_version', '?')}, cuDNN {env.get('build', {}).get('cudnn_version', '?')}"
             f" (onnxruntime build); libraries found: " + ", ".join(f"{k}={v or 'no'}" for k, v in
                                                                    env.get("libraries", {}).items()),
             "GPUs: " + ("; ".join(env.get("gpus", [])) or env.get("gpu_error", "?"))]
    if env.get("conflict"):
        lines.append("WARNING: " + env["conflict"])
    lines.append("")
    reasons: dict[str, int] = {}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in result["rows"]:
        groups.setdefault((row["model"], row["system"]), []).append(row)
    width = max((len(f"{model} | {system}") for model, system in groups), default=20)
    for (model, system), items in groups.items():
        head = f"{model} | {system}".ljust(width)
        if all(r["status"] == "skipped" and r["reason"] == items[0]["reason"] for r in items):
            number = reasons.setdefault(items[0]["reason"], len(reasons) + 1)
            lines.append(f"{head} | {', '.join(r['check'] for r in items)}: skipped [{number}]")
            continue
        for row in items:
            detail = json.dumps(row["figures"], sort_keys=True) if row["status"] == "ok" else row["reason"]
            lines.append(f"{head} | {row['check']}: {row['status']}: {detail}")
    if reasons:
        lines += ["", "Skipped because:"] + [f"[{number}] {reason}" for reason, number in reasons.items()]
    lines.append(f"\n{len(result['rows'])} rows in {result.get('seconds', 0)} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="gpu_check.json", help="JSON file to write (default: %(default)s)")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "distilrt-gpu-check"),
                        help="folder for exported bundles and engines (default: %(default)s)")
    parser.add_argument("--qa-bundle", dest="qa_bundle", help="a full-size DistilBERT-QA bundle to use instead of "
                        "exporting the stand-in")
    parser.add_argument("--minilm-bundle", dest="minilm_bundle", help="a MiniLM bundle to use instead of exporting one")
    parser.add_argument("--seconds", type=float, default=0.5, help="timing per latency cell (default: %(default)s)")
    parser.add_argument("--budget", type=float, default=300.0, help="wall-clock budget in seconds; rows after it are "
                        "skipped (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.budget <= 0:
        parser.error("--seconds and --budget must be positive")
    result = run_checks(args, say=lambda message: print(message, file=sys.stderr, flush=True))
    print(table(result))
    try:
        Path(args.output).write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"gpu_check: cannot write {args.output}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}")
    return 0
