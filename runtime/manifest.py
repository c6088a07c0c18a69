"""The bundle manifest: what export wrote, what the runtime checks before it opens a file.

``variants`` holds the standard files, one per precision, laid out as optimum and transformers.js read
them (``onnx/model.onnx`` is optimum's plain export, standard ONNX operators only).  ``graphs`` holds
the extra graphs of a precision that only some engines run, each validated like a variant, keyed
``<precision>-<graph>``::

    "graphs": {"fp32-fused": {"precision": "fp32", "file": "onnx/model_fused.onnx", "bytes": ...,
                              "sha256": ..., "parity": {...}, "details": {"graph": "fused", ...}},
               "fp32-flash": {...}}

Every entry, variant or extra graph, names its graph in ``details["graph"]``: ``plain`` (optimum's
export), ``fused`` (ONNX Runtime's transformer fusions for the CPU) or ``flash`` (fused, with
attention rewritten for ONNX Runtime's flash-attention kernel).  Export does not time anything: which
graph runs fastest is a property of the host, measured there.  Manifests written before ``graphs``
existed load with none (their ``details`` may also carry ``selection_ms``, ignored).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import BundleError
from .registry import PRECISIONS
from .validation import short

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Variant:
    """One ONNX file of a bundle and the parity figures measured when it was exported."""

    precision: str
    file: str  # relative to the bundle directory
    bytes: int
    sha256: str
    parity: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # optimisation applied, quantisation preset, ...

    @property
    def graph(self) -> str:
        """``plain``, ``fused`` or ``flash`` (older manifests said ``none`` for plain)."""
        name = str(self.details.get("graph") or "plain")
        return "plain" if name == "none" else name


@dataclass(frozen=True)
class Manifest:
    name: str
    task: str
    architecture: str
    model_type: str
    source: dict[str, Any]
    max_sequence_length: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    opset: int
    versions: dict[str, str]
    variants: dict[str, Variant]
    tokenizer: dict[str, Any] = field(default_factory=dict)
    pooling: dict[str, Any] | None = None  # sentence-transformers pooling, for feature-extraction bundles
    host: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    format_version: int = FORMAT_VERSION
    graphs: dict[str, Variant] = field(default_factory=dict)  # extra graphs, keyed "<precision>-<graph>"

    def to_json(self) -> str:
        data = asdict(self)
        data["inputs"] = list(self.inputs)
        data["outputs"] = list(self.outputs)
        data["variants"] = {k: {kk: vv for kk, vv in asdict(v).items() if kk != "precision"} for k, v in self.variants.items()}
        data["graphs"] = {k: asdict(v) for k, v in self.graphs.items()}
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    def write(self, directory: Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def read(cls, directory: Path) -> "Manifest":
        directory = Path(directory)
        path = directory / MANIFEST_NAME
        if not directory.is_dir():
            raise BundleError(f"bundle directory {str(directory)!r} does not exist; pass the directory `distilrt export` wrote")
        if not path.is_file():
            raise BundleError(
                f"{str(directory)!r} has no {MANIFEST_NAME}, so it is not a distilrt bundle; "
                f"create one with `distilrt export MODEL --output DIR`"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise BundleError(f"cannot read {path}: {exc}; re-export the bundle") from exc
        if not isinstance(data, dict):
            raise BundleError(f"{path} holds a JSON {type(data).__name__}, not an object; it is not a distilrt "
                              "manifest. Re-export the bundle with `distilrt export`")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{path} has format_version {short(version)}; this distilrt reads {FORMAT_VERSION}. "
                "Re-export the bundle with this version of distilrt."
            )
        _check_fields(path, data)
        try:
            variants = {
                name: Variant(precision=name, **fields) for name, fields in data.pop("variants").items()
            }
            unknown = set(variants) - set(PRECISIONS)
            if unknown:
                raise BundleError(f"{path} lists unknown variants {sorted(unknown)}; known: {', '.join(PRECISIONS)}")
            graphs = {name: Variant(**fields) for name, fields in (data.pop("graphs", None) or {}).items()}
            unknown = {name for name, graph in graphs.items() if graph.precision not in PRECISIONS}
            if unknown:
                raise BundleError(f"{path} lists graphs {sorted(unknown)} of unknown precisions; known: "
                                  f"{', '.join(PRECISIONS)}")
            data["graphs"] = graphs
            data["inputs"] = tuple(data["inputs"])
            data["outputs"] = tuple(data["outputs"])
            return cls(variants=variants, **data)
        except (KeyError, TypeError) as exc:
            raise BundleError(f"{path} is missing or has malformed fields ({exc}); re-export the bundle") from exc

    def variant(self, precision: str) -> Variant:
        """The standard file of ``precision``, or the extra graph keyed ``precision`` (e.g. ``fp32-flash``)."""
        found = self.variants.get(precision) or self.graphs.get(precision)
        if found is None:
            extra = f" (extra graphs: {', '.join(self.graphs)})" if self.graphs else ""
            raise BundleError(
                f"bundle {self.name!r} has no {precision} variant; it has: {', '.join(self.variants) or 'none'}"
                f"{extra}. Pick one of those, or re-export with `--precision {precision}`"
            )
        return found

    def graph_choices(self, precision: str) -> dict[str, str]:
        """Every graph of ``precision`` the bundle carries: graph name -> key for :meth:`variant`."""
        choices = {self.variants[precision].graph: precision} if precision in self.variants else {}
        for key, graph in self.graphs.items():
            if graph.precision == precision:
                choices.setdefault(graph.graph, key)
        return choices

    def preferred_graph(self, precision: str, order: tuple[str, ...] = ("flash", "fused", "plain")) -> str:
        """The key of the first graph in ``order`` the bundle has for ``precision``, else ``precision``.

        The default order is the ONNX Runtime CPU one before anything is measured on the host: the
        flash-attention graph, then the fused one, then the standard file (see ``distilrt.export.attention``).
        """
        choices = self.graph_choices(precision)
        return next((choices[g] for g in order if g in choices), precision)

    def verify(self, directory: Path, precision: str) -> Path:
        """Check the variant's file exists and matches its recorded SHA-256; return its path."""
        variant = self.variant(precision)
        path = Path(directory) / variant.file
        if not path.is_file():
            raise BundleError(f"bundle file {path} is missing; re-export the bundle")
        actual = sha256_file(path)
        if actual != variant.sha256:
            raise BundleError(
                f"{path} does not match the manifest (SHA-256 {actual[:16]}… != {variant.sha256[:16]}…); "
                "the file was modified or corrupted. Re-export the bundle; distilrt will not run it"
            )
        return path


