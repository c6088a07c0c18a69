"""feature-extraction: token hidden states, or pooled sentence embeddings (mean / CLS / max), optionally L2-normalised.

Calls return what transformers' feature-extraction pipeline returns (token states as nested lists).  A
bundle exported from a sentence-transformers model records its pooling in the manifest; ``pooling="auto"``
and :meth:`FeatureExtraction.embed` use it (with its normalisation, ``max_seq_length``, ``do_lower_case``
and prompts), so embeddings match ``SentenceTransformer.encode``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BundleError, InputError
from ..manifest import Manifest
from ..outputs import FeaturesOutput
from .base import Prepared, Task, as_text_list

logger = logging.getLogger(__name__)

POOLINGS = ("auto", "none", "mean", "cls", "max")


def _read_bundle_json(manifest: Manifest, directory: Path, name: str) -> Any:
    """A JSON file of the bundle, verified against the manifest's ``files`` (None when the bundle lacks it)."""
    raw = manifest.read_file(directory, name)
    if raw is None:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"cannot read {Path(directory) / name}: {str(exc)[:200]}; re-export the bundle") from exc


def _read_json(manifest: Manifest, directory: Path, name: str) -> dict[str, Any]:
    data = _read_bundle_json(manifest, directory, name)
    return data if isinstance(data, dict) else {}


def _read_json_list(manifest: Manifest, directory: Path, name: str) -> list[dict[str, Any]]:
    data = _read_bundle_json(manifest, directory, name)
    return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


_POOLING_MODES = ("pooling_mode_mean_tokens", "pooling_mode_cls_token", "pooling_mode_max_tokens")


@dataclass(frozen=True)
class SentenceConfig:
    """What sentence-transformers applies around the encoder, read from the files it saved beside it."""

    max_seq_length: int | None = None  # sentence_bert_config.json: texts are cut there
    do_lower_case: bool = False  # sentence_bert_config.json: texts are lower-cased before tokenizing
    prompts: dict[str, str] = field(default_factory=dict)  # config_sentence_transformers.json
    default_prompt_name: str | None = None
    unsupported: tuple[str, ...] = ()  # modules / pooling modes distilrt does not reproduce

    def check(self, name: str) -> None:
        """Refuse to pool for a model whose sentence-transformers stack distilrt would get wrong."""
        if self.unsupported:
            raise BundleError(f"{name!r} is a sentence-transformers model with {', '.join(self.unsupported)}, which "
                              "distilrt does not reproduce (it runs Transformer, one of mean / CLS / max Pooling, and "
                              "Normalize); its pooled embeddings would differ. Use pooling='none' for token states")

    @classmethod
    def read(cls, manifest: Manifest, directory: Path, *, model_max: int) -> "SentenceConfig":
        bert = _read_json(manifest, directory, "sentence_bert_config.json")
        extra = _read_json(manifest, directory, "config_sentence_transformers.json")
        value = bert.get("max_seq_length")
        limit = min(int(value), model_max) if isinstance(value, int) and value > 0 else None
        prompts = extra.get("prompts") if isinstance(extra.get("prompts"), dict) else {}
        default = extra.get("default_prompt_name")
        return cls(limit, bool(bert.get("do_lower_case", False)), {str(k): str(v) for k, v in prompts.items()},
                   default if isinstance(default, str) else None, cls._unsupported(manifest, directory))

    @staticmethod
    def _unsupported(manifest: Manifest, directory: Path) -> tuple[str, ...]:
        found: list[str] = []
        modules = _read_json_list(manifest, directory, "modules.json")
        for module in modules:
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            if kind not in ("Transformer", "Pooling", "Normalize"):
                found.append(f"a {kind} module")
            if kind == "Pooling":
                config = _read_json(manifest, directory, f"{module.get('path') or ''}/config.json".lstrip("/"))
                modes = [k for k, v in config.items() if k.startswith("pooling_mode_") and v is True]
                if len(modes) > 1 or (modes and modes[0] not in _POOLING_MODES):
                    found.append(f"pooling {' + '.join(modes)}")
                if config.get("include_prompt") is False:
                    found.append("include_prompt=false")
        return tuple(found)


