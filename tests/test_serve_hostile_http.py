"""The service at the HTTP level: a schema-driven fuzz, slow clients, hostile bodies, shutdown deadline."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from distilrt.runtime.serve.config import ServeSettings
from distilrt.runtime.serve.server import bundle_model

from serve_fixtures import LiveServer, fake_model

BUNDLES = ("distilbert-qa-uncased", "distilbert-mlm-uncased", "distilbert-features-cased", "distilbert-classifier")
#: generated requests per operation: enough to reach every option and shape, small enough for `make test`
FUZZ_EXAMPLES = 25


@pytest.fixture(scope="module")
def live(make_bundle):
    models = [bundle_model(make_bundle(name), provider="cpu", precision="fp32") for name in BUNDLES]
    with LiveServer(models, ServeSettings(port=0, max_wait_ms=2, max_inputs_per_request=16)) as server:
        yield server


def test_schema_fuzz_never_gets_a_server_error(live) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= len(BUNDLES) + 1  # every model and the embeddings route
    seen: dict[int, int] = {}
    for operation in operations:
        # a GET without parameters has no invalid form to generate; every POST body has many
        modes = [schemathesis.GenerationMode.POSITIVE]
        if operation.method.upper() == "POST":
            modes.append(schemathesis.GenerationMode.NEGATIVE)
        for mode in modes:
            @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def probe(case) -> None:
                response = case.call(base_url=live.url, timeout=60)
                seen[response.status_code] = seen.get(response.status_code, 0) + 1
                assert response.status_code < 500, (case.method, case.path, case.body, response.text[:300])
                if response.status_code >= 400:
                    assert len(response.content) < 4096  # errors quote at most a short prefix of the input

            probe()
    assert seen.get(200, 0) > 0 and any(400 <= code < 500 for code in seen)
    assert requests.get(f"{live.url}/ready", timeout=10).status_code == 200


HOSTILE_BODIES = [
    ("deep nesting", b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "too deeply"),
    ("huge integer", b'{"inputs": "a [MASK]", "parameters": {"top_k": ' + b"9" * 5000 + b"}}", 400, "JSON"),
    ("lone surrogate", b'{"inputs": "\\ud800 [MASK]"}', 422, "not valid Unicode"),
    ("not UTF-8", b'{"inputs": "caf\xe9 [MASK]"}', 400, "UTF-8"),
    ("long parameter name", b'{"inputs": "a [MASK]", "parameters": {"' + b"p" * 200_000 + b'": 1}}', 422,
     "unsupported parameters"),
    ("long pooling value", b'{"inputs": "a", "pooling": "' + b"q" * 200_000 + b'"}', 422, "pooling"),
]


@pytest.mark.parametrize("case", HOSTILE_BODIES, ids=[c[0] for c in HOSTILE_BODIES])
def test_hostile_bodies_get_a_short_4xx(live, case) -> None:
    _, body, status, message = case
    name = "distilbert-features-cased" if b"pooling" in body else "distilbert-mlm-uncased"
    response = requests.post(f"{live.url}/models/{name}", data=body, timeout=60,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == status and message in response.text, response.text[:300]
    assert len(response.content) < 2048


def test_a_long_model_name_is_not_echoed(live) -> None:
    response = requests.post(f"{live.url}/v1/embeddings", json={"model": "m" * 1_000_000, "input": "x"}, timeout=60)
    assert response.status_code == 404 and len(response.content) < 2048


def _raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=20)
    return sock


def test_slow_headers_and_slow_bodies_are_cut_off() -> None:
    settings = ServeSettings(port=0, header_timeout_s=0.5, body_timeout_s=0.5)
    with LiveServer([fake_model("clf", "text-classification")], settings) as live:
        slow_headers = _raw(live.url)
        slow_headers.sendall(b"POST /models/clf HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        assert slow_headers.recv(1024) == b""  # closed by the server, without an answer
        slow_body = _raw(live.url)
        slow_body.sendall(b"POST /models/clf HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 100\r\n\r\n{\"inputs\": ")
        answer = slow_body.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408") and b"--body-timeout" in answer
        idle = _raw(live.url)  # a kept-alive connection that goes quiet after one request
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200")
        idle.sendall(b"GET /hea")
        assert _drain(idle).find(b"HTTP/1.1") == -1  # closed after the header timeout, no second answer
        assert requests.get(f"{live.url}/ready", timeout=10).status_code == 200  # everyone else is served


def _drain(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_requests_past_the_graceful_deadline_get_503_and_do_not_run() -> None:
    model = fake_model("slow", "text-classification", delay_s=4.0)
    settings = ServeSettings(port=0, graceful_timeout_s=1.5, max_batch_size=1, max_wait_ms=0)
    live = LiveServer([model], settings)
    live.start()
    answers: list[requests.Response] = []

    def send(text: str) -> None:
        answers.append(requests.post(f"{live.url}/models/slow", json={"inputs": text}, timeout=60))

    threads = [threading.Thread(target=send, args=(f"text {i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    while len(model.pipeline.calls) < 2:  # warm-up call, then the first request is in the model
        time.sleep(0.02)
    time.sleep(0.2)
    live.stop(timeout_s=30)
    for thread in threads:
        thread.join(30)
    assert sorted(r.status_code for r in answers) == [503, 503, 503]
    assert all(r.json()["error_type"] == "shutting_down" and "Retry-After" in r.headers for r in answers)
    assert len(model.pipeline.calls) == 2  # the queued requests never ran
