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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import BundleError
from .registry import PRECISIONS
from .validation import read_json_object, short

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
    # every file of the bundle besides the manifest: relative path -> {"sha256", "bytes"} (see seal())
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

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
    def read(cls, directory: Path, *, sealed: bool = True) -> "Manifest":
        """Read and type-check ``manifest.json``; with ``sealed`` (the default) refuse one without ``files``."""
        directory = Path(directory)
        path = directory / MANIFEST_NAME
        if not directory.is_dir():
            raise BundleError(f"bundle directory {str(directory)!r} does not exist; pass the directory `distilrt export` wrote")
        if not path.is_file():
            raise BundleError(
                f"{str(directory)!r} has no {MANIFEST_NAME}, so it is not a distilrt bundle; "
                f"create one with `distilrt export MODEL --output DIR`"
            )
        data = read_json_object(path, error=BundleError, what="a distilrt manifest",
                                fix="re-export the bundle with `distilrt export`")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{path} has format_version {short(version)}; this distilrt reads {FORMAT_VERSION}. "
                "Re-export the bundle with this version of distilrt."
            )
        _check_fields(path, data)
        if sealed and not data.get("files"):
            raise BundleError(f"{path} lists no files with their SHA-256 (written by an older distilrt), so its tokenizer "
                              "and config cannot be verified; re-export the bundle with `distilrt export MODEL --force`")
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

    def read_file(self, directory: Path, name: str) -> bytes | None:
        """The bytes of the bundle file ``name``, checked against the manifest's ``files`` before use.

        None when the manifest does not list it and the bundle has no such file (optional files such as
        ``special_tokens_map.json``).  A file on disk the manifest does not list, one that differs from its
        recorded size or SHA-256, or a path leaving the bundle is refused.  The bytes returned are the
        bytes hashed, so a file swapped after the check is never used.
        """
        path = inside(directory, name)
        entry = self.files.get(name)
        if entry is None:
            if path.exists():
                raise BundleError(f"{path} is not listed in the bundle's manifest, so it cannot be verified; remove it "
                                  "or re-export the bundle")
            return None
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BundleError(f"bundle file {path} is missing; re-export the bundle") from None
        except OSError as exc:
            raise BundleError(f"cannot read bundle file {path}: {exc.strerror or exc}") from exc
        actual = hashlib.sha256(data).hexdigest()
        if len(data) != entry.get("bytes") or actual != entry.get("sha256"):
            raise BundleError(f"{path} does not match the manifest (SHA-256 {actual[:16]}…, {len(data)} bytes); the "
                              "file was modified or replaced. Re-export the bundle; distilrt will not use it")
        return data


def inside(directory: Path, name: str) -> Path:
    """``directory / name`` if it stays inside ``directory`` (no absolute path, no ``..``, no symlink out)."""
    relative = Path(name)
    if not name or relative.is_absolute() or ".." in relative.parts or "\\" in name:
        raise BundleError(f"the manifest names the file {short(name)}, which is not a plain path inside the bundle; "
                          "re-export the bundle")
    root = Path(directory).resolve()
    resolved = (root / relative).resolve()
    if resolved != root and root not in resolved.parents:
        raise BundleError(f"bundle file {short(name)} resolves to {short(str(resolved))}, outside the bundle {root} "
                          "(a symlink leaves it); distilrt reads only files inside the bundle. Re-export the bundle")
    return root / relative


def seal(manifest: Manifest, directory: Path) -> Manifest:
    """``manifest`` with ``files`` listing every file under ``directory`` (the manifest itself aside)."""
    directory = Path(directory)
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.rglob("*")):
        if path.is_symlink():
            raise BundleError(f"{path} is a symlink; a bundle holds plain files only")
        if path.is_file() and path.name != MANIFEST_NAME:
            files[path.relative_to(directory).as_posix()] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return replace(manifest, files=files)


#: manifest fields whose JSON type is checked before use (name -> (type, what it should be))
_FIELD_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "name": (str, "a string"), "task": (str, "a string"), "architecture": (str, "a string"),
    "model_type": (str, "a string"), "source": (dict, "an object"), "max_sequence_length": (int, "an integer"),
    "inputs": (list, "an array of names"), "outputs": (list, "an array of names"), "opset": (int, "an integer"),
    "versions": (dict, "an object"), "variants": (dict, "an object of precision -> variant"),
    "tokenizer": (dict, "an object"), "host": (dict, "an object"), "files": (dict, "an object of path -> digest"),
    "graphs": (dict, "an object of extra graphs"),
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
    for name, entry in data.get("files", {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("bytes"), int):
            raise bad(f"files.{str(name)[:60]}", entry, "an object with sha256 and bytes")
    for section in ("variants", "graphs"):
        for key, fields in (data.get(section) or {}).items():
            if not isinstance(fields, dict):
                raise bad(f"{section}.{str(key)[:60]}", fields, "an object with file, bytes and sha256")
            for name, (kind, wanted) in _VARIANT_TYPES.items():
                if name in fields and not isinstance(fields[name], kind):
                    raise bad(f"{section}.{str(key)[:60]}.{name}", fields[name], wanted)
