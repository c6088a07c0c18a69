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
#: text-classification: :class:`Label` dicts, one (or the ``top_k`` best) per text; without ``top_k`` a single
#: string gives a list holding its one label, as transformers does.
ClassificationOutput = Union[Label, List[Label], List[Union[Label, List[Label]]]]
#: feature-extraction: nested lists of floats by default (token states ``[1][tokens][hidden]`` per text, as
#: transformers), float32 arrays with ``return_tensors=True``; pooled: ``[hidden]`` per text, ``[n, hidden]`` for a list.
FeaturesOutput = Union[np.ndarray, List[np.ndarray], List[List[float]], List[List[List[float]]],
                       List[List[List[List[float]]]]]

__all__ = ["Answer", "ClassificationOutput", "FeaturesOutput", "FillMaskOutput", "Label", "MaskFill", "QAOutput"]
