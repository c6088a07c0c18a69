"""Dynamic batching: each caller gets exactly its own answers, batches really form, overload is bounded.

Unit tests drive :class:`MicroBatcher` directly; the live tests send a few hundred concurrent requests to
a server on 127.0.0.1 backed by stand-in pipelines that take a little time per call.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from distilrt.runtime.serve.batching import Job, MicroBatcher, QueueFullError
from distilrt.runtime.serve.config import ServeSettings
from distilrt.runtime.serve.metrics import ServeMetrics

from serve_fixtures import FakeClassifier, FakeFeatures, FakeQA, LiveServer, fake_model

_local = threading.local()


def _session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def _run_batcher(jobs_items: list[list[int]], *, max_batch_size: int, max_wait_ms: float = 20.0,
                 max_queue: int = 1000) -> tuple[list[object], list[int]]:
    """Submit every job at once; the runner doubles each item. Returns (results, items per batch)."""
    sizes: list[int] = []

    def run(jobs):
        sizes.append(sum(len(j.items) for j in jobs))
        return [[2 * x for x in j.items] if -1 not in j.items else ValueError("bad job") for j in jobs]

    async def main():
        batcher = MicroBatcher("m", run, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, max_queue=max_queue)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(Job(items=items)) for items in jobs_items),
                                       return_exceptions=True)
        await batcher.close()
        return results

    return asyncio.run(asyncio.wait_for(main(), 30)), sizes


def test_batcher_coalesces_and_returns_each_its_own() -> None:
    jobs = [[i, i + 1000] if i % 3 == 0 else [i] for i in range(50)]
    results, sizes = _run_batcher(jobs, max_batch_size=8)
    assert results == [[2 * x for x in items] for items in jobs]
    assert max(sizes) <= 8 and sum(sizes) == sum(len(j) for j in jobs)
    assert len(sizes) < len(jobs)  # batches formed


def test_batcher_with_batch_size_one_never_coalesces() -> None:
    results, sizes = _run_batcher([[i] for i in range(10)], max_batch_size=1)
    assert results == [[2 * i] for i in range(10)] and sizes == [1] * 10


def test_batcher_failure_stays_with_its_job() -> None:
    results, _ = _run_batcher([[1], [-1], [3]], max_batch_size=8)
    assert results[0] == [2] and results[2] == [6] and isinstance(results[1], ValueError)


def test_batcher_refuses_when_queue_full() -> None:
    results, sizes = _run_batcher([[i] for i in range(20)], max_batch_size=1, max_wait_ms=0, max_queue=3)
    refused = [r for r in results if isinstance(r, QueueFullError)]
    answered = [(i, r) for i, r in enumerate(results) if not isinstance(r, Exception)]
    assert refused and answered
    assert all(r == [2 * i] for i, r in answered)
    assert len(refused) + len(answered) == 20 and sum(sizes) == len(answered)


def test_metrics_exposition_format() -> None:
    metrics = ServeMetrics()
    metrics.observe_request(route="/models/{name}", model="a", status=422, seconds=0.003)
    metrics.batch_inputs.observe(5, model="a")
    text = metrics.render()
    assert 'distilrt_request_errors_total{route="/models/{name}",model="a",status="422"} 1' in text
    assert 'distilrt_batch_size_bucket{model="a",le="4"} 0' in text
    assert 'distilrt_batch_size_bucket{model="a",le="8"} 1' in text
    assert 'distilrt_batch_size_bucket{model="a",le="+Inf"} 1' in text
    assert 'distilrt_batch_size_sum{model="a"} 5' in text


def _mixed_requests(count: int) -> list[tuple[str, dict, object]]:
    """(model, body, expected JSON) for a mix of tasks, lengths and list sizes."""
    qa, clf, emb = FakeQA(), FakeClassifier(), FakeFeatures()
    out = []
    for i in range(count):
        words = " ".join(f"w{i}_{k}" for k in range(1 + (i * 7) % 23))
        if i % 3 == 0:
            body = {"inputs": {"question": f"question {i}?", "context": words}}
            out.append(("qa", body, qa(question=body["inputs"]["question"], context=words)))
        elif i % 3 == 1:
            texts = [f"{words} {j}" for j in range(1 + i % 3)]
            out.append(("clf", {"inputs": texts}, [clf(t, top_k=None) for t in texts]))
        else:
            out.append(("emb", {"inputs": words}, np.asarray(emb(words, pooling="auto", return_tensors=True)).tolist()))
    return out


def test_hundreds_of_concurrent_requests_each_get_their_own_answer() -> None:
    models = [fake_model("qa", "question-answering", delay_s=0.005), fake_model("clf", "text-classification",
              delay_s=0.005), fake_model("emb", "feature-extraction", delay_s=0.005)]
    settings = ServeSettings(port=0, max_batch_size=16, max_wait_ms=10, max_queue=1000)
    cases = _mixed_requests(300)
    with LiveServer(models, settings) as server:
        def send(case):
            name, body, _ = case
            return _session().post(f"{server.url}/models/{name}", json=body, timeout=60)

        with ThreadPoolExecutor(max_workers=64) as pool:
            responses = list(pool.map(send, cases))
        assert [r.status_code for r in responses] == [200] * len(cases)
        for (name, body, expected), response in zip(cases, responses):
            assert response.json() == expected, (name, body)
        for name in ("qa", "clf", "emb"):
            batches = server.metric(f'distilrt_batch_requests_count{{model="{name}"}}')
            singles = server.metric(f'distilrt_batch_requests_bucket{{model="{name}",le="1"}}')
            # warm-up is one call; requests were coalesced into fewer calls than requests
            assert 0 < batches < sum(1 for c in cases if c[0] == name) + 1
            assert singles < batches  # at least one call carried several requests
            assert max(server.models[name].pipeline.calls) <= 16
        assert server.metric('distilrt_requests_total{route="/models/{name}",model="clf",status="200"}') == 100


def test_overload_gets_503_then_service_resumes() -> None:
    model = fake_model("clf", "text-classification", delay_s=0.03)
    settings = ServeSettings(port=0, max_batch_size=2, max_wait_ms=0, max_queue=2)
    texts = [f"text number {i} " + "x" * (i % 11) for i in range(80)]
    with LiveServer([model], settings) as server:
        def send(text):
            return _session().post(f"{server.url}/models/clf", json={"inputs": text}, timeout=60)

        with ThreadPoolExecutor(max_workers=40) as pool:
            responses = list(pool.map(send, texts))
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 503}
        assert statuses.count(503) > 0 and statuses.count(200) > 0
        for text, response in zip(texts, responses):
            if response.status_code == 200:
                assert response.json() == [FakeClassifier()(text, top_k=None)]
            else:
                assert response.headers["retry-after"] == "1" and "limit 2" in response.json()["error"]
        # every accepted request ran exactly once (warm-up is the first call)
        assert sum(server.models["clf"].pipeline.calls[1:]) == statuses.count(200)
        assert server.metric('distilrt_rejected_total{model="clf"}') == statuses.count(503)
        assert server.metric('distilrt_queue_depth{model="clf"}') == 0
        after = _session().post(f"{server.url}/models/clf", json={"inputs": "calm again"}, timeout=10)
        assert after.status_code == 200 and after.json() == [FakeClassifier()("calm again", top_k=None)]
