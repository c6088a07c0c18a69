"""``distilrt tune``: time every way this host can run a bundle, keep the fastest per workload.

Candidates are engine x precision x threads/streams: ONNX Runtime on the CPU with the bundle's
dynamic int8 and fp32 files; OpenVINO (when installed) with bf16 (on CPUs with AMX-BF16 or
AVX-512-BF16, else f32), the static int8 file and the dynamic int8 file where it compiles.  Each
bundle file is one graph; a bundle that carries extra graphs per precision gets them timed the same way.
Candidates whose fidelity misses its target are left out: an int8 variant whose agreement recorded at
export missed its target (on any engine), or an OpenVINO float candidate (bf16, f32) whose outputs on
the check inputs differ from ONNX Runtime fp32 by more than :data:`MAX_FLOAT_REL_DIFF` of the output's
scale, or an OpenVINO int8 candidate whose outputs differ from ONNX Runtime running the same file by more
than :data:`MAX_SAME_FILE_REL_DIFF` (an engine that computes some shape wrongly; see :data:`CHECK_SHAPES`).
Float candidates are judged by closeness, not top-1 agreement: on random tokens (and on the
random-weight stand-ins benchmarks use) logits are nearly flat, so argmax flips on rounding alone
(full-size DistilBERT-QA stand-in, OpenVINO bf16: top-1 0.979, largest difference 0.012 of scale).
Every OpenVINO candidate's top-1 agreement and largest difference are recorded in the profile.

Workloads: 1x128, 1x384, 8x128 single calls (tokens capped at the model's maximum), and a bulk run of
mixed lengths in length-sorted batches, where candidates with several streams run batches side by
side.  Every workload is timed round-robin over the candidates, fastest of N turns, with a pause before
each turn so that no engine's spinning threads slow the next (:mod:`distilrt.runtime.engines.timing`).
N follows from the time budget.  Candidates are timed in two stages so that a full-size bundle's
candidates are not all in memory at once: every one-stream candidate at every workload, then the
:data:`FINALISTS` fastest at bulk work again beside their several-streams forms (one stream per core).
The winners go to this host's profile (:mod:`distilrt.runtime.profile`).
"""

from __future__ import annotations

import gc
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .bundle import Bundle, load_bundle, misses_target
from .engines import openvino as ov_engine
from .engines.base import Engine
from .engines.onnxruntime import OrtEngine, SessionSettings
from .engines.timing import SPIN_PAUSE_S, random_token_feeds, time_round_robin
from .errors import DistilrtError, InputError
from .hostinfo import available_memory, physical_cores
from .profile import Setting, write_entry
from .providers import resolve_providers

logger = logging.getLogger(__name__)

LATENCY_SHAPES: tuple[tuple[int, int], ...] = ((1, 128), (1, 384), (8, 128))
#: The bulk workload: this many sequences of mixed lengths, in batches of BULK_BATCH (fewer where the
#: outputs are so large that every candidate's bulk buffers would not fit in memory: see bulk_batch_size).
BULK_SEQUENCES = 32
BULK_BATCH = 8
#: The bulk workload's longest sequence (capped at the model's maximum).
BULK_MAX_TOKENS = 384
#: Bytes an engine keeps per byte of its largest bulk output (ONNX Runtime's arena, OpenVINO's request
#: buffers: the output and the activations before it): measured 2.2-3.7x on the full-size DistilRoBERTa
#: fill-mask stand-in, whose 8x384 logits are 617 MB (its seven candidates together reached 23.6 GB of RSS;
#: with the batch this sizing gives there, 4, 13.7 GB).
BULK_FOOTPRINT_FACTOR = 4.0
#: Share of the host's available memory the bulk buffers of all candidates together may take.
BULK_MEMORY_SHARE = 0.5
#: Largest difference from ONNX Runtime fp32, as a fraction of the output's largest magnitude, allowed
#: for an OpenVINO float candidate: bf16 measured up to 0.014 on tiny bundles of every seed architecture
#: at 1x128 (tests/test_engines.py holds bf16 to 0.03 there) and 0.025 on the full-size DistilBERT-QA
#: stand-in over CHECK_SHAPES.
MAX_FLOAT_REL_DIFF = 0.05
#: Shapes every OpenVINO candidate is checked at before it is timed: short, exactly 32 tokens (OpenVINO
#: 2026.4 computed an int8 attention score product wrongly at 32 tokens only), odd and batched, long.
CHECK_SHAPES: tuple[tuple[int, int], ...] = ((1, 8), (1, 32), (2, 57), (1, 128))
#: Largest difference between OpenVINO and ONNX Runtime running the same int8 file, as a fraction of the
#: output's scale, float parts in bf16: measured at most 0.029 on all-MiniLM-L6-v2 (CHECK_SHAPES and
#: 1x384) and 0.055 on the random-weight DistilBERT-QA stand-in, against 0.32-0.36 for the wrong outputs.
MAX_SAME_FILE_REL_DIFF = 0.1
MAX_REPEATS = 15
#: One-stream candidates whose several-streams forms are timed for bulk work.
FINALISTS = 2
DEFAULT_BUDGET_S = 120.0


