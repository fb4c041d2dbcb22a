# Two set-up commands: `make demo` and `make test`. Both build a local virtual environment from nothing.
# TORCH_SPEC pins torch first so that pip never resolves the multi-GB CUDA build; override it from the
# environment (e.g. TORCH_SPEC="torch==2.5.1" make test) where another build is wanted.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.cast-installed

.PHONY: install browser test demo clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The app's browser test drives Debian's Chromium; install it where apt-get can (CI runs as root), else the test
# skips and says why.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		  apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
		echo "make: no Chromium (apt-get install chromium chromium-driver); the browser test will be skipped"

test: $(STAMP) browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python examples/demo.py

clean:
	rm -rf $(VENV) .pytest_cache
