"""Tokenization with the Rust ``tokenizers`` library, read from a bundle's ``tokenizer.json``.

The wrapped :class:`tokenizers.Tokenizer` is never mutated after loading, so one instance serves many
threads.  Options that need a differently configured tokenizer (truncation length and stride) get their
own copy, built once per configuration under a lock.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Sequence

from tokenizers import Encoding, Tokenizer

from .errors import BundleError, InputError
from .manifest import Manifest

logger = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
_SPECIAL_NAMES = ("mask_token", "pad_token", "cls_token", "sep_token", "unk_token", "bos_token", "eos_token")
#: How many differently-truncating tokenizer copies to keep (one per (length, stride) in use).
_MAX_VARIANTS = 16


def clean_up_spaces(text: str) -> str:
    """Remove the spaces decoding puts before punctuation and English contractions.

    The same rule set ``transformers`` applies when a tokenizer's ``clean_up_tokenization_spaces`` is set.
    """
    for spaced, joined in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                           (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(spaced, joined)
    return text


def read_json(manifest: Manifest, directory: Path, name: str) -> dict[str, Any]:
    """A verified JSON object from the bundle (``{}`` when the bundle has no such file)."""
    raw = manifest.read_file(directory, name)
    if raw is None:
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"cannot read {Path(directory) / name}: {str(exc)[:200]}") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{Path(directory) / name} holds a JSON {type(data).__name__}, not an object; re-export the bundle")
    return data


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):  # {"content": "[MASK]", "lstrip": ...}
        return value.get("content")
    return value if isinstance(value, str) else None


def _encode_batch(tokenizer: Tokenizer, items: list[Any]) -> list[Encoding]:
    """``encode_batch`` with special tokens; an input the tokenizer refuses is named by its index."""
    try:
        return tokenizer.encode_batch(items, add_special_tokens=True)
    except Exception as batch_error:  # TypeError / the Rust error type: find which input it was
        for index, item in enumerate(items):
            try:
                tokenizer.encode(*item) if isinstance(item, tuple) else tokenizer.encode(item)
            except Exception as exc:  # reported as that input's error
                raise InputError(f"input {index} cannot be tokenized ({type(exc).__name__}: {str(exc)[:120]}); "
                                 "pass plain UTF-8 text") from exc
        raise InputError(f"the inputs cannot be tokenized together: {str(batch_error)[:200]}") from batch_error


class TextTokenizer:
    """A bundle's tokenizer: encodings for single texts and question/context pairs, and decoding."""

    def __init__(self, tokenizer: Tokenizer, *, special_tokens: dict[str, str], clean_up: bool,
                 max_length: int, source: str = "") -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._serialized: str | None = None
        self._variants: dict[tuple[int, int, str], Tokenizer] = {}
        self._lock = threading.Lock()
        self.special_tokens = dict(special_tokens)
        self.clean_up = clean_up
        self.max_length = max_length
        self.source = source
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        self.pad_id = self._id_of("pad_token", default=0)
        self.cls_id = self._id_of("cls_token")
        self.mask_token = special_tokens.get("mask_token")
        self.mask_id = self._id_of("mask_token")

    @classmethod
    def from_bundle(cls, directory: Path, *, max_length: int, model_vocab_size: int | None,
                    manifest: Manifest | None = None) -> "TextTokenizer":
        """Load ``tokenizer.json`` and the special tokens; refuse a vocabulary the model cannot embed.

        Every file is checked against the bundle manifest's SHA-256 (``manifest``, read from ``directory``
        when not given) before it is parsed.
        """
        manifest = manifest if manifest is not None else Manifest.read(Path(directory))
        path = Path(directory) / TOKENIZER_FILE
        raw = manifest.read_file(directory, TOKENIZER_FILE)
        if raw is None:
            raise BundleError(f"bundle {directory} has no {TOKENIZER_FILE}; re-export it with `distilrt export`")
        try:
            tokenizer = Tokenizer.from_str(raw.decode("utf-8"))
        except Exception as exc:  # the Rust error type is not exported
            raise BundleError(f"cannot load {path}: {str(exc)[:200]}") from exc
        config = read_json(manifest, directory, "tokenizer_config.json")
        special_map = read_json(manifest, directory, "special_tokens_map.json")
        special: dict[str, str] = {}
        for name in _SPECIAL_NAMES:
            text = _token_text(special_map.get(name)) or _token_text(config.get(name))
            if text is not None:
                special[name] = text
        result = cls(tokenizer, special_tokens=special, clean_up=bool(config.get("clean_up_tokenization_spaces", False)),
                     max_length=max_length, source=str(path))
        if model_vocab_size is not None and result.vocab_size > model_vocab_size:
            raise BundleError(
                f"{path} has {result.vocab_size} tokens but the model embeds only {model_vocab_size} "
                "(config.json vocab_size); token ids past the embedding table would crash or read garbage. "
                "The tokenizer does not belong to this model: re-export the bundle from one checkpoint"
            )
        return result

    def _id_of(self, name: str, *, default: int | None = None) -> int | None:
        text = self.special_tokens.get(name)
        found = self._tokenizer.token_to_id(text) if text is not None else None
        return default if found is None else found

    # -- encoding -------------------------------------------------------------------------------------

    def _configured(self, max_length: int, stride: int, strategy: str) -> Tokenizer:
        """A copy of the tokenizer truncating at ``max_length`` with ``stride`` (made once, then shared)."""
        key = (max_length, stride, strategy)
        found = self._variants.get(key)
        if found is not None:
            return found
        with self._lock:
            if key not in self._variants:
                if self._serialized is None:
                    self._serialized = self._tokenizer.to_str()
                copy = Tokenizer.from_str(self._serialized)
                copy.no_padding()
                copy.enable_truncation(max_length, stride=stride, strategy=strategy)
                if len(self._variants) >= _MAX_VARIANTS:
                    self._variants.pop(next(iter(self._variants)))
                self._variants[key] = copy
            return self._variants[key]

    def encode(self, texts: Sequence[str], *, truncate_to: int | None = None) -> list[Encoding]:
        """Encode single texts with special tokens; truncate to ``truncate_to`` tokens only if asked."""
        tokenizer = self._tokenizer if truncate_to is None else self._configured(truncate_to, 0, "longest_first")
        return _encode_batch(tokenizer, list(texts))

    def encode_plain(self, text: str) -> Encoding:
        """Encode without special tokens (for counting and target lookup)."""
        return self._tokenizer.encode(text, add_special_tokens=False)

    def encode_pairs(self, pairs: Sequence[tuple[str, str]], *, truncate_to: int | None = None) -> list[Encoding]:
        """Encode (text, text_pair) inputs with special tokens."""
        tokenizer = self._tokenizer if truncate_to is None else self._configured(truncate_to, 0, "longest_first")
        return _encode_batch(tokenizer, list(pairs))

    def num_special_tokens(self, *, pair: bool) -> int:
        return self._tokenizer.num_special_tokens_to_add(pair)

    def encode_windows(self, question: str, context: str, *, max_seq_len: int, doc_stride: int,
                       max_question_len: int) -> list[Encoding]:
        """Encode a question with its context, splitting the context into overlapping windows.

        Every window holds the whole (possibly shortened) question and at most ``max_seq_len`` tokens;
        consecutive windows share ``doc_stride`` context tokens, so no part of the context is dropped.
        A question longer than ``max_question_len`` tokens is cut to that many tokens first.
        """
        question_tokens = self.encode_plain(question)
        if len(question_tokens.ids) > max_question_len:
            cut = question_tokens.offsets[max_question_len - 1][1]
            logger.debug("question has %d tokens; keeping the first %d", len(question_tokens.ids), max_question_len)
            question = question[:cut]
            question_tokens = self.encode_plain(question)
        room = max_seq_len - len(question_tokens.ids) - self.num_special_tokens(pair=True)
        if room < 1:
            raise InputError(
                f"the question takes {len(question_tokens.ids)} tokens, leaving no room for the context within "
                f"max_seq_len={max_seq_len}; pass a larger max_seq_len or a smaller max_question_len"
            )
        # The stride only matters when the context overflows one window; counting the context's tokens
        # costs a full extra encode, so do it only when the stride could not work.
        if doc_stride >= room and len(self.encode_plain(context).ids) > room:
            raise InputError(
                f"doc_stride={doc_stride} must be smaller than the {room} context tokens that fit in one window "
                f"(max_seq_len={max_seq_len} minus the question and special tokens); pass a smaller doc_stride "
                "or a larger max_seq_len"
            )
        try:
            encoding = self._configured(max_seq_len, doc_stride, "only_second").encode(question, context)
        except Exception as exc:  # the Rust truncation error has no Python type of its own
            raise InputError(
                f"cannot split the context into windows with max_seq_len={max_seq_len} and doc_stride={doc_stride} "
                f"({exc}); pass a doc_stride smaller than the {room} context tokens that fit in one window"
            ) from exc
        return [encoding, *encoding.overflowing]

    # -- decoding -------------------------------------------------------------------------------------

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
        text = self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)
        return clean_up_spaces(text) if self.clean_up else text

    def token_to_id(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tokenizer.id_to_token(token_id)
