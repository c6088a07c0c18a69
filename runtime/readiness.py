"""Waiting for a local HTTP server to say it is ready (``distilrt serve``'s /ready, Triton's /v2/health/ready)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Callable


def wait_until_ok(url: str, *, timeout_s: float, interval_s: float = 0.1,
                  check_alive: Callable[[], None] | None = None) -> bool:
    """Poll ``url`` until it answers 200; False once ``timeout_s`` has passed without one.

    ``check_alive`` runs before each poll and may raise (e.g. when the server process has exited), so a dead
    server is reported at once instead of after the whole timeout.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check_alive is not None:
            check_alive()
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(interval_s)
    return False
