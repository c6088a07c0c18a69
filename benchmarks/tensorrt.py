"""TensorRT for the GPU rows: provider options, shape profiles, the engine cache, INT8 calibration.

Plain functions over file paths and names, so all of it is tested without a GPU.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .workloads import QAPair

CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
#: The file ONNX Runtime's table writer makes, and its TensorRT provider reads by name.
CALIBRATION_TABLE = "calibration.flatbuffers"
_CACHE_MARKER = "source.txt"


# -- TensorRT options -----------------------------------------------------------------------------

def shape_string(input_names: Sequence[str], batch: int, seq: int) -> str:
    """One TensorRT profile entry for every input, e.g. ``input_ids:1x32,attention_mask:1x32``."""
    return ",".join(f"{name}:{batch}x{seq}" for name in input_names)


def profile_shapes(input_names: Sequence[str], shapes: Sequence[tuple[int, int]], *,
                   opt: tuple[int, int] | None = None) -> dict[str, str]:
    """``trt_profile_{min,opt,max}_shapes`` for one profile that holds every ``(batch, tokens)`` in ``shapes``.

    One profile spanning all workloads means one engine, built once, with no rebuild when the workload
    changes.  ``opt`` is where TensorRT tunes its kernels; by default the workload of median size.
    """
    if not input_names:
        raise ValueError("profile_shapes needs the graph's input names (got none)")
    if not shapes or any(b < 1 or s < 1 for b, s in shapes):
        raise ValueError(f"profile_shapes needs (batch, tokens) pairs of positive sizes, got {list(shapes)}")
    low = (min(b for b, _ in shapes), min(s for _, s in shapes))
    high = (max(b for b, _ in shapes), max(s for _, s in shapes))
    if opt is None:
        ordered = sorted(shapes, key=lambda bs: (bs[0] * bs[1], bs))
        opt = ordered[(len(ordered) - 1) // 2]
    if not (low[0] <= opt[0] <= high[0] and low[1] <= opt[1] <= high[1]):
        raise ValueError(f"opt shape {opt} lies outside the profile {low}..{high}")
    return {"trt_profile_min_shapes": shape_string(input_names, *low),
            "trt_profile_opt_shapes": shape_string(input_names, *opt),
            "trt_profile_max_shapes": shape_string(input_names, *high)}


def tensorrt_provider_options(*, precision: str, input_names: Sequence[str], shapes: Sequence[tuple[int, int]],
                              cache_dir: Path, timing_cache_dir: Path | None = None,
                              calibration_table: Path | None = None, device_id: int = 0) -> dict[str, Any]:
    """TensorRT provider options: precision, engine and timing caches, and the workloads' shape profile.

    int8 also enables fp16, so layers TensorRT keeps out of int8 fall back to fp16 rather than fp32.
    ORT reads the calibration table by name from ``trt_engine_cache_path``, so it must sit in ``cache_dir``.
    """
    if precision not in ("fp16", "int8"):
        raise ValueError(f"TensorRT rows are fp16 or int8, got {precision!r}")
    options: dict[str, Any] = {
        "device_id": device_id,
        "trt_fp16_enable": True,
        "trt_int8_enable": precision == "int8",
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(timing_cache_dir or cache_dir),
        **profile_shapes(input_names, shapes),
    }
    if precision == "int8":
        if calibration_table is None:
            raise ValueError("TensorRT int8 needs a calibration table (see write_calibration); without one "
                             "its int8 figures would not be of a calibrated engine")
        if Path(calibration_table).parent != Path(cache_dir):
            raise ValueError(f"the calibration table {calibration_table} must be in the engine cache {cache_dir}: "
                             "onnxruntime looks it up there by file name")
        options["trt_int8_calibration_table_name"] = Path(calibration_table).name
        options["trt_int8_use_native_calibration_table"] = False
    return options


def tensorrt_providers(options: dict[str, Any], *, device_id: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """TensorRT first, CUDA after it for the operators TensorRT does not take."""
    from distilrt.runtime.providers import cuda_options

    return [(TENSORRT, dict(options)), (CUDA, cuda_options(device_id=device_id))]


def prepare_cache_dir(cache_dir: Path, fingerprint: str) -> bool:
    """Keep in ``cache_dir`` only what was built for ``fingerprint``; True when stale files were removed.

    A TensorRT engine holds one graph, precision and shape profile; ORT's documentation asks callers to
    clear the cache when these change, so a re-exported bundle or new workloads start from scratch.
    """
    cache_dir = Path(cache_dir)
    marker = cache_dir / _CACHE_MARKER
    stale = cache_dir.is_dir() and any(cache_dir.iterdir()) and (
        not marker.is_file() or marker.read_text(encoding="utf-8") != fingerprint)
    if stale:
        shutil.rmtree(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(fingerprint, encoding="utf-8")
    return stale


def engine_files(cache_dir: Path) -> list[Path]:
    return sorted(Path(cache_dir).glob("*.engine"))


# -- INT8 calibration -----------------------------------------------------------------------------

def qa_feeds(tokenizer_json: Path, pairs: Sequence[QAPair], input_names: Sequence[str], *,
             pad_id: int = 0) -> dict[str, np.ndarray]:
    """The graph's inputs for ``pairs`` encoded as [CLS] question [SEP] context [SEP], padded to the longest."""
    from tokenizers import Tokenizer

    if not pairs:
        raise ValueError("qa_feeds needs at least one question/context pair")
    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    encodings = [tokenizer.encode(p.question, p.context) for p in pairs]
    width = max(len(e.ids) for e in encodings)
    columns = {"input_ids": np.full((len(pairs), width), pad_id, dtype=np.int64),
               "attention_mask": np.zeros((len(pairs), width), dtype=np.int64),
               "token_type_ids": np.zeros((len(pairs), width), dtype=np.int64)}
    for row, encoding in enumerate(encodings):
        n = len(encoding.ids)
        columns["input_ids"][row, :n] = encoding.ids
        columns["attention_mask"][row, :n] = 1
        columns["token_type_ids"][row, :n] = encoding.type_ids
    unknown = [name for name in input_names if name not in columns]
    if unknown:
        raise ValueError(f"no feed is known for the graph inputs {unknown}; known: {', '.join(columns)}")
    return {name: columns[name] for name in input_names}


