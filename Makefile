# smolrt — `make help` lists the targets. The README's two commands are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
PROMPT  ?= Explain in two sentences why the sky is blue.
export CARGO_TERM_COLOR ?= never

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.deps: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "maturin>=1.7,<2" "jinja2>=3.1" "pytest>=8" "pytest-timeout>=2.3" "gguf>=0.17" "numpy>=1.26"
	touch $@

setup: $(VENV)/.deps ## Create the virtualenv and build the extension in release mode
	@command -v cargo >/dev/null || { echo "cargo (Rust) is required: see README"; exit 1; }
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop --release -q

model: setup ## Fetch the default model (SmolLM2-135M-Instruct Q4_1) if it is missing
	@$(PY) -c "from smolrt.models import find_default_model as f; import sys; sys.exit(0 if f() else 1)" \
		|| $(PY) -m smolrt pull

run: model ## Set up, fetch the default model, and generate a reply to PROMPT
	$(PY) -m smolrt generate "$(PROMPT)"

MODEL_PATH = $$($(PY) -c "from smolrt.models import find_default_model as f; print(f() or '')")

test: model ## Set up and run every test (cargo, then pytest)
	SMOLRT_TEST_MODEL=$(MODEL_PATH) cargo test --release -p smolrt-core
	SMOLRT_TEST_MODEL=$(MODEL_PATH) $(PY) -m pytest

bench: model ## Prefill/decode tokens/s, beside llama.cpp when llama-cpp-python is installed
	$(PY) benches/bench_engine.py

lint: $(VENV)/.deps ## rustfmt, clippy -D warnings, ruff, mypy
	cargo fmt --all --check
	cargo clippy --release --workspace -- -D warnings
	$(PIP) install -q "ruff>=0.6" "mypy>=1.11"
	$(VENV)/bin/ruff check python tests benches tools
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest smolrt._core

clean: ## Remove the virtualenv and build outputs
	rm -rf $(VENV) target

.PHONY: help setup model run test bench lint clean
