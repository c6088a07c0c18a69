"""Helpers for the serve tests: stand-in pipelines with the runtime's call shapes, and a live server.

The stand-ins answer deterministically from their input, so any mixing of results between requests in a
batch shows up as a wrong answer.  ``LiveServer`` runs the real app under uvicorn on 127.0.0.1 with an
ephemeral port in a background thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from typing import Any, Iterator, Sequence

import numpy as np
import requests

from distilrt.runtime.errors import InputError
from distilrt.runtime.serve.config import ServeSettings
from distilrt.runtime.serve.models import ServedModel

HIDDEN = 8


class FakePipeline:
    """Records the size of every call; can sleep to simulate model time; refuses texts containing BAD."""

    task = ""

    def __init__(self, *, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls: list[int] = []
        self._lock = threading.Lock()
        self.max_sequence_length = 512

    def _record(self, count: int) -> None:
        with self._lock:
            self.calls.append(count)
        if self.delay_s:
            time.sleep(self.delay_s)

    @staticmethod
    def _check(text: Any) -> str:
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"text must be a non-empty string, got {text!r}")
        if "BAD" in text:
            raise InputError("the text contains BAD, which this stand-in refuses")
        return text


def _vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    return np.random.default_rng(seed).standard_normal(HIDDEN).astype(np.float32)


class FakeQA(FakePipeline):
    task = "question-answering"

    def __call__(self, *, question: Any, context: Any, top_k: int = 1, **options: Any) -> Any:
        if isinstance(question, list):
            self._record(len(question))
            return [self._one(q, c, top_k) for q, c in zip(question, context)]
        self._record(1)
        return self._one(question, context, top_k)

    def _one(self, question: str, context: str, top_k: int) -> Any:
        self._check(question)
        self._check(context)
        words = context.split()
        answers = []
        start = 0
        for k, word in enumerate(words[:top_k]):
            start = context.index(word, start)
            answers.append({"score": 1.0 / (k + 1 + len(question)), "start": start, "end": start + len(word),
                            "answer": word})
            start += len(word)
        return answers[0] if top_k == 1 else answers


class FakeFillMask(FakePipeline):
    task = "fill-mask"
    mask_token = "[MASK]"

    def __call__(self, text: Any, *, top_k: int = 5, targets: Sequence[str] | None = None) -> Any:
        if isinstance(text, list):
            self._record(len(text))
            return [self._one(t, top_k, targets) for t in text]
        self._record(1)
        return self._one(text, top_k, targets)

    def _one(self, text: str, top_k: int, targets: Sequence[str] | None) -> Any:
        self._check(text)
        masks = text.count("[MASK]")
        if not masks:
            raise InputError("no [MASK] token in the text; put [MASK] where the word should go")
        words = list(targets) if targets else [f"w{len(text)}_{i}" for i in range(top_k)]
        per_mask = [[{"score": 1.0 / (i + 2), "token": 100 + i, "token_str": w,
                      "sequence": text.replace("[MASK]", w, 1)} for i, w in enumerate(words[:top_k])]
                    for _ in range(masks)]
        return per_mask[0] if masks == 1 else per_mask


class FakeFeatures(FakePipeline):
    task = "feature-extraction"

    def __call__(self, texts: Any, *, pooling: str = "none", normalize: bool | None = None,
                 truncation: bool | None = None, return_tensors: bool = False) -> Any:
        single = not isinstance(texts, list)
        batch = [texts] if single else texts
        self._record(len(batch))
        rows = []
        for text in batch:
            vec = _vector(self._check(text))
            if normalize:
                vec = vec / np.linalg.norm(vec)
            rows.append(vec if pooling != "none" else np.stack([vec] * (1 + len(text) % 4))[None])
        if pooling == "none":  # [1, tokens, hidden] per text, as the runtime gives
            rows = rows if return_tensors else [r.tolist() for r in rows]
            return rows[0] if single else rows
        out = np.stack(rows)
        out = out[0] if single else out
        return out if return_tensors else out.tolist()


class FakeClassifier(FakePipeline):
    task = "text-classification"

    def __call__(self, text: Any, *, top_k: int | None = 1, function_to_apply: str | None = None) -> Any:
        if isinstance(text, list):
            self._record(len(text))
            return [self._one(t, top_k) for t in text]
        self._record(1)
        return self._one(text, top_k)

    def _one(self, text: str, top_k: int | None) -> Any:
        self._check(text)
        pos = (len(text) % 10) / 10 + 0.05
        labels = sorted([{"label": "POSITIVE", "score": pos}, {"label": "NEGATIVE", "score": 1 - pos}],
                        key=lambda d: -d["score"])
        return labels[0] if top_k == 1 else labels[: top_k or None]


FAKES = {cls.task: cls for cls in (FakeQA, FakeFillMask, FakeFeatures, FakeClassifier)}


def fake_model(name: str, task: str, *, delay_s: float = 0.0, pooling: dict[str, Any] | None = None,
               load_delay_s: float = 0.0, load_error: Exception | None = None) -> ServedModel:
    """A :class:`ServedModel` backed by a stand-in pipeline (reachable afterwards as ``.pipeline``)."""
    def load() -> FakePipeline:
        if load_delay_s:
            time.sleep(load_delay_s)
        if load_error is not None:
            raise load_error
        return FAKES[task](delay_s=delay_s)

    return ServedModel(name=name, task=task, loader=load, pooling=pooling)


class LiveServer:
    """The real app under uvicorn on 127.0.0.1:<ephemeral>, in a daemon thread."""

    def __init__(self, models: Sequence[ServedModel], settings: ServeSettings | None = None, *,
                 on_fatal: Any = None) -> None:
        from distilrt.runtime.serve.app import create_app
        from distilrt.runtime.serve.server import make_server

        self.models = {m.name: m for m in models}
        self.settings = settings or ServeSettings(port=0, graceful_timeout_s=10)
        self.app = create_app(models, self.settings, on_fatal=on_fatal)
        self.server = make_server(self.app, self.settings, log_level="warning", host="127.0.0.1", port=0)
        self.thread = threading.Thread(target=self.server.run, name="live-server", daemon=True)
        self.url = ""

    def __enter__(self) -> "LiveServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, *, timeout_s: float = 60.0, wait_ready: bool = True) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        if wait_ready:
            self.wait_ready(timeout_s=deadline - time.monotonic())

    def wait_ready(self, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if requests.get(self.url + "/ready", timeout=5).status_code == 200:
                return
            time.sleep(0.05)
        raise RuntimeError("server did not become ready")

    def stop(self, *, timeout_s: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            raise RuntimeError("server did not stop")

    def metric(self, line_prefix: str, headers: dict[str, str] | None = None) -> float:
        """Sum of the samples on /metrics whose line starts with ``line_prefix``."""
        text = requests.get(self.url + "/metrics", headers=headers, timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_prefix))


@contextlib.contextmanager
def loopback_hub_session() -> Iterator[None]:
    """Let huggingface_hub reach 127.0.0.1 while HF_HUB_OFFLINE=1 keeps every other address refused."""
    import huggingface_hub
    from huggingface_hub.utils._http import OfflineAdapter
    from requests.adapters import HTTPAdapter

    def factory() -> requests.Session:
        session = requests.Session()
        session.mount("http://", OfflineAdapter())
        session.mount("https://", OfflineAdapter())
        session.mount("http://127.0.0.1:", HTTPAdapter(pool_maxsize=64))
        return session

    huggingface_hub.configure_http_backend(backend_factory=factory)
    try:
        yield
    finally:
        huggingface_hub.configure_http_backend()
