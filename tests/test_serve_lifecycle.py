"""Lifecycle: readiness after load and warm-up, load failures, and SIGTERM with requests in flight
(every accepted request is answered, then the process exits).

The server runs in a subprocess (uvicorn installs its signal handlers only in a main thread) with a slow
stand-in model, so requests are still queued and running when the signal arrives.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from serve_fixtures import FakeClassifier, LiveServer, fake_model

TESTS = Path(__file__).resolve().parent

LAUNCH = """
import logging, sys
logging.basicConfig(level=logging.INFO)
from serve_fixtures import fake_model
from distilrt.runtime.serve.config import ServeSettings
from distilrt.runtime.serve.server import serve
settings = ServeSettings(port=0, max_batch_size=4, max_wait_ms=5, max_queue=100, graceful_timeout_s=30)
sys.exit(serve([fake_model("clf", "text-classification", delay_s=0.25)], settings))
"""


def _start_server() -> tuple[subprocess.Popen, str, list[str]]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH], cwd=TESTS, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    url: list[str] = []
    found = threading.Event()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            match = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
            if match:
                url.append(match.group(1))
                found.set()

    threading.Thread(target=pump, daemon=True).start()
    if not found.wait(60):
        proc.kill()
        raise RuntimeError("server did not start:\n" + "".join(lines))
    return proc, url[0], lines


def _in_flight(url: str) -> float:
    text = requests.get(url + "/metrics", timeout=5).text
    match = re.search(r'^distilrt_requests_in_flight\{route="/models/\{name\}"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_sigterm_finishes_in_flight_requests() -> None:
    proc, url, log = _start_server()
    try:
        deadline = time.monotonic() + 30
        while requests.get(url + "/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.05)
        texts = [f"in flight {i}" for i in range(16)]
        with ThreadPoolExecutor(max_workers=len(texts)) as pool:
            futures = [pool.submit(requests.post, f"{url}/models/clf", json={"inputs": t}, timeout=60) for t in texts]
            while _in_flight(url) < len(texts):  # all accepted: 16 requests x 0.25 s / 4 per batch ~ 1 s of work
                assert time.monotonic() < deadline, "requests never arrived"
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            responses = [f.result(timeout=60) for f in futures]
        assert [r.status_code for r in responses] == [200] * len(texts)
        for text, response in zip(texts, responses):
            assert response.json() == [FakeClassifier()(text, top_k=None)]
        # uvicorn re-raises the signal after its graceful shutdown, so the parent sees "terminated by SIGTERM"
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM), "".join(log)
        assert "Application shutdown complete" in "".join(log)
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/health", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_ready_only_after_load_and_warm_up() -> None:
    live = LiveServer([fake_model("clf", "text-classification", load_delay_s=1.0)])
    live.start(wait_ready=False)
    try:
        assert requests.get(live.url + "/health", timeout=5).status_code == 200
        loading = requests.get(live.url + "/ready", timeout=5)
        assert loading.status_code == 503 and loading.json()["models"] == {"clf": "loading"}
        early = requests.post(live.url + "/models/clf", json={"inputs": "x"}, timeout=5)
        assert early.status_code == 503 and early.headers["retry-after"] == "1"
        assert "still loading" in early.json()["error"]
        live.wait_ready(timeout_s=30)
        assert live.models["clf"].pipeline.calls == [1]  # the warm-up call ran before ready
        assert requests.post(live.url + "/models/clf", json={"inputs": "x"}, timeout=5).status_code == 200
    finally:
        live.stop()


def test_load_failure_is_reported_and_fatal() -> None:
    from distilrt.runtime.errors import BundleError

    fatal: list[BaseException] = []
    failing = fake_model("clf", "text-classification", load_error=BundleError("onnx/model.onnx is missing"))
    live = LiveServer([failing], on_fatal=fatal.append)
    live.start(wait_ready=False)
    try:
        deadline = time.monotonic() + 30
        while not fatal:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        ready = requests.get(live.url + "/ready", timeout=5)
        assert ready.status_code == 503 and ready.json() == {"status": "failed", "models": {"clf": "failed"}}
        response = requests.post(live.url + "/models/clf", json={"inputs": "x"}, timeout=5)
        assert response.status_code == 503 and "model.onnx is missing" in response.json()["error"]
        assert isinstance(fatal[0], BundleError)
    finally:
        live.stop()
