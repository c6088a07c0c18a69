"""Triton repository, onnxruntime backend: Triton runs the ONNX graph; distilrt tokenizes and post-processes.

Per bundle::

    REPO/<name>_onnx/config.pbtxt   platform onnxruntime_onnx, int64 inputs [-1], outputs as the graph declares,
                                    dynamic_batching, instance_group, TensorRT (fp16) / OpenVINO accelerator
    REPO/<name>_onnx/1/model.onnx   the chosen variant's graph
    REPO/<name>/config.pbtxt        python backend, the same REQUEST/RESPONSE interface as the python backend
    REPO/<name>/1/model.py          distilrt's model; its engine calls <name>_onnx through BLS
    REPO/<name>/1/bundle/           the bundle without its ONNX files (tokenizer, config, manifest)

BLS (the python model calling the ONNX model) rather than an ensemble: a request's post-processing needs
its own text, options and token offsets, and question answering turns one request into several windows,
which an ensemble's fixed tensor plumbing cannot carry.  The ``nvidia-pytriton`` server has no
onnxruntime backend, so these repositories are validated structurally (:func:`validate_repository`)
rather than run here.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import MissingDependencyError
from ..manifest import MANIFEST_NAME, Manifest, sha256_file
from .triton import (MODEL_PY, TritonOptions, dynamic_batching_block, instance_group_block, parameters_block,
                     pbtxt_string, prepare_output, python_model_config, python_parameters)
from .triton_model import BUNDLE_DIR, INPUT_NAME, OUTPUT_NAME

logger = logging.getLogger(__name__)

ONNX_SUFFIX = "_onnx"

#: ONNX Runtime element types -> Triton data types
TRITON_TYPES = {"tensor(int64)": "TYPE_INT64", "tensor(int32)": "TYPE_INT32", "tensor(float)": "TYPE_FP32",
                "tensor(float16)": "TYPE_FP16", "tensor(bool)": "TYPE_BOOL"}


def graph_signature(path: Path) -> tuple[list[tuple[str, str, list[Any]]], list[tuple[str, str, list[Any]]]]:
    """(inputs, outputs) of an ONNX graph as (name, ORT type, shape with symbolic dims as strings)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return ([(i.name, i.type, list(i.shape)) for i in session.get_inputs()],
            [(o.name, o.type, list(o.shape)) for o in session.get_outputs()])


def config_dims(shape: Sequence[Any]) -> list[int]:
    """Triton dims for a graph shape whose first dim is the batch: fixed sizes kept, symbolic ones -1."""
    return [d if isinstance(d, int) and d > 0 else -1 for d in list(shape)[1:]]


def _tensor_block(kind: str, tensors: Sequence[tuple[str, str, list[Any]]]) -> str:
    entries = []
    for name, ort_type, shape in tensors:
        dims = ", ".join(str(d) for d in config_dims(shape))
        entries.append(f"  {{ name: {pbtxt_string(name)} data_type: {TRITON_TYPES[ort_type]} dims: [ {dims} ] }}")
    return f"{kind} [\n" + ",\n".join(entries) + "\n]\n"


def accelerator_block(provider: str) -> str:
    """TensorRT (fp16) on GPU, OpenVINO on CPU, nothing otherwise."""
    if provider == "tensorrt":
        return ("optimization { execution_accelerators { gpu_execution_accelerator : [ {\n"
                '  name : "tensorrt"\n'
                '  parameters { key: "precision_mode" value: "FP16" }\n'
                '  parameters { key: "max_workspace_size_bytes" value: "1073741824" }\n'
                "} ] } }\n")
    if provider == "openvino":
        return 'optimization { execution_accelerators { cpu_execution_accelerator : [ { name : "openvino" } ] } }\n'
    return ""


def onnx_model_config(name: str, options: TritonOptions, inputs: Sequence[tuple[str, str, list[Any]]],
                      outputs: Sequence[tuple[str, str, list[Any]]], threads: int | None) -> str:
    params = {}
    if threads:  # onnxruntime backend's own knob for intra-op threads
        params["intra_op_thread_count"] = str(threads)
    return (f"name: {pbtxt_string(name)}\n"
            'platform: "onnxruntime_onnx"\n'
            f"max_batch_size: {options.max_batch_size}\n"
            + _tensor_block("input", inputs) + _tensor_block("output", outputs)
            + dynamic_batching_block(options) + instance_group_block(options) + accelerator_block(options.provider)
            + parameters_block(params))


def _device(provider: str) -> str:
    return "cuda" if provider in ("cuda", "tensorrt") else "cpu"


