"""The built-in calibration and evaluation text sets, generated from the hand-written passages.

:data:`~distilrt.export.passages.PASSAGES` is split in two disjoint halves: one feeds calibration, the
other evaluation, so agreement is never measured on text the quantiser calibrated on.  From each half a
seeded generator builds items of every kind a task needs: question/context pairs (a passage alone or
hidden among up to seven others, which reaches the model's maximum length), masked sentences and
passages, and plain text from two words to several concatenated passages.  The sets are deterministic:
the same distilrt version always builds the same items.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Literal

from .passages import PASSAGES, SENTENCES, Passage

Split = Literal["calibration", "evaluation"]
MASK = "{mask}"
#: Items per task in each set; the evaluation set must hold at least 200.
DEFAULT_SIZE = 200
#: Distractor passages added around the answer passage, cycled over QA items (7 reaches 512 tokens).
_DISTRACTORS = (0, 1, 0, 2, 1, 0, 3, 7)


@dataclass(frozen=True)
class QAItem:
    question: str
    context: str
    answer: str
    answer_start: int  # character offset of ``answer`` in ``context``


@dataclass(frozen=True)
class RetrievalSet:
    queries: tuple[str, ...]
    paragraphs: tuple[str, ...]


def passages(split: Split) -> tuple[Passage, ...]:
    """The half of the passages that ``split`` uses (evaluation: even positions; calibration: odd)."""
    offset = 0 if split == "evaluation" else 1
    return PASSAGES[offset::2]


def sentences_of(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def qa_items(split: Split, *, size: int = DEFAULT_SIZE, seed: int = 0) -> list[QAItem]:
    """``size`` question/context pairs; the context holds the answer passage among 0-7 others."""
    rng = random.Random(f"qa-{split}-{seed}")
    pool = passages(split)
    questions = [(index, q, a) for index, (_, _, qs) in enumerate(pool) for q, a in qs]
    items: list[QAItem] = []
    round_ = 0
    while len(items) < size:
        for n, (index, question, answer) in enumerate(questions):
            if len(items) == size:
                break
            k = _DISTRACTORS[(n + round_ * 3) % len(_DISTRACTORS)]
            others = rng.sample([p[1] for i, p in enumerate(pool) if i != index], k=min(k, len(pool) - 1))
            position = rng.randint(0, len(others))
            parts = others[:position] + [pool[index][1]] + others[position:]
            context = " ".join(parts)
            start = len(" ".join(parts[:position])) + (1 if position else 0) + pool[index][1].index(answer)
            items.append(QAItem(question, context, answer, start))
        round_ += 1
    return items


def _maskable(words: list[str]) -> list[int]:
    return [i for i, w in enumerate(words) if i > 0 and re.fullmatch(r"[A-Za-z]{4,}", w)]


def masked_texts(split: Split, *, size: int = DEFAULT_SIZE, seed: int = 0) -> list[str]:
    """``size`` texts with one (sometimes two) ``{mask}`` in place of a word: sentences, then whole passages."""
    rng = random.Random(f"mask-{split}-{seed}")
    sources = [s for _, text, _ in passages(split) for s in sentences_of(text)]
    sources += [text for _, text, _ in passages(split)]
    texts: list[str] = []
    while len(texts) < size:
        for source in sources:
            if len(texts) == size:
                break
            words = source.split(" ")
            bare = [re.sub(r"[^\w'-]", "", w) for w in words]
            choices = _maskable(bare)
            if not choices:
                continue
            picked = rng.sample(choices, k=2 if len(choices) > 12 and rng.random() < 0.2 else 1)
            for i in picked:
                words[i] = words[i].replace(bare[i], MASK, 1)
            texts.append(" ".join(words))
    return texts


def plain_texts(split: Split, *, size: int = DEFAULT_SIZE, seed: int = 0) -> list[str]:
    """``size`` texts from two words to several passages long: short sentences, questions, passages."""
    rng = random.Random(f"plain-{split}-{seed}")
    pool = passages(split)
    offset = 0 if split == "evaluation" else 1
    texts = list(SENTENCES[offset::2])
    texts += [q for _, _, qs in pool for q, _ in qs]
    texts += [s for _, text, _ in pool for s in sentences_of(text)]
    texts += [text for _, text, _ in pool]
    while len(texts) < size:
        texts.append(" ".join(p[1] for p in rng.sample(pool, k=rng.choice((2, 3, 5)))))
    rng.shuffle(texts)
    return texts[:size]


def retrieval_set(split: Split, *, size: int = DEFAULT_SIZE) -> RetrievalSet:
    """``size`` queries (questions, then sentences and short texts) against every passage of the split.

    Top-1 agreement asks whether a variant picks the same paragraph as fp32, so queries need not have
    a relevant paragraph; questions come first because they are what retrieval serves.
    """
    pool = passages(split)
    offset = 0 if split == "evaluation" else 1
    queries = [q for _, _, qs in pool for q, _ in qs]
    queries += [s for _, text, _ in pool for s in sentences_of(text)]
    queries += list(SENTENCES[offset::2])
    # Keyword-style queries: the first half of each sentence, as people type into a search box.
    queries += [" ".join(s.split()[: max(2, len(s.split()) // 2)]) for _, text, _ in pool for s in sentences_of(text)]
    paragraphs = tuple(text for _, text, _ in pool)
    return RetrievalSet(tuple(queries[:size]), paragraphs)


def calibration_examples(task: str, *, size: int = DEFAULT_SIZE) -> list[dict[str, str]]:
    """The built-in calibration set for ``task``: dicts with "question"/"context" (QA) or "text"."""
    if task == "question-answering":
        return [{"question": i.question, "context": i.context} for i in qa_items("calibration", size=size)]
    if task == "fill-mask":
        half = size // 2  # masked text is what the model serves; plain text widens the ranges seen
        return ([{"text": t} for t in masked_texts("calibration", size=size - half)]
                + [{"text": t} for t in plain_texts("calibration", size=half)])
    return [{"text": t} for t in plain_texts("calibration", size=size)]