def write_calibration(model: Path, feeds: Sequence[dict[str, np.ndarray]], out_dir: Path, *,
                      providers: Sequence[str] | None = None) -> Path:
    """Ranges of every float tensor of ``model`` over ``feeds``, as the TensorRT table in ``out_dir``.

    ONNX Runtime's own calibrator and table writer make the file its TensorRT provider reads, with the
    tensor names of this same graph.  Ranges are symmetric: the table stores one bound per tensor and
    TensorRT applies it as +-bound, so it must be the largest magnitude, not the maximum.  Only tensors
    whose type ONNX shape inference can tell are calibrated, which is every tensor of a plain graph.
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, create_calibrator,
                                          write_calibration_table)

    if not feeds:
        raise ValueError("calibration needs at least one batch of feeds")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._left = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._left, None)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="calibrate-") as scratch:
        calibrator = create_calibrator(Path(model), None, augmented_model_path=str(Path(scratch) / "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.MinMax,
                                       providers=list(providers) if providers else None,
                                       extra_options={"symmetric": True})
        calibrator.collect_data(Reader())
        write_calibration_table(calibrator.compute_data(), dir=str(out_dir))
    table = out_dir / CALIBRATION_TABLE
    if not table.is_file():
        raise RuntimeError(f"onnxruntime's calibration wrote no {CALIBRATION_TABLE} into {out_dir}")
    return table


def standard_ops_only(model: Path) -> bool:
    """True when every node is a standard ONNX operator: TensorRT parses those, not ORT's fused contrib ops."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    return all(node.domain in ("", "ai.onnx") for node in graph.node)


def tensorrt_graph(bundle_fp32: Path, plain: Path | None) -> tuple[Path, str]:
    """The graph to give TensorRT, and why: the bundle's fp32 graph unless the exporter fused it.

    The exporter keeps ORT's fused operators (Attention, SkipLayerNormalization, ...) when they time
    faster on its CPU; TensorRT cannot parse them and would hand those layers back to CUDA.  ``plain``
    is an unfused export of the same checkpoint (optimum's), used in that case.
    """
    if standard_ops_only(bundle_fp32):
        return bundle_fp32, "the bundle's fp32 graph (standard ONNX operators)"
    if plain is not None and Path(plain).is_file() and standard_ops_only(plain):
        return Path(plain), (f"{plain} (same checkpoint, unfused): the bundle's fp32 graph has ORT fused "
                             "operators TensorRT cannot parse")
    return bundle_fp32, ("the bundle's fp32 graph, which has ORT fused operators TensorRT cannot parse "
                         "(those layers run on CUDA); no unfused export was found")
