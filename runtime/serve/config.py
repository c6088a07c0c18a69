"""Settings of the HTTP service (what the ``distilrt serve`` flags set)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching knobs.  Defaults are safe for a single host on loopback."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 32  # inputs per model call; 1 turns dynamic batching off
    max_wait_ms: float = 5.0  # how long the oldest request may wait for others to join its batch
    max_queue: int = 256  # waiting requests per model before 503
    max_body_bytes: int = 1 << 20  # request bodies above this get 413
    max_inputs_per_request: int = 256
    # cost bounds, checked on arrival before any model time (see serve/budget.py)
    max_input_tokens: int = 8192  # tokens per request, counting every question-answering window
    max_batch_tokens: int | None = None  # tokens per coalesced batch; None: max(16384, max_input_tokens)
    large_request_tokens: int | None = None  # requests above this wait in their own lane; None: the model's max length
    max_masks_per_input: int = 16
    max_fill_predictions: int = 1000  # masks x top_k per request
    api_key: str | None = None  # bearer token; None disables auth
    graceful_timeout_s: float = 30.0  # on SIGTERM, how long in-flight requests may take to finish
    header_timeout_s: float = 10.0  # a connection must send a request's headers within this
    body_timeout_s: float = 30.0  # and the request's whole body within this once its headers are in
    retry_after_s: int = 1  # Retry-After on 503

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_queue", "max_body_bytes", "max_inputs_per_request", "max_input_tokens",
                     "max_masks_per_input", "max_fill_predictions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_batch_tokens", "large_request_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_batch_tokens is not None and self.max_batch_tokens < self.max_input_tokens:
            raise ValueError(f"max_batch_tokens ({self.max_batch_tokens}) must be at least max_input_tokens "
                             f"({self.max_input_tokens}), or a request allowed in could never be batched; raise "
                             "--max-batch-tokens or lower --max-input-tokens")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        for name in ("header_timeout_s", "body_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def batch_tokens(self) -> int:
        """Tokens per coalesced batch (TEI's default budget unless a request may be larger)."""
        return self.max_batch_tokens if self.max_batch_tokens is not None else max(16384, self.max_input_tokens)
