"""What the task pipelines return: the keys and meaning of transformers' pipelines, as types an editor shows.

Results are plain dicts, lists and numpy arrays (so they serialise and compare like transformers'); the
``TypedDict`` classes here only describe them.
"""

from __future__ import annotations

from typing import List, TypedDict, Union

import numpy as np


class Answer(TypedDict):
    """A question-answering span: ``context[start:end] == answer`` (character offsets)."""

    score: float
    start: int
    end: int
    answer: str


class MaskFill(TypedDict):
    """One candidate for a mask token: its vocabulary id, its text, and the input with it filled in."""

    score: float
    token: int
    token_str: str
    sequence: str


class Label(TypedDict):
    """One class of a text-classification model and its score."""

    label: str
    score: float


#: question-answering: one :class:`Answer` per question (a list of ``top_k`` when ``top_k`` > 1); a list of
#: questions gives one such result each.
QAOutput = Union[Answer, List[Answer], List[Union[Answer, List[Answer]]]]
#: fill-mask: the ``top_k`` candidates of a text's mask; a text with several masks gives one list per mask, and a
#: list of texts one result per text.
FillMaskOutput = Union[List[MaskFill], List[List[MaskFill]], List[List[List[MaskFill]]]]
#: text-classification: :class:`Label` dicts, one (or the ``top_k`` best) per text.
ClassificationOutput = Union[Label, List[Label], List[Union[Label, List[Label]]]]
#: feature-extraction: float32 arrays (pooled ``[n, hidden]`` or ``[hidden]``, token states ``[tokens, hidden]``
#: per text) or the same figures as nested lists of floats.
FeaturesOutput = Union[np.ndarray, List[np.ndarray], List[List[float]], List[List[List[float]]],
                       List[List[List[List[float]]]]]

__all__ = ["Answer", "ClassificationOutput", "FeaturesOutput", "FillMaskOutput", "Label", "MaskFill", "QAOutput"]