class FeatureExtraction(Task):
    """``fe(text)`` -> nested lists ``[1][tokens][hidden]`` as transformers; ``fe.embed(texts)`` -> ``[n, hidden]``."""

    task = "feature-extraction"
    required_outputs = ("last_hidden_state",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bundle_pooling: dict[str, Any] = dict(self.manifest.pooling or {})
        self.sentence = (SentenceConfig.read(self.manifest, self.bundle.path, model_max=self.max_sequence_length)
                         if self.bundle_pooling else SentenceConfig())

    @property
    def sentence_max_length(self) -> int | None:
        """sentence-transformers' ``max_seq_length`` (it truncates there), if the bundle came from such a model."""
        return self.sentence.max_seq_length

    def __call__(self, inputs: str | list[str], *, pooling: str = "none", normalize: bool | None = None,
                 truncation: bool | None = None, return_tensors: bool = False,
                 tokenize_kwargs: dict[str, Any] | None = None) -> FeaturesOutput:
        """Features of each text, shaped as transformers' feature-extraction pipeline shapes them.

        ``pooling="none"`` (the default): each text's token states ``[1, tokens, hidden]`` (special
        tokens included), as nested lists, or float32 arrays with ``return_tensors=True``; a list of
        texts gives a list of those.  "mean" (over real tokens), "cls" or "max" give one vector per
        text (``[hidden]`` for a string, ``[n, hidden]`` for a list); "auto" is the bundle's
        sentence-transformers pooling (else "none").  Pooled outputs of a sentence-transformers bundle
        get its preprocessing too: lower-casing if ``do_lower_case``, and cutting at
        ``max_seq_length``.  ``normalize`` (default: the bundle's sentence-transformers setting, else
        False) L2-normalises pooled vectors.  ``truncation``: None cuts as just said and refuses other
        over-long texts; True cuts at the model's maximum; False always refuses (also accepted as
        ``tokenize_kwargs={"truncation": ...}``).
        """
        prepared = self._prepare(inputs=inputs, pooling=pooling, normalize=normalize, truncation=truncation,
                                 return_tensors=return_tensors, tokenize_kwargs=tokenize_kwargs)
        results = self.run_prepared(prepared)
        if prepared.options["mode"] == "none":
            shaped: list[Any] = results if return_tensors else [state.tolist() for state in results]
            return shaped[0] if prepared.single else shaped
        vectors = np.stack(results)
        result = vectors[0] if prepared.single else vectors
        return result if return_tensors else result.tolist()

    def _prepare(self, *, inputs: Any, pooling: Any, normalize: bool | None, truncation: bool | None,
                 return_tensors: bool, tokenize_kwargs: dict[str, Any] | None) -> Prepared:
        truncation = self._truncation_option(truncation, tokenize_kwargs)
        texts, single = as_text_list(inputs, "inputs")
        if pooling not in POOLINGS:
            raise InputError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        mode = self.bundle_pooling.get("mode", "none") if pooling == "auto" else pooling
        if mode == "none" and normalize:
            raise InputError("normalize=True needs pooled vectors; pass pooling='mean', 'cls', 'max' or 'auto'")
        return self._prepare_texts(texts, single, mode, normalize=normalize, truncation=truncation, batch_size=None)

    def embed(self, sentences: str | list[str], *, batch_size: int | None = None, normalize: bool | None = None,
              pooling: str = "auto", prompt_name: str | None = None, prompt: str | None = None,
              truncation: bool | None = None) -> np.ndarray:
        """Sentence embeddings as ``SentenceTransformer.encode`` returns them: float32 ``[n, hidden]``.

        A single string gives ``[hidden]``, as in sentence-transformers.  ``pooling="auto"`` is the
        bundle's sentence-transformers pooling, mean pooling for other encoders.  ``normalize``
        defaults to the bundle's ``Normalize`` module.  ``prompt`` (text put before each sentence) or
        ``prompt_name`` (one of the model's configured prompts; default: its ``default_prompt_name``).
        ``batch_size`` (default: the pipeline's) sequences run together.
        """
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        texts, single = as_text_list(sentences, "sentences")
        if pooling not in POOLINGS or pooling == "none":
            raise InputError(f"pooling must be one of auto, mean, cls, max, got {pooling!r}")
        mode = self.bundle_pooling.get("mode", "mean") if pooling == "auto" else pooling
        prefix = self._prompt(prompt_name, prompt)
        if prefix:
            texts = [prefix + text for text in texts]
        prepared = self._prepare_texts(texts, single, mode, normalize=normalize,
                                       truncation=self._truncation_option(truncation, None), batch_size=batch_size)
        vectors = np.stack(self.run_prepared(prepared))
        return vectors[0] if single else vectors

    def _prompt(self, prompt_name: str | None, prompt: str | None) -> str:
        if prompt is not None and prompt_name is not None:
            raise InputError("pass prompt= or prompt_name=, not both")
        if prompt is not None:
            if not isinstance(prompt, str):
                raise InputError(f"prompt must be a string, got {type(prompt).__name__}")
            return prompt
        name = prompt_name if prompt_name is not None else self.sentence.default_prompt_name
        if name is None:
            return ""
        if name not in self.sentence.prompts:
            known = ", ".join(sorted(self.sentence.prompts)) or "none (config_sentence_transformers.json lists no prompts)"
            raise InputError(f"unknown prompt_name {name!r}; this model's prompts: {known}")
        return self.sentence.prompts[name]

    @staticmethod
    def _truncation_option(truncation: bool | None, tokenize_kwargs: dict[str, Any] | None) -> bool | None:
        if tokenize_kwargs:
            if not isinstance(tokenize_kwargs, dict) or set(tokenize_kwargs) - {"truncation"}:
                raise InputError(f"tokenize_kwargs may hold only 'truncation', got {tokenize_kwargs!r:.80}")
            if truncation is not None:
                raise InputError("truncation is given twice (as truncation= and in tokenize_kwargs); pass it once")
            truncation = tokenize_kwargs["truncation"]
        if truncation is not None and not isinstance(truncation, bool):
            raise InputError(f"truncation must be True, False or None, got {truncation!r}")
        return truncation

    def _prepare_texts(self, texts: list[str], single: bool, mode: str, *, normalize: bool | None,
                       truncation: bool | None, batch_size: int | None) -> Prepared:
        """Texts tokenized for ``mode``: a sentence-transformers bundle's preprocessing applies to pooled modes."""
        pooled = mode != "none"
        if pooled:
            self.sentence.check(self.manifest.name)
        if normalize is None:
            normalize = bool(self.bundle_pooling.get("normalize", False)) if pooled else False
        sentence = pooled and bool(self.bundle_pooling)
        if sentence and self.sentence.do_lower_case:
            texts = [text.lower() for text in texts]
        if truncation is None:
            limit = self.sentence.max_seq_length if sentence else None
        else:
            limit = self.max_sequence_length if truncation else None
        encodings, lengths = self.tokenizer.encode_counted(texts, truncate_to=limit)
        options = {"mode": mode, "normalize": normalize, "batch_size": batch_size}
        return Prepared(self.task, options, tuple(encodings), tuple(texts), tuple(lengths), single)

    def run_prepared(self, prepared: Prepared) -> list[Any]:
        """Token states ``[1, tokens, hidden]`` per text, or pooled (and normalised) ``[hidden]`` vectors."""
        encodings = list(prepared.inputs)
        self.check_lengths(encodings, prepared.texts, hint="pass truncation=True to cut it to the model's maximum")
        mode = prepared.options["mode"]
        if mode == "none":
            return self.run_rows(encodings, lambda out, enc: np.array(out["last_hidden_state"], dtype=np.float32)[None])
        rows = self.run_rows(encodings, lambda out, enc: self._pool(out["last_hidden_state"], mode),
                             batch_size=prepared.options["batch_size"])
        vectors = np.stack(rows)
        if prepared.options["normalize"]:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
        return list(vectors.astype(np.float32, copy=False))

    @staticmethod
    def _pool(states: np.ndarray, mode: str) -> np.ndarray:
        # ``states`` holds only this text's tokens (padding was cut off), so a plain mean is the
        # attention-mask-weighted mean.
        if mode == "cls":
            return states[0].astype(np.float32)
        if mode == "max":
            return states.max(axis=0).astype(np.float32)
        return states.astype(np.float32).mean(axis=0)
