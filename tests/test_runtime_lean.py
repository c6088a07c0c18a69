"""The runtime stays lean: load + inference (API and CLI) never import torch, transformers or optimum."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# huggingface_hub is imported only to resolve a model id, never for a bundle directory
HEAVY = ("torch", "transformers", "optimum", "sentence_transformers", "tensorflow", "jax", "accelerate",
         "huggingface_hub")

SCRIPT = r"""
import json, sys, io, contextlib
from distilrt.runtime import pipeline
from distilrt.runtime.cli import main
qa = pipeline("question-answering", model=sys.argv[1], provider="cpu")
answer = qa(question="Who was Jim Henson?", context="Jim Henson was a nice puppet.")
fm = pipeline(model=sys.argv[2], provider="cpu")
fm("Paris is the [MASK] of France.")
with contextlib.redirect_stdout(io.StringIO()):
    code = main(["qa", sys.argv[1], "--question", "Who?", "--context", "Jim Henson was a nice puppet."])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in json.loads(sys.argv[3]))
print(json.dumps({"answer": answer, "heavy": heavy, "code": code}))
"""


def test_runtime_never_imports_heavy_frameworks(make_bundle) -> None:
    qa, fm = make_bundle("distilbert-qa-uncased"), make_bundle("distilbert-mlm-uncased")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(qa), str(fm), json.dumps(HEAVY)],
                          capture_output=True, text=True, timeout=300, cwd=Path(qa).parent)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    assert report["answer"]["answer"] == "Jim Henson was a nice puppet."[report["answer"]["start"]:report["answer"]["end"]]
    assert report["heavy"] == [], f"the runtime imported {report['heavy']}"
