"""Development-only instruments that answered questions about distilrt's graphs (see README.md here).

Run them from a source checkout, e.g. ``python -m research.projections``; the ``distilrt`` wheel does not
ship this folder.
"""
