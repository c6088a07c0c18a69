"""distilrt.runtime.serve: the HTTP inference service (needs the ``serve`` extra)."""
