"""The result types in distilrt.runtime.outputs describe what each task really returns, however nested."""

from __future__ import annotations

from typing import Any, get_type_hints

import numpy as np
import pytest

from distilrt.runtime.outputs import Answer, Label, MaskFill
from runtime_fixtures import runtime_pipeline


def _dicts(result: Any) -> list[dict]:
    """Every dict in a (possibly nested) list result."""
    if isinstance(result, dict):
        return [result]
    assert isinstance(result, list), type(result)
    return [d for item in result for d in _dicts(item)]


def _assert_typed(result: Any, spec: type) -> None:
    hints = get_type_hints(spec)
    found = _dicts(result)
    assert found
    for item in found:
        assert set(item) == set(hints), (item, hints)
        for key, kind in hints.items():
            assert isinstance(item[key], kind) and not isinstance(item[key], bool), (key, item[key], kind)


@pytest.mark.parametrize("name,spec,calls", [
    ("distilbert-qa-uncased", Answer, [
        {"question": "Who was Jim Henson?", "context": "Jim Henson was a nice puppet"},
        {"question": ["Who?", "What?"], "context": ["Jim Henson was a nice puppet", "A puppet"], "top_k": 2},
    ]),
    ("distilbert-mlm-uncased", MaskFill, [
        {"inputs": "Paris is the [MASK] of France."},
        {"inputs": ["The [MASK] jumped over the [MASK] dog.", "A [MASK]."], "top_k": 2},
    ]),
    ("distilbert-classifier", Label, [
        {"inputs": "I love it"},
        {"inputs": ["I love it", "I do not"], "top_k": None},
    ]),
])
def test_task_results_have_the_typed_keys_and_value_types(make_bundle, name: str, spec: type,
                                                          calls: list[dict]) -> None:
    task = runtime_pipeline(str(make_bundle(name)))
    for call in calls:
        _assert_typed(task(**call), spec)


def _float_leaves(value: Any) -> int:
    """How many floats a FeaturesOutput holds: float32 arrays, or lists of them or of floats, nested."""
    if isinstance(value, np.ndarray):
        assert value.dtype == np.float32, value.dtype
        return value.size
    if isinstance(value, list):
        return sum(_float_leaves(v) for v in value)
    assert isinstance(value, float), type(value)
    return 1


def test_features_are_float_arrays_or_nested_float_lists(make_bundle) -> None:
    features = runtime_pipeline(str(make_bundle("distilbert-features-cased")))
    hidden = 32
    for pooling in ("none", "mean"):
        for inputs in ("A man is eating food.", ["A man is eating food.", "Hi"]):
            result = features(inputs, pooling=pooling)
            count = _float_leaves(result)
            assert count and count % hidden == 0
