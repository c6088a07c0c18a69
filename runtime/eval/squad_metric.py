"""The SQuAD metric: normalised exact match and token F1, as the official v1.1 / v2.0 scripts compute them.

Answers are normalised by lower-casing, removing punctuation and the articles a/an/the, and collapsing
whitespace.  Each question scores the best match over its gold answers; a question without gold
answers (SQuAD v2 "impossible") has the single gold answer "", so only an empty prediction scores.
Figures are percentages, under the official script's keys (``exact``, ``f1``, ``total``,
``HasAns_exact`` ... ``NoAns_total``).
"""

from __future__ import annotations

import collections
import re
import string
from typing import Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(gold: str, prediction: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(prediction))


def token_f1(gold: str, prediction: str) -> float:
    gold_tokens = normalize_answer(gold).split()
    pred_tokens = normalize_answer(prediction).split()
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)  # both empty: 1, one empty: 0
    common = collections.Counter(gold_tokens) & collections.Counter(pred_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_answers(answers: Sequence[str]) -> list[str]:
    """The answers that count: those not empty after normalisation, or [""] for an impossible question."""
    kept = [a for a in answers if normalize_answer(a)]
    return kept or [""]


def score(golds: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> dict[str, float]:
    """Official-script figures for ``predictions`` (question id -> answer text) against ``golds``.

    A question with no prediction scores 0.  HasAns/NoAns splits appear when the data has both kinds
    (v2.0) or either kind is present.
    """
    exact: dict[str, float] = {}
    f1: dict[str, float] = {}
    has_answer: dict[str, bool] = {}
    for qid, answers in golds.items():
        gold = gold_answers(answers)
        has_answer[qid] = gold != [""]
        prediction = predictions.get(qid)
        if prediction is None:
            exact[qid] = f1[qid] = 0.0
            continue
        exact[qid] = float(max(exact_match(g, prediction) for g in gold))
        f1[qid] = max(token_f1(g, prediction) for g in gold)
    figures = _totals(exact, f1, list(golds))
    for label, wanted in (("HasAns", True), ("NoAns", False)):
        ids = [qid for qid, has in has_answer.items() if has == wanted]
        if ids:
            figures.update({f"{label}_{k}": v for k, v in _totals(exact, f1, ids).items()})
    return figures


def _totals(exact: Mapping[str, float], f1: Mapping[str, float], ids: Sequence[str]) -> dict[str, float]:
    total = len(ids)
    if not total:
        return {"exact": 0.0, "f1": 0.0, "total": 0}
    return {"exact": 100.0 * sum(exact[q] for q in ids) / total, "f1": 100.0 * sum(f1[q] for q in ids) / total,
            "total": total}
