"""Tokenization with the Rust ``tokenizers`` library, read from a bundle's ``tokenizer.json``.

The wrapped :class:`tokenizers.Tokenizer` is never mutated after loading, so one instance serves many
threads.  Options that need a differently configured tokenizer (truncation length and stride) get their
own copy, built once per configuration under a lock.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from tokenizers import Encoding, Tokenizer

from .errors import BundleError, InputError
from .manifest import Manifest

logger = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
_SPECIAL_NAMES = ("mask_token", "pad_token", "cls_token", "sep_token", "unk_token", "bos_token", "eos_token")
#: How many differently-truncating tokenizer copies to keep (one per (length, stride) in use).
_MAX_VARIANTS = 16
#: The key of the copy that tokenizes without post-processing (see :meth:`TextTokenizer.tokenize`).
_PLAIN = ("plain",)


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


def _encode_batch(tokenizer: Tokenizer, items: list[Any], *, special: bool = True) -> list[Encoding]:
    """``encode_batch``; an input the tokenizer refuses is named by its index."""
    try:
        return tokenizer.encode_batch(items, add_special_tokens=special)
    except Exception as batch_error:  # TypeError / the Rust error type: find which input it was
        for index, item in enumerate(items):
            try:
                tokenizer.encode(*item) if isinstance(item, tuple) else tokenizer.encode(item)
            except Exception as exc:  # reported as that input's error
                raise InputError(f"input {index} cannot be tokenized ({type(exc).__name__}: {str(exc)[:120]}); "
                                 "pass plain UTF-8 text") from exc
        raise InputError(f"the inputs cannot be tokenized together: {str(batch_error)[:200]}") from batch_error


def window_tokens(question: int, context: int, *, max_seq_len: int, doc_stride: int, special: tuple[int, int]) -> int:
    """Tokens of every window a question of ``question`` tokens and a context of ``context`` tokens make.

    Each window holds the question, the pair's special tokens and up to ``room`` context tokens;
    consecutive windows share ``doc_stride`` context tokens.  ``special``: the special tokens around one
    text and around a pair.  Raises :class:`InputError` where the tokenizer would refuse to split: the
    question leaves no room, or the stride does not fit (in any window, or in this context's windows).
    """
    head = question + special[1]
    room = max_seq_len - head
    if room < 1:
        raise InputError(f"the question takes {head} tokens with the special tokens, leaving no room for the context "
                         f"within max_seq_len={max_seq_len}; shorten the question, or pass a larger max_seq_len or a "
                         "smaller max_question_len")
    if doc_stride > max_seq_len - special[0] or (context > room and doc_stride >= room):
        raise InputError(f"doc_stride={doc_stride} must be smaller than the {room} context tokens that fit in one window "
                         f"(max_seq_len={max_seq_len} minus the question and special tokens); pass a smaller doc_stride "
                         "or a larger max_seq_len")
    windows = 1 if context <= room else 1 + math.ceil((context - room) / (room - doc_stride))
    return context + windows * head + (windows - 1) * doc_stride


class TextTokenizer:
    """A bundle's tokenizer: encodings for single texts and question/context pairs, and decoding."""

    def __init__(self, tokenizer: Tokenizer, *, special_tokens: dict[str, str], clean_up: bool,
                 max_length: int, source: str = "") -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._serialized: str | None = None
        self._variants: dict[tuple[Any, ...], Tokenizer] = {}
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

        def truncating(copy: Tokenizer) -> None:
            copy.enable_truncation(max_length, stride=stride, strategy=strategy)

        return self._copy((max_length, stride, strategy), truncating)

    def _copy(self, key: tuple[Any, ...], configure: Callable[[Tokenizer], None]) -> Tokenizer:
        found = self._variants.get(key)
        if found is not None:
            return found
        with self._lock:
            if key not in self._variants:
                if self._serialized is None:
                    self._serialized = self._tokenizer.to_str()
                copy = Tokenizer.from_str(self._serialized)
                copy.no_padding()
                configure(copy)
                if len(self._variants) >= _MAX_VARIANTS:
                    self._variants.pop(next(k for k in self._variants if k != _PLAIN))
                self._variants[key] = copy
            return self._variants[key]

    def tokenize(self, texts: Sequence[str]) -> list[Encoding]:
        """Each text's tokens, untruncated and without special tokens: the one tokenization of a call.

        :meth:`sequence` and :meth:`windows` build what the model runs from these without tokenizing
        again, so a caller that bounds a request by its token counts first (the HTTP service) tokenizes
        each text once.
        """

        def plain(copy: Tokenizer) -> None:
            copy.post_processor = None  # special tokens and offset trimming come later, in sequence()/windows()

        return _encode_batch(self._copy(_PLAIN, plain), list(texts), special=False)

    def sequence(self, tokens: Encoding, pair: Encoding | None = None, *, truncate_to: int | None = None) -> Encoding:
        """A model input from :meth:`tokenize` output: special tokens added, cut to ``truncate_to`` tokens if asked."""
        tokenizer = self._tokenizer if truncate_to is None else self._configured(truncate_to, 0, "longest_first")
        return tokenizer.post_process(tokens, pair)

    def length(self, tokens: Encoding, pair: Encoding | None = None) -> int:
        """Tokens of ``sequence(tokens, pair)`` before any truncation."""
        return len(tokens.ids) + (len(pair.ids) if pair is not None else 0) + self.num_special_tokens(pair=pair is not None)

    def questions(self, questions: Sequence[str], *, max_question_len: int) -> list[Encoding]:
        """:meth:`tokenize` for questions, each cut to ``max_question_len`` tokens (the text re-read up to there)."""
        tokens = self.tokenize(questions)
        for index, (question, encoding) in enumerate(zip(questions, tokens)):
            if len(encoding.ids) > max_question_len:
                logger.debug("question has %d tokens; keeping the first %d", len(encoding.ids), max_question_len)
                shown = self._tokenizer.post_process(encoding, add_special_tokens=False)  # offsets as decoded
                tokens[index] = self.tokenize([question[:shown.offsets[max_question_len - 1][1]]])[0]
        return tokens

    def window_tokens(self, question: Encoding, context: Encoding, *, max_seq_len: int, doc_stride: int) -> int:
        """How many tokens :meth:`windows` will build, without building them (raises as it would)."""
        return window_tokens(len(question.ids), len(context.ids), max_seq_len=max_seq_len, doc_stride=doc_stride,
                             special=(self.num_special_tokens(pair=False), self.num_special_tokens(pair=True)))

    def windows(self, question: Encoding, context: Encoding, *, max_seq_len: int, doc_stride: int) -> list[Encoding]:
        """The model inputs of a question and its context, the context split into overlapping windows.

        Every window holds the whole question and at most ``max_seq_len`` tokens; consecutive windows
        share ``doc_stride`` context tokens, so no part of the context is dropped.  The same windows as
        ``encode(question, context)`` with ``only_second`` truncation and that stride, from tokens
        :meth:`tokenize` already made.
        """
        self.window_tokens(question, context, max_seq_len=max_seq_len, doc_stride=doc_stride)
        room = max_seq_len - len(question.ids) - self.num_special_tokens(pair=True)
        piece = Encoding.merge([context], growing_offsets=False)  # a copy: truncate() cuts in place
        if len(piece.ids) > room:
            piece.truncate(room, stride=doc_stride)
        return [self._tokenizer.post_process(question, part) for part in (piece, *piece.overflowing)]

    def encode(self, texts: Sequence[str], *, truncate_to: int | None = None) -> list[Encoding]:
        """Encode single texts with special tokens; truncate to ``truncate_to`` tokens only if asked."""
        return self.encode_counted(texts, truncate_to=truncate_to)[0]

    def encode_counted(self, texts: Sequence[str], *, truncate_to: int | None = None) -> tuple[list[Encoding], list[int]]:
        """:meth:`encode`, with each text's length before any truncation (special tokens included).

        Untruncated, the texts are encoded in one pass of the tokenizer; truncated, through
        :meth:`tokenize` and :meth:`sequence`, so the full lengths come from the same pass.
        """
        if truncate_to is None:
            encodings = _encode_batch(self._tokenizer, list(texts))
            return encodings, [len(e.ids) for e in encodings]
        tokens = self.tokenize(texts)
        return [self.sequence(t, truncate_to=truncate_to) for t in tokens], [self.length(t) for t in tokens]

    def encode_plain(self, text: str) -> Encoding:
        """Encode without special tokens (for counting and target lookup)."""
        return self._tokenizer.encode(text, add_special_tokens=False)

    def encode_pairs(self, pairs: Sequence[tuple[str, str]], *, truncate_to: int | None = None) -> list[Encoding]:
        """Encode (text, text_pair) inputs with special tokens."""
        firsts = self.tokenize([first for first, _ in pairs])
        seconds = self.tokenize([second for _, second in pairs])
        return [self.sequence(a, b, truncate_to=truncate_to) for a, b in zip(firsts, seconds)]

    def num_special_tokens(self, *, pair: bool) -> int:
        return self._tokenizer.num_special_tokens_to_add(pair)

    def encode_windows(self, question: str, context: str, *, max_seq_len: int, doc_stride: int,
                       max_question_len: int) -> list[Encoding]:
        """:meth:`windows` of one question (cut to ``max_question_len`` tokens) and its context, from text."""
        tokens = self.questions([question], max_question_len=max_question_len)[0]
        return self.windows(tokens, self.tokenize([context])[0], max_seq_len=max_seq_len, doc_stride=doc_stride)

    # -- decoding -------------------------------------------------------------------------------------

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
        text = self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)
        return clean_up_spaces(text) if self.clean_up else text

    def token_to_id(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tokenizer.id_to_token(token_id)