@dataclass
class Candidate:
    setting: Setting
    make: Callable[[], Engine]
    engine: Engine | None = None
    fidelity: dict[str, Any] = field(default_factory=dict)
    #: Builds this candidate's several-streams form (bulk work), given the stream count.
    streamed: Callable[[int], Engine] | None = None


@dataclass
class TuneResult:
    """What ``tune`` measured: ms per workload per candidate, the winners, what was left out and why."""

    workloads: dict[str, dict[str, float]]
    latency: Setting
    bulk: Setting | None
    skipped: dict[str, str]
    fidelity: dict[str, dict[str, Any]]
    repeats: int
    seconds: float
    profile: Path


def _graphs(bundle: Bundle, precision: str, *, gate: bool = True) -> tuple[dict[str, str], str | None]:
    """The manifest keys of every usable graph of ``precision`` (graph name -> key), or why there is none."""
    choices = bundle.manifest.graph_choices(precision)
    if not choices:
        return {}, "bundle has no such variant"
    usable = {graph: key for graph, key in choices.items()
              if not (gate and misses_target(bundle.manifest.variant(key)))}
    return usable, None if usable else "its agreement missed the target at export"


def candidates(bundle: Bundle, *, cores: int | None = None,
               ignore_recorded_agreement: bool = False) -> tuple[list[Candidate], dict[str, str]]:
    """Every setting this bundle and the installed engines allow here, and the ones left out with why.

    ``ignore_recorded_agreement`` keeps int8 variants whose agreement recorded at export missed its
    target: only for benchmark stand-ins with seeded random weights, whose near-flat logits make that
    figure noise (the exporter's ``int8_policy="speed"`` exists for the same reason).
    """
    gate = not ignore_recorded_agreement
    cores = cores or physical_cores()
    plan = resolve_providers("cpu")
    found: list[Candidate] = []
    skipped: dict[str, str] = {}

    for precision in ("int8", "fp32"):
        graphs, why = _graphs(bundle, precision, gate=gate)
        if why:
            skipped[f"onnxruntime/{precision}"] = why
        for key in graphs.values():
            def make(threads: int, p: str = precision, k: str = key) -> Engine:
                return OrtEngine(bundle.path, bundle.manifest, p, plan, SessionSettings(threads=threads),
                                 file_precision=k)

            # ORT streams: one core each, on one single-threaded session shared by the stream threads.
            found.append(Candidate(Setting("onnxruntime", precision, cores, 1, key), lambda m=make: m(cores),
                                   streamed=lambda _streams, m=make: m(1)))
    skipped["onnxruntime/int8-static"] = "ONNX Runtime's CPU kernels for QDQ graphs are the slow ones; OpenVINO runs it"
    if not ov_engine.available():
        skipped["openvino"] = "openvino is not installed (pip install 'distilrt[openvino]')"
        return found, skipped
    float_precision = "bf16" if ov_engine.has_native_bf16() else "fp32"
    if float_precision == "fp32":
        skipped["openvino/bf16"] = "CPU has no AMX-BF16 / AVX-512-BF16"
    skipped["openvino/extra graphs"] = ("OpenVINO fuses the standard file itself; the extra graphs carry ONNX Runtime "
                                        "contrib operators made for its kernels")
    for precision in (float_precision, ov_engine.STATIC_INT8, "int8"):
        variant = ov_engine.VARIANT_FOR[precision]
        if variant not in bundle.manifest.variants:
            skipped[f"openvino/{precision}"] = "bundle has no such variant"
            continue
        if gate and misses_target(bundle.manifest.variants[variant]):
            skipped[f"openvino/{precision}"] = "its agreement missed the target at export"
            continue

        def make_ov(streams: int, p: str = precision) -> Engine:
            return ov_engine.OpenVinoEngine(bundle.path, bundle.manifest, p, threads=cores, streams=streams)

        found.append(Candidate(Setting("openvino", precision, cores, 1, variant), lambda m=make_ov: m(1),
                               streamed=make_ov))
    return found, skipped


