"""distilrt.benchmarks: side-by-side comparison runner behind ``distilrt bench`` (needs the ``bench`` extra)."""
