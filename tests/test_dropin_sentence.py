"""sentence-transformers parity: ``embed`` against ``SentenceTransformer.encode``.

On the real all-MiniLM-L6-v2 (texts past its 256-token ``max_seq_length``), and on a tiny checkpoint
given the sentence-transformers files that exercise the rest: ``do_lower_case``, CLS pooling, no
``Normalize`` module, and named prompts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from distilrt.runtime import InputError, pipeline

PARAGRAPH = ("Extractive question answering finds the answer to a question inside a given text. The SQuAD dataset "
             "holds more than a hundred thousand questions posed by crowdworkers on Wikipedia articles, and the "
             "answer to each is a span of the corresponding passage. ")
TEXTS = [
    "A man is eating food.",
    PARAGRAPH * 6,  # about 400 tokens: sentence-transformers cuts it at 256
    " ".join(f"Sentence {i} talks about topic {i % 7} and number {i * 13}." for i in range(60)),
    "Ünïcödé — ok? 東京 🙂",
    "The girl is carrying a baby.",
]


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1.0 - (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_minilm_embeddings_match_sentence_transformers(minilm_bundle: Path, minilm_checkpoint: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_checkpoint), device="cpu")
    fe = pipeline("feature-extraction", minilm_bundle, precision="fp32", provider="cpu")
    assert fe.sentence.max_seq_length == model.max_seq_length == 256
    assert max(len(model.tokenizer(t)["input_ids"]) for t in TEXTS) > 256
    ours = fe.embed(TEXTS, batch_size=2)
    reference = model.encode(TEXTS, batch_size=2, convert_to_numpy=True)
    assert ours.shape == reference.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    distance = cosine_distance(ours, reference)
    assert distance.max() <= 1e-5, distance
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)  # the Normalize module
    unnormalised = fe.embed(TEXTS[:2], normalize=False)  # the mean-pooled vectors before the Normalize module
    assert np.all(np.abs(np.linalg.norm(unnormalised, axis=1) - 1.0) > 1e-3)
    np.testing.assert_allclose(unnormalised / np.linalg.norm(unnormalised, axis=1, keepdims=True), ours[:2], atol=1e-6)
    assert fe.embed(TEXTS[0]).shape == (384,)  # one string, one vector, as encode gives


@pytest.fixture(scope="module")
def sentence_checkpoint(make_checkpoint, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny cased encoder saved as a sentence-transformers model: lower-casing, CLS pooling, 24 tokens, prompts."""
    folder = tmp_path_factory.mktemp("st") / "tiny-sentence"
    shutil.copytree(make_checkpoint("distilbert-features-cased"), folder)
    hidden = json.loads((folder / "config.json").read_text())["dim"]
    (folder / "1_Pooling").mkdir()
    files: dict[str, Any] = {
        "modules.json": [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                         {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}],
        "sentence_bert_config.json": {"max_seq_length": 24, "do_lower_case": True},
        "1_Pooling/config.json": {"word_embedding_dimension": hidden, "pooling_mode_cls_token": True,
                                  "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
                                  "pooling_mode_mean_sqrt_len_tokens": False},
        "config_sentence_transformers.json": {"prompts": {"query": "query: ", "passage": "passage: "},
                                              "default_prompt_name": None},
    }
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content))
    return folder


def test_sentence_config_is_honoured(sentence_checkpoint: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from distilrt.export import export_model

    bundle = export_model(str(sentence_checkpoint), tmp_path, precisions="fp32").path
    fe = pipeline(None, bundle, precision="fp32", provider="cpu")
    assert fe.manifest.pooling["mode"] == "cls" and fe.manifest.pooling["normalize"] is False
    assert (fe.sentence.max_seq_length, fe.sentence.do_lower_case) == (24, True)
    model = SentenceTransformer(str(sentence_checkpoint), device="cpu")
    texts = ["Paris Is The CAPITAL of France.", PARAGRAPH, "HELLO world"]
    for options in ({}, {"prompt_name": "query"}, {"prompt": "Represent this: "}):
        ours, reference = fe.embed(texts, **options), model.encode(texts, convert_to_numpy=True, **options)
        np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=1e-4, err_msg=str(options))
    with pytest.raises(InputError, match="passage, query"):
        fe.embed(texts, prompt_name="document")
    # feature-extraction calls stay transformers-shaped: no lower-casing or cut for token states
    assert len(fe(PARAGRAPH, truncation=True)[0]) > 24
