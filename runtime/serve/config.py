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
    api_key: str | None = None  # bearer token; None disables auth
    graceful_timeout_s: float = 30.0  # on SIGTERM, how long in-flight requests may take to finish
    retry_after_s: int = 1  # Retry-After on 503

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_queue", "max_body_bytes", "max_inputs_per_request"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
