# Two set-up commands: `make demo` and `make test`. Both build a local virtual environment from nothing.
# TORCH_SPEC pins torch first so that pip never resolves the multi-GB CUDA build; override it from the
# environment (e.g. TORCH_SPEC="torch==2.5.1" make test) where another build is wanted.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.cast-installed

.PHONY: install test demo clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python examples/demo.py

clean:
	rm -rf $(VENV) .pytest_cache