#: manifest fields whose JSON type is checked before use (name -> (type, what it should be))
_FIELD_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "name": (str, "a string"), "task": (str, "a string"), "architecture": (str, "a string"),
    "model_type": (str, "a string"), "source": (dict, "an object"), "max_sequence_length": (int, "an integer"),
    "inputs": (list, "an array of names"), "outputs": (list, "an array of names"), "opset": (int, "an integer"),
    "versions": (dict, "an object"), "variants": (dict, "an object of precision -> variant"),
    "tokenizer": (dict, "an object"), "host": (dict, "an object"),
}
_VARIANT_TYPES: dict[str, tuple[type, str]] = {"file": (str, "a relative path"), "bytes": (int, "an integer"),
                                               "sha256": (str, "a hex digest")}


def _check_fields(path: Path, data: dict[str, Any]) -> None:
    """Refuse a manifest whose fields have the wrong JSON types (hand-edited or not written by distilrt)."""
    def bad(field: str, value: Any, wanted: str) -> BundleError:
        return BundleError(f"{path}: {field} must be {wanted}, got {type(value).__name__} {short(value)}; "
                           "re-export the bundle with `distilrt export`")

    for name, (kind, wanted) in _FIELD_TYPES.items():
        if name in data and (not isinstance(data[name], kind) or isinstance(data[name], bool)):
            raise bad(name, data[name], wanted)
    for name in ("inputs", "outputs"):
        if not all(isinstance(v, str) for v in data.get(name, [])):
            raise bad(name, data[name], "an array of strings")
    for precision, fields in data.get("variants", {}).items():
        if not isinstance(fields, dict):
            raise bad(f"variants.{precision}", fields, "an object with file, bytes and sha256")
        for name, (kind, wanted) in _VARIANT_TYPES.items():
            if name in fields and not isinstance(fields[name], kind):
                raise bad(f"variants.{precision}.{name}", fields[name], wanted)
