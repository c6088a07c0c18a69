"""The service under attack: a bad request among good ones, amplification, head-of-line blocking.

Poisoned batches run on real bundles (fp32, so answers do not depend on batch mates) and on stand-ins; the
bounds are asserted on refusal codes and on work counters (model calls, batch metrics), never on time.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import requests

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from distilrt.runtime import pipeline
from distilrt.runtime.serve.batching import Job, MicroBatcher
from distilrt.runtime.serve.config import ServeSettings
from distilrt.runtime.serve.server import bundle_model

from serve_fixtures import FakeFillMask, LiveServer, fake_model

BUNDLES = {"question-answering": "distilbert-qa-uncased", "fill-mask": "distilbert-mlm-uncased",
           "feature-extraction": "distilbert-features-cased", "text-classification": "distilbert-classifier"}
#: a lone surrogate: valid JSON, not encodable text
SURROGATE_BODY = '"caf\\ud800 is closed"'


@pytest.fixture(scope="module")
def real(make_bundle):
    paths = {task: make_bundle(name) for task, name in BUNDLES.items()}
    models = [bundle_model(p, provider="cpu", precision="fp32") for p in paths.values()]
    direct = {task: pipeline(task, model=p, precision="fp32", provider="cpu") for task, p in paths.items()}
    # a long wait makes every concurrent request land in one batch
    settings = ServeSettings(port=0, max_batch_size=64, max_wait_ms=400)
    with LiveServer(models, settings) as live:
        live.names = {task: m.name for task, m in zip(paths, models)}
        live.direct = direct
        yield live


def _good(task: str, i: int) -> tuple[str, Any]:
    """(request body, the direct pipeline call that gives its expected answer)."""
    text = f"Request {i} talks about item {i * 7} in room {i % 5}"
    if task == "question-answering":
        q, c = f"Where is item {i * 7}?", text + "."
        return json.dumps({"inputs": {"question": q, "context": c}}), lambda p: p(question=q, context=c)
    if task == "fill-mask":
        t = text + " [MASK]."
        return json.dumps({"inputs": t, "parameters": {"top_k": 3}}), lambda p: p(t, top_k=3)
    if task == "feature-extraction":
        return json.dumps({"inputs": text}), lambda p: _api_features(p(text, pooling="auto", return_tensors=True))
    return json.dumps({"inputs": text}), lambda p: [p(text, top_k=None)]


def _api_features(value: Any) -> Any:
    """The Inference API's feature answer for one text: [tokens, hidden] where the pipeline gives [1, tokens, hidden]."""
    array = np.asarray(value, dtype=np.float32)
    return (array[0] if array.ndim == 3 else array).tolist()


def _poisons(task: str) -> list[tuple[str, str]]:
    """(body, the field the error must name): refused on arrival, or failing inside the batch."""
    if task == "question-answering":
        return [(f'{{"inputs": {{"question": "Who?", "context": {SURROGATE_BODY}}}}}', "inputs.context"),
                ('{"inputs": {"question": "Who?", "context": "x"}, "parameters": {"doc_stride": 999999}}',
                 "doc_stride")]
    poisons = [(f'{{"inputs": {SURROGATE_BODY}}}', "inputs"),
               (f'{{"inputs": ["fine [MASK] text", {SURROGATE_BODY}]}}', "inputs[1]")]
    if task == "fill-mask":  # passes every check on arrival, fails inside the model call
        poisons.append(('{"inputs": "no mask token in this text"}', "mask token"))
    return poisons


def _close(got: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return set(got) == set(want) and all(_close(got[k], want[k]) for k in want)
    if isinstance(want, (list, tuple)) or hasattr(want, "tolist"):
        want = want.tolist() if hasattr(want, "tolist") else want
        return len(got) == len(want) and all(_close(g, w) for g, w in zip(got, want))
    if isinstance(want, float):
        return abs(got - want) <= 1e-4
    return got == want


@pytest.mark.parametrize("task", sorted(BUNDLES))
def test_poison_in_batch_fails_alone(real, task: str) -> None:
    url = f"{real.url}/models/{real.names[task]}"
    good = [_good(task, i) for i in range(12)]
    poisons = _poisons(task)
    bodies = [b for b, _ in good[:6]] + [b for b, _ in poisons] + [b for b, _ in good[6:]]
    before = real.metric("distilrt_batch_requests_count")
    with ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda b: requests.post(url, data=b.encode(), timeout=60,
                                                          headers={"Content-Type": "application/json"}), bodies))
    bad = responses[6:6 + len(poisons)]
    ok = responses[:6] + responses[6 + len(poisons):]
    for response, (_, field) in zip(bad, poisons):
        assert response.status_code in (400, 413, 422), response.text
        assert field in response.text and len(response.text) < 2000
    for response, (_, expected) in zip(ok, good):
        assert response.status_code == 200, response.text
        assert _close(response.json(), expected(real.direct[task])), task
    # the good requests were coalesced (fewer model batches than requests)
    assert real.metric("distilrt_batch_requests_count") - before < len(good)


def test_a_crash_inside_a_batch_stays_with_its_request() -> None:
    class Crashy(FakeFillMask):
        def _one(self, text: str, top_k: int, targets: Any) -> Any:
            if "CRASH" in text:
                raise TypeError("stand-in bug triggered by this input")
            return super()._one(text, top_k, targets)

    model = fake_model("crashy", "fill-mask")
    model.loader = lambda: Crashy()
    with LiveServer([model], ServeSettings(port=0, max_wait_ms=300)) as live:
        texts = [f"text {i} [MASK]" for i in range(8)] + ["CRASH " + "z" * 5000 + " [MASK]"]
        with ThreadPoolExecutor(len(texts)) as pool:
            got = list(pool.map(lambda t: requests.post(f"{live.url}/models/crashy", json={"inputs": t}, timeout=30),
                                texts))
        assert [r.status_code for r in got] == [200] * 8 + [500]
        assert "zzzz" not in got[-1].text and "see the server log" in got[-1].text
        assert all(r.json()[0]["sequence"] == t.replace("[MASK]", r.json()[0]["token_str"]) for r, t in
                   zip(got[:8], texts))


