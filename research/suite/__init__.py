"""pytest-benchmark suite over distilrt and its peers: ``python -m pytest research/suite --benchmark-only``."""
