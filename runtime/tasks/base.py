"""What every task shares: input checks, prepared inputs, and encodings -> sorted batches -> session -> rows in input order.

A call is two steps: ``prepare`` checks the inputs and options and tokenizes each text once
(:class:`Prepared`); ``run_prepared`` runs the model and post-processes, one result per input.  Calling a
task does both; the HTTP service does the first on arrival (its limits read the token counts) and the
second for a whole batch of requests, so no request is tokenized twice.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence, TypeVar

import numpy as np
from tokenizers import Encoding

from ..batching import length_sorted_batches, pad_batch
from ..bundle import Bundle
from ..errors import InputError
from ..manifest import Manifest
from ..engines.base import Engine
from ..tokenizer import TextTokenizer
from ..validation import check_text, short

logger = logging.getLogger(__name__)

R = TypeVar("R")
#: Turns one encoding's slice of the batch outputs (padding removed) into what the task keeps.
RowFn = Callable[[dict[str, np.ndarray], Encoding], R]


def as_text_list(value: Any, what: str, *, allow_empty: bool = False) -> tuple[list[str], bool]:
    """``(texts, was_single)`` for a string or a list/tuple of strings; typed errors for anything else."""
    if isinstance(value, str):
        texts, single = [value], True
    elif isinstance(value, (list, tuple)):
        texts, single = list(value), False
    else:
        raise InputError(f"{what} must be a string or a list of strings, got {type(value).__name__}")
    for index, text in enumerate(texts):
        where = what if single else f"{what}[{index}]"
        if not isinstance(text, str):
            raise InputError(f"{where} must be a string, got {type(text).__name__} ({short(text)})")
        if not allow_empty and not text.strip():
            raise InputError(f"{where} is empty or only whitespace; pass some text")
        check_text(text, where)
    if not texts:
        raise InputError(f"{what} is an empty list; pass at least one text")
    return texts, single


def check_top_k(top_k: Any, *, allow_none: bool = False) -> int | None:
    if top_k is None and allow_none:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        allowed = "a positive integer" + (" or None" if allow_none else "")
        raise InputError(f"top_k must be {allowed}, got {short(top_k)}")
    return top_k


@dataclass(frozen=True)
class Prepared:
    """A call's inputs, checked and tokenized: what :meth:`Task.run_prepared` runs.

    ``inputs[i]`` is what input i runs as (an ``Encoding``; for question answering its question and
    context tokens), ``texts[i]`` the text its result quotes, ``lengths[i]`` the tokens it costs before any
    truncation, special tokens included (question answering: every window).  ``options`` are the call's
    checked options; ``single`` says the call passed one input rather than a list.
    """

    task: str
    options: dict[str, Any]
    inputs: tuple[Any, ...]
    texts: tuple[str, ...]
    lengths: tuple[int, ...]
    single: bool = False

    @classmethod
    def concat(cls, parts: Sequence["Prepared"]) -> "Prepared":
        """Several prepared calls as one (they must share the task and the options)."""
        first = parts[0]
        if any(part.task != first.task or part.options != first.options for part in parts[1:]):
            raise ValueError("prepared inputs of different tasks or options cannot run as one call")
        return cls(first.task, first.options, tuple(x for p in parts for x in p.inputs),
                   tuple(x for p in parts for x in p.texts), tuple(x for p in parts for x in p.lengths),
                   single=len(parts) == 1 and first.single)


class Task:
    """A callable pipeline for one task over one bundle; safe to call from several threads at once."""

    task: ClassVar[str] = ""
    #: Outputs the graph must have for this task.
    required_outputs: ClassVar[tuple[str, ...]] = ()
    #: Outputs with one value per sequence rather than per token (never cut to the sequence length).
    per_sequence_outputs: ClassVar[tuple[str, ...]] = ()
    #: Call options given to ``pipeline(...)`` (as transformers accepts them there); a call's own win.
    call_defaults: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        call = cls.__dict__.get("__call__")
        if call is None or getattr(call, "_merges_defaults", False):
            return

        @functools.wraps(call)
        def with_defaults(self: "Task", *args: Any, **options: Any) -> Any:
            if self.call_defaults:
                options = {**self.call_defaults, **options}
            return call(self, *args, **options)

        with_defaults._merges_defaults = True  # type: ignore[attr-defined]
        cls.__call__ = with_defaults  # type: ignore[method-assign]

    @classmethod
    def call_options(cls) -> tuple[str, ...]:
        """The keyword options a call of this task accepts."""
        signature = inspect.signature(inspect.unwrap(cls.__call__))
        return tuple(name for name, p in signature.parameters.items() if p.kind is p.KEYWORD_ONLY)

    def set_call_defaults(self, options: dict[str, Any]) -> None:
        """Options every call gets unless it passes its own (``pipeline("fill-mask", MODEL, top_k=3)``)."""
        unknown = sorted(set(options) - set(self.call_options()))
        if unknown:
            raise InputError(f"{self.task} does not take the option(s) {', '.join(unknown)}; it takes: "
                             f"{', '.join(self.call_options())}")
        self.call_defaults = dict(options)

    def prepare(self, *args: Any, **options: Any) -> Prepared:
        """Check and tokenize a call's inputs without running the model (the same arguments as a call).

        ``run_prepared(prepare(...))`` gives the call's results, one per input; a caller that bounds the
        work in between (by ``Prepared.lengths``) tokenizes nothing twice.
        """
        bound = inspect.signature(inspect.unwrap(type(self).__call__)).bind(self, *args,
                                                                             **{**self.call_defaults, **options})
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        del arguments["self"]
        return self._prepare(**arguments)

    def _prepare(self, **arguments: Any) -> Prepared:
        raise NotImplementedError

    def run_prepared(self, prepared: Prepared) -> list[Any]:
        """Run the model on prepared inputs and post-process: one result per input, in order."""
        raise NotImplementedError

    def __init__(self, *, bundle: Bundle, session: Engine, tokenizer: TextTokenizer, batch_size: int = 32,
                 streams: int = 1, stream_session: Callable[[], Engine] | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
            raise InputError(f"streams must be a positive integer, got {streams!r}")
        if streams > 1 and stream_session is None:
            raise InputError("streams > 1 needs a single-threaded session to run them on (pass stream_session)")
        missing = [name for name in self.required_outputs if name not in session.output_names]
        if missing:
            from ..errors import BundleError

            raise BundleError(f"bundle {bundle.manifest.name!r} has outputs {session.output_names}, but {self.task} "
                              f"needs {missing}; re-export it with `--task {self.task}`")
        self.bundle = bundle
        self.session = session
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.streams = streams
        self._make_stream_session = stream_session
        self._stream_session: Engine | None = None
        self._stream_lock = threading.Lock()
        self.call_defaults = {}
        #: How the model argument was found (local bundle, bundle cache, hub ONNX repo, export); set by pipeline().
        self.resolved: Any = None

    # -- resolved values ------------------------------------------------------------------------------

    @property
    def manifest(self) -> Manifest:
        return self.bundle.manifest

    @property
    def precision(self) -> str:
        return self.session.precision

    @property
    def providers(self) -> list[str]:
        return list(self.session.providers)

    @property
    def max_sequence_length(self) -> int:
        return self.tokenizer.max_length

    @property
    def mask_token(self) -> str | None:
        return self.tokenizer.mask_token

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(bundle={str(self.bundle.path)!r}, precision={self.precision!r}, "
                f"providers={self.providers})")

    # -- shared execution -----------------------------------------------------------------------------

    def check_lengths(self, encodings: Sequence[Encoding], texts: Sequence[str], *, hint: str) -> None:
        """Refuse (never silently cut) inputs longer than the model's maximum sequence length."""
        limit = self.max_sequence_length
        for index, encoding in enumerate(encodings):
            if len(encoding.ids) > limit:
                raise InputError(
                    f"input {index} has {len(encoding.ids)} tokens, more than this model's maximum of {limit} "
                    f"({texts[index][:40]!r}...); {hint}"
                )

    def run_rows(self, encodings: Sequence[Encoding], row: RowFn[R], *, batch_size: int | None = None) -> list[R]:
        """Run every encoding through the model in length-sorted batches; ``row`` results in input order.

        ``row`` sees each encoding's outputs with the padding removed (per-token outputs are cut to
        that encoding's length; per-sequence outputs are passed whole).  With ``streams`` > 1 and more
        than one batch, the batches run ``streams`` at a time, each on one core (see :meth:`_streamed`).
        """
        results: list[Any] = [None] * len(encodings)
        batches = list(length_sorted_batches([len(e.ids) for e in encodings], batch_size or self.batch_size))

        def run(batch: list[int], session: Engine) -> None:
            chosen = [encodings[i] for i in batch]
            feeds = pad_batch(chosen, pad_id=self.tokenizer.pad_id, input_names=session.input_names,
                              dtypes=session.input_dtypes)
            outputs = session.run(feeds)
            width = feeds["input_ids"].shape[1]
            for position, index in enumerate(batch):
                length = len(encodings[index].ids)
                sliced = {}
                for name, value in outputs.items():
                    per_token = value.ndim >= 2 and value.shape[1] == width and name not in self.per_sequence_outputs
                    sliced[name] = value[position, :length] if per_token else value[position]
                results[index] = row(sliced, encodings[index])

        if self.streams > 1 and len(batches) > 1:
            self._streamed(batches, run)
        else:
            for batch in batches:
                run(batch, self.session)
        return results

    def _streamed(self, batches: list[list[int]], run: Callable[[list[int], Engine], None]) -> None:
        """Run ``batches`` on ``streams`` threads sharing one single-threaded session.

        On a few cores, small and mid-size inputs keep one core each busier than two cores share one
        operator: measured on full-size DistilBERT-QA int8 over 256 mixed-length pairs (2 cores),
        53.9 pairs/s with one stream of two threads, 63.9 with two streams of one thread.  ONNX Runtime
        runs concurrent ``run`` calls of one session in parallel, each on its caller's thread when the
        session has one intra-op thread, so the streams share one copy of the weights.  That session is
        built on the first call that needs it.
        """
        with self._stream_lock:
            if self._stream_session is None and self._make_stream_session is not None:
                self._stream_session = self._make_stream_session()
        session = self._stream_session or self.session
        with ThreadPoolExecutor(max_workers=min(self.streams, len(batches)),
                                thread_name_prefix="distilrt-stream") as pool:
            # Longest batches first (length_sorted_batches yields them shortest first) so that no stream
            # is left with one long batch at the end.
            for future in [pool.submit(run, batch, session) for batch in reversed(batches)]:
                future.result()