def bulk_batch_size(*, candidates: int, tokens: int, output_bytes_per_token: float, available: int | None) -> int:
    """BULK_BATCH, halved until every candidate's bulk buffers (``candidates`` engines, batches up to
    ``tokens`` long, outputs of ``output_bytes_per_token``) fit in BULK_MEMORY_SHARE of ``available`` bytes."""
    batch = BULK_BATCH
    if available is None:
        return batch
    while batch > 1 and (candidates * BULK_FOOTPRINT_FACTOR * batch * tokens * output_bytes_per_token
                         > available * BULK_MEMORY_SHARE):
        batch //= 2
    return batch


def _bulk_batches(input_names: list[str], *, vocab: int, max_len: int, seed: int = 1,
                  batch_size: int = BULK_BATCH) -> list[dict[str, np.ndarray]]:
    """Mixed-length sequences in length-sorted, padded batches, as a task would feed them."""
    rng = np.random.default_rng(seed)
    lengths = sorted(int(x) for x in rng.integers(16, max(17, min(max_len, BULK_MAX_TOKENS)), BULK_SEQUENCES))
    batches = []
    for start in range(0, len(lengths), batch_size):
        chunk = lengths[start:start + batch_size]
        width = chunk[-1]
        ids = rng.integers(5, max(vocab, 6), (len(chunk), width), dtype=np.int64)
        mask = (np.arange(width)[None, :] < np.asarray(chunk)[:, None]).astype(np.int64)
        raw = {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        batches.append({name: raw[name] for name in input_names if name in raw})
    return batches


def _fidelity(got: list[dict[str, np.ndarray]], want: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Top-1 agreement and the largest difference as a fraction of each output's scale, over every check."""
    agree, total, rel = 0, 0, 0.0
    for outputs, references in zip(got, want):
        for name, ref in references.items():
            out = outputs[name]
            if ref.ndim >= 2:
                agree += int((out.argmax(-1) == ref.argmax(-1)).sum())
                total += int(np.prod(ref.shape[:-1]))
            rel = max(rel, float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-12)))
    return {"top1_agreement": agree / total if total else 1.0, "max_rel_diff": rel}