# -- amplification: refused on arrival, before any model time ---------------------------------------


def _model_calls(live: LiveServer) -> float:
    return live.metric("distilrt_batch_size_count")


AMPLIFIERS = [
    ("fill-mask", {"inputs": "[MASK] " * 510, "parameters": {"top_k": 100}}, 422, "--max-masks-per-input"),
    ("fill-mask", {"inputs": "a [MASK] " * 15, "parameters": {"top_k": 100}}, 422, "--max-fill-predictions"),
    ("fill-mask", {"inputs": ["a [MASK] b"] * 200, "parameters": {"top_k": 10}}, 422, "--max-fill-predictions"),
    ("question-answering", {"inputs": {"question": "Who?", "context": "word " * 60000}}, 413, "--max-input-tokens"),
    ("question-answering", {"inputs": [{"question": "Who?", "context": "word " * 1000}] * 40}, 413,
     "--max-input-tokens"),
    ("feature-extraction", {"inputs": ["many words here " * 30] * 200}, 413, "--max-input-tokens"),
    ("text-classification", {"inputs": "long " * 5000}, 422, "max_sequence_length"),
]


@pytest.mark.parametrize("case", AMPLIFIERS, ids=[f"{c[0]}-{c[3]}-{i}" for i, c in enumerate(AMPLIFIERS)])
def test_amplification_is_refused_before_model_time(real, case) -> None:
    task, body, status, flag = case
    before = _model_calls(real)
    response = requests.post(f"{real.url}/models/{real.names[task]}", json=body, timeout=60)
    assert response.status_code == status and flag in response.text, response.text
    assert len(response.text) < 2000  # the error quotes no input back
    assert _model_calls(real) == before  # no model call was made for it
    assert requests.get(f"{real.url}/ready", timeout=10).status_code == 200


def test_limits_are_configurable(make_bundle) -> None:
    model = bundle_model(make_bundle("distilbert-mlm-uncased"), provider="cpu", precision="fp32")
    settings = ServeSettings(port=0, max_masks_per_input=2, max_fill_predictions=4, max_input_tokens=40)
    with LiveServer([model], settings) as live:
        url = f"{live.url}/models/{model.name}"
        assert requests.post(url, json={"inputs": "a [MASK] b [MASK]", "parameters": {"top_k": 2}}).status_code == 200
        three = requests.post(url, json={"inputs": "[MASK] [MASK] [MASK]", "parameters": {"top_k": 1}})
        assert three.status_code == 422 and "at most 2 per input" in three.text
        many = requests.post(url, json={"inputs": "a [MASK] b [MASK]", "parameters": {"top_k": 3}})
        assert many.status_code == 422 and "6 predictions" in many.text
        targeted = requests.post(url, json={"inputs": "a [MASK] b [MASK]", "parameters": {"top_k": 50,
                                                                                          "targets": ["a", "b"]}})
        assert targeted.status_code == 200  # top_k is cut to the two targets
        long = requests.post(url, json={"inputs": ["one two three four [MASK]"] * 8})
        assert long.status_code == 413 and "at most 40 tokens" in long.text


# -- head-of-line: large requests take turns with small ones ------------------------------------------


def _lane_order(costs: list[int], *, large_cost: int, max_batch_tokens: int) -> list[list[str]]:
    """Submit a blocker, then jobs with ``costs`` while it runs; the batches in the order they ran."""
    ran: list[list[str]] = []
    release = threading.Event()

    def run(jobs):
        ran.append([j.items[0] for j in jobs])
        if jobs[0].items[0] == "blocker":
            release.wait(10)
        return [j.items for j in jobs]

    async def main():
        batcher = MicroBatcher("m", run, max_batch_size=64, max_wait_ms=0, max_queue=100,
                               max_batch_tokens=max_batch_tokens, large_cost=large_cost)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(Job(items=["blocker"], cost=1)))
        while not ran:
            await asyncio.sleep(0.01)
        names = [("L" if c > large_cost else "s") + str(i) for i, c in enumerate(costs)]
        rest = [asyncio.ensure_future(batcher.submit(Job(items=[n], cost=c))) for n, c in zip(names, costs)]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(first, *rest)
        await batcher.close()

    asyncio.run(asyncio.wait_for(main(), 30))
    return ran[1:]


def test_small_requests_wait_behind_at_most_one_large_request() -> None:
    # four large QA-sized requests queued first, then five small ones; the budget would fit three large ones
    order = _lane_order([5000] * 4 + [10] * 5, large_cost=512, max_batch_tokens=16384)
    assert order[0] == ["L0"] and order[1] == ["s4", "s5", "s6", "s7", "s8"]
    assert order[2:] == [["L1"], ["L2"], ["L3"]]  # large ones still all run, one at a time


def test_lanes_take_turns_so_large_requests_are_not_starved() -> None:
    order = _lane_order([10, 5000, 10, 5000], large_cost=512, max_batch_tokens=5000)
    assert order == [["L1"], ["s0", "s2"], ["L3"]]


def test_batches_respect_the_token_budget() -> None:
    order = _lane_order([300] * 7, large_cost=10_000, max_batch_tokens=1000)
    assert [len(b) for b in order] == [3, 3, 1]
    assert sum(order, []) == [f"s{i}" for i in range(7)]  # arrival order kept
