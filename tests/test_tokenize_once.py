"""Each text is tokenized once: the service's limits and the model call share one tokenization, and the
sequences built from it are the ones a direct ``encode`` gives (so results do not change)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests
import tokenizers
from tokenizers import Tokenizer

import distilrt.runtime.tokenizer as runtime_tokenizer
from distilrt.runtime import pipeline

LONG_CONTEXT = " ".join(f"Sentence {i} says that item {i} sits in room {i % 7}." for i in range(60))


class CountingTokenizer:
    """Stands in for ``tokenizers.Tokenizer``: every copy logs the texts it encodes, and forwards the rest."""

    encoded: list[str] = []
    _lock = threading.Lock()

    def __init__(self, real: Tokenizer) -> None:
        object.__setattr__(self, "_real", real)

    @classmethod
    def from_str(cls, text: str) -> "CountingTokenizer":
        return cls(Tokenizer.from_str(text))

    def _log(self, items: Any) -> None:
        with self._lock:
            for item in items:
                self.encoded.extend(item if isinstance(item, tuple) else [item])

    def encode(self, *texts: Any, **options: Any) -> Any:
        self._log([t for t in texts if isinstance(t, str)])
        return self._real.encode(*texts, **options)

    def encode_batch(self, items: Any, **options: Any) -> Any:
        self._log(items)
        return self._real.encode_batch(items, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._real, name, value)


def count_tokenizers(monkeypatch) -> type[CountingTokenizer]:
    """Every tokenizer created from here on counts what it encodes."""
    monkeypatch.setattr(runtime_tokenizer, "Tokenizer", CountingTokenizer)
    monkeypatch.setattr(tokenizers, "Tokenizer", CountingTokenizer)
    CountingTokenizer.encoded = []
    return CountingTokenizer


def test_a_served_request_is_tokenized_once(make_bundle, monkeypatch) -> None:
    pytest.importorskip("fastapi")
    from distilrt.runtime.serve.config import ServeSettings
    from distilrt.runtime.serve.server import bundle_model

    from serve_fixtures import LiveServer

    names = {"qa": "distilbert-qa-uncased", "mlm": "distilbert-mlm-uncased", "emb": "distilbert-features-cased",
             "clf": "distilbert-classifier"}
    models = {key: bundle_model(make_bundle(name), provider="cpu", precision="fp32") for key, name in names.items()}
    counting = count_tokenizers(monkeypatch)
    with LiveServer(list(models.values()), ServeSettings(port=0, max_wait_ms=2)) as live:
        counting.encoded.clear()  # the warm-up calls
        texts: list[str] = []

        def post(key: str, body: dict[str, Any], sent: list[str]) -> Any:
            response = requests.post(f"{live.url}/models/{models[key].name}", json=body, timeout=60)
            assert response.status_code == 200, response.text
            texts.extend(sent)
            return response.json()

        question = "Which room holds item 41?"
        answer = post("qa", {"inputs": {"question": question, "context": LONG_CONTEXT}}, [question, LONG_CONTEXT])
        masked = [f"Item {i} sits in the [MASK] room." for i in range(3)]
        post("mlm", {"inputs": masked}, masked)
        post("emb", {"inputs": "A text to embed once."}, ["A text to embed once."])
        post("clf", {"inputs": ["good", "bad"]}, ["good", "bad"])
        assert sorted(counting.encoded) == sorted(texts)  # each text once: none for the limits, none again

    # the context spans several windows, and the answer is what the pipeline gives directly
    direct = pipeline("question-answering", model=make_bundle(names["qa"]), precision="fp32", provider="cpu")
    assert len(direct.prepare(question=question, context=LONG_CONTEXT).lengths) == 1
    assert direct.prepare(question=question, context=LONG_CONTEXT).lengths[0] > direct.max_sequence_length
    assert answer == pytest.approx(direct(question=question, context=LONG_CONTEXT), abs=1e-4)


def _fields(encoding: Any) -> tuple[Any, ...]:
    return (encoding.ids, encoding.type_ids, encoding.offsets, encoding.sequence_ids, encoding.word_ids,
            encoding.special_tokens_mask, encoding.tokens)


@pytest.mark.parametrize("name", ["distilbert-qa-uncased", "roberta-mlm"])
def test_sequences_from_tokens_match_a_direct_encode(make_bundle, name: str) -> None:
    tokenizer = pipeline(model=make_bundle(name), precision="fp32", provider="cpu").tokenizer
    reference = Tokenizer.from_file(str(make_bundle(name) / "tokenizer.json"))
    reference.no_padding()
    texts = ["Hello, world!  It's a test.", " leading space, café", "emoji \U0001F642 and 日本語", LONG_CONTEXT]
    tokens = tokenizer.tokenize(texts)
    for text, own in zip(texts, tokens):
        reference.no_truncation()
        assert _fields(tokenizer.sequence(own)) == _fields(reference.encode(text))
        assert tokenizer.length(own) == len(reference.encode(text).ids)
        reference.enable_truncation(16)
        assert _fields(tokenizer.sequence(own, truncate_to=16)) == _fields(reference.encode(text))
    for limit in (None, 16):
        if limit is None:
            reference.no_truncation()
        else:
            reference.enable_truncation(limit)
        encodings, lengths = tokenizer.encode_counted(texts, truncate_to=limit)
        assert [_fields(e) for e in encodings] == [_fields(reference.encode(t)) for t in texts]
        assert lengths == [tokenizer.length(t) for t in tokens]
    question = tokenizer.questions(["Which room holds item 41?"], max_question_len=64)[0]
    for max_seq_len, stride in ((64, 16), (40, 0), (128, 100)):
        reference.enable_truncation(max_seq_len, stride=stride, strategy="only_second")
        want = reference.encode("Which room holds item 41?", LONG_CONTEXT)
        got = tokenizer.windows(question, tokens[-1], max_seq_len=max_seq_len, doc_stride=stride)
        assert [_fields(w) for w in got] == [_fields(w) for w in (want, *want.overflowing)]
        assert tokenizer.window_tokens(question, tokens[-1], max_seq_len=max_seq_len, doc_stride=stride) == \
            sum(len(w.ids) for w in got)