def tune(bundle_dir: str | Path, *, budget_s: float = DEFAULT_BUDGET_S, cores: int | None = None,
         write: bool = True, ignore_recorded_agreement: bool = False) -> TuneResult:
    """Time this bundle's candidates on this host and record the winners (see the module docstring;
    ``ignore_recorded_agreement``: see :func:`candidates`, benchmark stand-ins only)."""
    if not isinstance(budget_s, (int, float)) or isinstance(budget_s, bool) or budget_s <= 0:
        raise InputError(f"budget_s must be a positive number of seconds, got {budget_s!r}")
    started = time.perf_counter()
    bundle = load_bundle(bundle_dir)
    if "fp32" not in bundle.manifest.variants:
        raise InputError(f"bundle {bundle.manifest.name!r} has no fp32 variant, which tune needs as the reference; "
                         "re-export it with fp32")
    found, skipped = candidates(bundle, cores=cores, ignore_recorded_agreement=ignore_recorded_agreement)
    reference = OrtEngine(bundle.path, bundle.manifest, "fp32", resolve_providers("cpu"))
    input_names = reference.input_names
    vocab, max_len = bundle.vocab_size or 1000, bundle.manifest.max_sequence_length
    shapes = {f"{b}x{min(s, max_len)}": (b, min(s, max_len)) for b, s in LATENCY_SHAPES}
    feeds = dict(zip(shapes, random_token_feeds(input_names, tuple(shapes.values()), vocab_size=vocab)))
    checks = random_token_feeds(input_names, tuple((b, min(s, max_len)) for b, s in CHECK_SHAPES),
                                vocab_size=vocab, seed=2)
    references: dict[str, list[dict[str, np.ndarray]]] = {"fp32": [reference.run(feed) for feed in checks]}
    del reference
    per_token = max(sum(v.nbytes for v in out.values()) / feed["input_ids"].size
                    for out, feed in zip(references["fp32"], checks))
    bulk_batch = bulk_batch_size(candidates=len(found), tokens=min(max_len, BULK_MAX_TOKENS), output_bytes_per_token=per_token,
                                 available=available_memory())
    if bulk_batch < BULK_BATCH:
        logger.info("tune: bulk batches of %d (not %d): %d candidates' buffers for %.0f KB of output per token "
                    "would not fit in memory", bulk_batch, BULK_BATCH, len(found), per_token / 1024)
    bulk = _bulk_batches(input_names, vocab=vocab, max_len=max_len, batch_size=bulk_batch)

    def reference_for(key: str) -> list[dict[str, np.ndarray]]:
        if key not in references:
            engine = OrtEngine(bundle.path, bundle.manifest, key, resolve_providers("cpu"))
            references[key] = [engine.run(feed) for feed in checks]
        return references[key]

    kept: list[Candidate] = []
    fidelity: dict[str, dict[str, Any]] = {}
    for candidate in found:
        label = candidate.setting.label
        try:
            candidate.engine = candidate.make()
        except DistilrtError as exc:
            skipped[label] = str(exc).split(";")[0]
            continue
        if candidate.setting.engine == "openvino":
            floating = candidate.setting.precision in ("bf16", "fp32")
            key = "fp32" if floating else candidate.setting.graph or candidate.setting.precision
            candidate.fidelity = _fidelity([candidate.engine.run(feed) for feed in checks], reference_for(key))
            candidate.fidelity["against"] = f"onnxruntime/{key}"
            fidelity[label] = candidate.fidelity
            limit = MAX_FLOAT_REL_DIFF if floating else MAX_SAME_FILE_REL_DIFF
            if candidate.fidelity["max_rel_diff"] > limit:
                skipped[label] = (f"differs from ONNX Runtime {key} by {candidate.fidelity['max_rel_diff']:.3f} of the "
                                  f"output scale, more than {limit}")
                candidate.engine = None
                continue
        kept.append(candidate)
    if not kept:
        raise InputError(f"no candidate to time for {bundle.manifest.name!r}: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))

    def single(engine: Engine, feed: dict[str, np.ndarray]) -> Callable[[], Any]:
        return lambda: engine.run(feed)

    pools: list[ThreadPoolExecutor] = []

    def bulk_call(candidate: Candidate) -> Callable[[], Any]:
        engine, streams = candidate.engine, candidate.setting.streams
        assert engine is not None
        if streams == 1:
            def one_stream() -> None:
                for batch in bulk:  # each output dropped as soon as it is made: they can be large
                    engine.run(batch)
            return one_stream
        pool = ThreadPoolExecutor(max_workers=streams, thread_name_prefix="distilrt-tune")
        pools.append(pool)

        def several_streams() -> None:
            for _ in pool.map(engine.run, reversed(bulk)):
                pass
        return several_streams

    workloads: dict[str, dict[str, Callable[[], Any]]] = {
        name: {c.setting.label: single(c.engine, feed) for c in kept}  # type: ignore[arg-type]
        for name, feed in feeds.items()}
    workloads["bulk"] = {c.setting.label: bulk_call(c) for c in kept}
    # The first round-robin turn of everything tells what a turn costs and counts as a measurement (a first
    # call's one-time costs only make it slower, and the fastest turn is kept); the budget sets how many
    # more turns fit in two thirds of what is left, the rest is for the streams stage.
    setup_s = time.perf_counter() - started
    logger.info("tune: %d candidates loaded and checked in %.1f s", len(kept), setup_s)
    turn_started = time.perf_counter()
    measured = {name: time_round_robin(calls, repeats=1, warmup=0) for name, calls in workloads.items()}
    turn_s = time.perf_counter() - turn_started
    stage_end = started + setup_s + (budget_s - setup_s) * 2 / 3
    more = min(MAX_REPEATS - 1, math.floor((stage_end - time.perf_counter()) / max(turn_s, 1e-6)))
    repeats = 1 + max(more, 0)
    if more > 0:
        again = {name: time_round_robin(calls, repeats=more, warmup=0, deadline=stage_end)
                 for name, calls in workloads.items()}
        measured = {name: {label: min(ms, again[name][label]) for label, ms in per.items()}
                    for name, per in measured.items()}
    else:
        logger.warning("tune: the budget of %.0f s allows one turn per candidate (loading took %.0f s, a turn "
                       "%.0f s); a larger --budget-s gives steadier figures", budget_s, setup_s, turn_s)

    def geomean_ratio(label: str) -> float:
        names = [n for n in measured if n != "bulk"]
        return math.exp(sum(math.log(measured[n][label] / min(measured[n].values())) for n in names) / len(names))

    by_label = {c.setting.label: c.setting for c in kept}
    latency = by_label[min(by_label, key=geomean_ratio)]

    # Stage two: the bulk finalists beside their several-streams forms; everything else is released first.
    finalists = sorted(kept, key=lambda c: measured["bulk"][c.setting.label])[:FINALISTS]
    for candidate in kept:
        if candidate not in finalists:
            candidate.engine = None
    gc.collect()
    streamed: dict[str, Callable[[], Any]] = {}
    cores = kept[0].setting.threads
    if cores > 1:
        for candidate in finalists:
            streamed[candidate.setting.label] = bulk_call(candidate)
            if candidate.streamed is None:
                continue
            setting = replace(candidate.setting, streams=cores)
            try:
                engine = candidate.streamed(cores)
            except DistilrtError as exc:
                skipped[setting.label] = str(exc).split(";")[0]
                continue
            by_label[setting.label] = setting
            streamed[setting.label] = bulk_call(Candidate(setting, lambda: engine, engine=engine))
    try:
        if len(streamed) > 1:
            left = max(budget_s - (time.perf_counter() - started), 0.0)
            bulk_turn_s = sum(measured["bulk"][c.setting.label] for c in finalists) / 1000 * 2 + SPIN_PAUSE_S * len(streamed)
            measured["bulk-streams"] = time_round_robin(
                streamed, repeats=max(1, min(MAX_REPEATS, math.floor(left / max(bulk_turn_s, 1e-6)))), warmup=1,
                deadline=started + budget_s)
    finally:
        for pool in pools:
            pool.shutdown()
    final_bulk = measured.get("bulk-streams") or measured["bulk"]
    bulk_winner = by_label[min(final_bulk, key=final_bulk.__getitem__)]
    seconds = time.perf_counter() - started
    rounded = {name: {label: round(ms, 3) for label, ms in per.items()} for name, per in measured.items()}
    path = Path()
    if write:
        path = write_entry(bundle.manifest, latency=latency, bulk=bulk_winner, workloads=rounded,
                           extra={"skipped": skipped, "fidelity": fidelity, "repeats": repeats,
                                  "ignore_recorded_agreement": ignore_recorded_agreement,
                                  "budget_s": budget_s, "seconds": round(seconds, 1), "setup_s": round(setup_s, 1),
                                  "method": f"fastest of {repeats} round-robin turns, {SPIN_PAUSE_S * 1000:.0f} ms "
                                            "pause before each; ms per call (bulk: per pass over "
                                            f"{BULK_SEQUENCES} mixed-length sequences in batches of {bulk_batch})"})
    logger.info("tuned %s in %.1f s: latency %s, bulk %s", bundle.manifest.name, seconds, latency.label,
                bulk_winner.label)
    return TuneResult(rounded, latency, bulk_winner, skipped, fidelity, repeats, seconds, path)