def write_onnx_models(read: Sequence[tuple[Path, Manifest]], output: Path, *, options: TritonOptions,
                      force: bool) -> list[Path]:
    """Write the ONNX model and the python pre/post-processing model for each bundle."""
    from ..bundle import load_bundle

    names = [m.name for _, m in read]
    prepare_output(output, names + [n + ONNX_SUFFIX for n in names], force=force)
    written: list[Path] = []
    for bundle_dir, manifest in read:
        bundle = load_bundle(bundle_dir)
        precision = bundle.choose_precision(options.precision, device=_device(options.provider))
        variant = manifest.variant(precision)
        onnx_name = manifest.name + ONNX_SUFFIX
        onnx_dir = output / onnx_name
        (onnx_dir / "1").mkdir(parents=True)
        shutil.copy2(bundle_dir / variant.file, onnx_dir / "1" / "model.onnx")
        if sha256_file(onnx_dir / "1" / "model.onnx") != variant.sha256:
            from ..errors import BundleError

            raise BundleError(f"{bundle_dir / variant.file} does not match its manifest SHA-256; re-export the bundle")
        inputs, outputs = graph_signature(onnx_dir / "1" / "model.onnx")
        (onnx_dir / "config.pbtxt").write_text(
            onnx_model_config(onnx_name, options, inputs, outputs, options.threads), encoding="utf-8")

        model_dir = output / manifest.name
        version = model_dir / "1"
        version.mkdir(parents=True)
        # the graphs live in the onnxruntime model; the python model keeps tokenizer, config and manifest
        shutil.copytree(bundle_dir, version / BUNDLE_DIR, ignore=shutil.ignore_patterns(
            ".cache", "__pycache__", "*.onnx", "*.onnx.data", "*.onnx_data"))
        (version / "model.py").write_text(MODEL_PY, encoding="utf-8")
        digest = sha256_file(version / BUNDLE_DIR / MANIFEST_NAME)
        params = python_parameters(digest, options, manifest.task, bls_model=onnx_name, bls_precision=precision,
                                   bls_inputs=",".join(n for n, _, _ in inputs),
                                   bls_outputs=",".join(n for n, _, _ in outputs))
        python_options = TritonOptions(max_batch_size=options.max_batch_size,
                                       max_queue_delay_us=options.max_queue_delay_us,
                                       preferred_batch_sizes=options.preferred_batch_sizes, instances=options.instances,
                                       pipeline_batch_size=min(options.pipeline_batch_size, options.max_batch_size))
        (model_dir / "config.pbtxt").write_text(python_model_config(manifest.name, python_options, params),
                                                encoding="utf-8")
        logger.info("wrote Triton onnxruntime model %s and its python model %s", onnx_dir, model_dir)
        written += [model_dir, onnx_dir]
    return written


class TritonBLSEngine:
    """A distilrt engine whose ``run`` is a BLS call to the repository's onnxruntime model."""

    name = "triton-bls"

    def __init__(self, model_name: str, *, precision: str, input_names: Sequence[str],
                 output_names: Sequence[str], path: Path) -> None:
        self.model_name = model_name
        self.precision = precision
        self.path = path
        self.input_names = list(input_names)
        self.input_dtypes = {n: np.int64 for n in self.input_names}
        self.output_names = list(output_names)
        self.providers = [f"triton:{model_name}"]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import triton_python_backend_utils as pb_utils

        tensors = [pb_utils.Tensor(n, np.ascontiguousarray(feeds[n], dtype=np.int64)) for n in self.input_names]
        request = pb_utils.InferenceRequest(model_name=self.model_name, requested_output_names=self.output_names,
                                            inputs=tensors)
        response = request.exec()
        if response.has_error():
            raise RuntimeError(f"Triton model {self.model_name!r} failed: {response.error().message()}")
        return {n: pb_utils.get_output_tensor_by_name(response, n).as_numpy().astype(np.float32, copy=False)
                for n in self.output_names}

    def describe(self) -> Any:
        from ..engines.base import EngineInfo

        return EngineInfo(engine=self.name, device="triton", precision=self.precision, file=str(self.path),
                          providers=tuple(self.providers), threads=None)


def bls_pipeline(bundle_dir: Path, params: dict[str, str], *, batch_size: int) -> Any:
    """The task pipeline over ``bundle_dir`` whose model runs in Triton (see :class:`TritonBLSEngine`)."""
    from ..bundle import load_bundle
    from ..pipeline import task_class
    from ..tokenizer import TextTokenizer

    bundle = load_bundle(bundle_dir)
    engine = TritonBLSEngine(params["bls_model"], precision=params.get("bls_precision", ""),
                             input_names=params["bls_inputs"].split(","), output_names=params["bls_outputs"].split(","),
                             path=bundle_dir)
    tokenizer = TextTokenizer.from_bundle(bundle.path, max_length=bundle.manifest.max_sequence_length,
                                          model_vocab_size=bundle.vocab_size)
    return task_class(bundle.manifest.task)(bundle=bundle, session=engine, tokenizer=tokenizer, batch_size=batch_size)


