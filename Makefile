# Each target sets itself up: a fresh machine needs only Python 3.11 and pip.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch is pinned to one release so pip never drifts to a multi-GB build by accident; override
# TORCH_PIP_ARGS (e.g. "--index-url https://download.pytorch.org/whl/cpu") to choose the wheel source.
TORCH_SPEC     ?= torch==2.13.0
TORCH_PIP_ARGS ?=
MODELS ?= models
PYTEST_ARGS ?=

.PHONY: help install demo lint test test-slow bench bench-quick clean

help:
	@echo "make demo   export the seed checkpoints (or offline stand-ins) and run them"
	@echo "make lint   check the code with ruff (rules in pyproject.toml)"
	@echo "make test   run the test suite (tests marked slow excluded)"
	@echo "make test-slow  run only the tests marked slow"
	@echo "make bench  run the full benchmark (writes benchmarks/results/)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[cpu,export,hub,serve,bench,test,triton,ray,openvino]"
	# a real tritonserver for the deployment tests: the nvidia-pytriton wheel ships it; its Python API pins
	# numpy < 2, so the wheel goes in without dependencies and its python-backend stub gets NumPy 1.x aside
	$(BIN)/pip install --quiet --no-deps "nvidia-pytriton==0.7.0"
	$(BIN)/pip install --quiet --no-deps --target $(VENV)/triton-stub-site "numpy>=1.26,<2"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python scripts/demo.py --output $(MODELS)

lint: install
	$(BIN)/python -m ruff check .

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Tests marked slow (full-size exports, real servers under long load); `make test` leaves them out.
test-slow: install
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

bench: install
	$(BIN)/distilrt bench --output benchmarks/results

bench-quick: install
	$(BIN)/distilrt bench --quick --output benchmarks/results/quick

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .benchmarks
