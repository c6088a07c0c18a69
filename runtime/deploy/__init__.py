"""distilrt.runtime.deploy: hand bundles to existing serving engines (Triton Inference Server, Ray Serve).

Each engine's own packages (``tritonclient``, ``ray[serve]``) are imported inside the functions that
need them, so importing this package costs nothing beyond the runtime.
"""