def validate_repository(repository: str | Path, *, require_protobuf: bool = True) -> list[str]:
    """Check every model of a repository against Triton's model-config protobuf and its ONNX graph.

    Parses each ``config.pbtxt`` with ``tritonclient``'s ``ModelConfig``; for onnxruntime models checks
    that input and output names, data types and dims (less the batch dim) match the graph; for python
    models checks the REQUEST/RESPONSE interface, the bundle's manifest digest and the BLS target.
    Returns the problems found (empty: the repository is consistent).
    """
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError as exc:
        if require_protobuf:
            raise MissingDependencyError("validating a Triton repository needs tritonclient's model-config protobuf; "
                                         "install it with: pip install 'distilrt[triton]'") from exc
        return [f"not validated: {exc} (pip install 'distilrt[triton]')"]
    repository = Path(repository)
    problems: list[str] = []
    configs: dict[str, Any] = {}
    for path in sorted(repository.glob("*/config.pbtxt")):
        try:
            configs[path.parent.name] = text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())
        except text_format.ParseError as exc:
            problems.append(f"{path}: not a Triton model config: {exc}")
    types = {v: k for k, v in model_config_pb2.DataType.items()}
    for name, config in configs.items():
        where = repository / name / "config.pbtxt"
        if config.name != name:
            problems.append(f"{where}: name {config.name!r} differs from its directory {name!r}")
        if config.platform == "onnxruntime_onnx":
            problems += _check_onnx(repository / name, config, types)
        elif config.backend == "python":
            problems += _check_python(repository / name, config, types, configs)
        else:
            problems.append(f"{where}: neither an onnxruntime_onnx nor a python model")
    return problems


def _check_onnx(model_dir: Path, config: Any, types: dict[int, str]) -> list[str]:
    where = model_dir / "config.pbtxt"
    graph = model_dir / "1" / "model.onnx"
    if not graph.is_file():
        return [f"{where}: {graph} is missing"]
    inputs, outputs = graph_signature(graph)
    problems = []
    if config.max_batch_size < 1:
        problems.append(f"{where}: max_batch_size must be >= 1 for dynamic batching, got {config.max_batch_size}")
    for kind, declared, actual in (("input", config.input, inputs), ("output", config.output, outputs)):
        graph_tensors = {n: (t, s) for n, t, s in actual}
        if {t.name for t in declared} != set(graph_tensors):
            problems.append(f"{where}: {kind}s {sorted(t.name for t in declared)} != graph {sorted(graph_tensors)}")
        for tensor in declared:
            if tensor.name not in graph_tensors:
                continue
            ort_type, shape = graph_tensors[tensor.name]
            if types.get(tensor.data_type) != TRITON_TYPES.get(ort_type):
                problems.append(f"{where}: {kind} {tensor.name} is {types.get(tensor.data_type)}, graph has {ort_type}")
            if list(tensor.dims) != config_dims(shape):
                problems.append(f"{where}: {kind} {tensor.name} dims {list(tensor.dims)} != graph {config_dims(shape)} "
                                f"(graph shape {shape}, first dim the batch)")
    return problems


def _check_python(model_dir: Path, config: Any, types: dict[int, str], configs: dict[str, Any]) -> list[str]:
    from .triton_model import check_bundle_digest

    where = model_dir / "config.pbtxt"
    problems = []
    for kind, declared, name in (("input", config.input, INPUT_NAME), ("output", config.output, OUTPUT_NAME)):
        if [(t.name, types.get(t.data_type), list(t.dims)) for t in declared] != [(name, "TYPE_STRING", [1])]:
            problems.append(f"{where}: {kind} must be one {name} TYPE_STRING dims [1]")
    params = {k: v.string_value for k, v in config.parameters.items()}
    try:
        check_bundle_digest(model_dir / "1" / BUNDLE_DIR, params.get("manifest_sha256", ""))
    except Exception as exc:  # reported, not raised
        problems.append(f"{where}: {exc}")
    target = params.get("bls_model")
    if target:
        if target not in configs:
            problems.append(f"{where}: calls model {target!r}, which the repository does not hold")
        else:
            declared_in = [t.name for t in configs[target].input]
            declared_out = [t.name for t in configs[target].output]
            if params.get("bls_inputs", "").split(",") != declared_in:
                problems.append(f"{where}: sends {params.get('bls_inputs')} but {target} takes {declared_in}")
            if not set(params.get("bls_outputs", "").split(",")) <= set(declared_out):
                problems.append(f"{where}: reads {params.get('bls_outputs')} but {target} gives {declared_out}")
    return problems
