# smolrt — `make help` lists the targets. The README's two commands are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
PROMPT  ?= Explain in two sentences why the sky is blue.
HOST    ?= 127.0.0.1
PORT    ?= 50051
HTTP_PORT ?= 8080
# Keep in step with pyproject.toml. grpcio-tools is exact: proto-check compares its output.
GRPC_DEPS := "grpcio>=1.85.1,<2" "protobuf>=7.35.1,<8" "grpcio-health-checking>=1.85.1,<2" \
	"grpcio-reflection>=1.85.1,<2" "grpcio-testing>=1.85.0,<2" "grpcio-tools==1.85.1"
HTTP_DEPS := "fastapi>=0.115,<1" "uvicorn>=0.30,<1" "prometheus-client>=0.20,<1"
TEST_DEPS := "httpx>=0.27,<1" "selenium>=4.20,<5"
PROTOC  := $(PY) -m grpc_tools.protoc -I proto
PROTOS  := proto/smolrt/v1/smolrt.proto
export CARGO_TERM_COLOR ?= never

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.deps: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "maturin>=1.7,<2" "jinja2>=3.1" "pytest>=8" "pytest-timeout>=2.3" "gguf==0.19.0" "numpy>=2.2,<3" \
		$(GRPC_DEPS) $(HTTP_DEPS) $(TEST_DEPS)
	touch $@

setup: $(VENV)/.deps ## Create the virtualenv and build the extension in release mode
	@command -v cargo >/dev/null || { echo "cargo (Rust) is required: see README"; exit 1; }
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop --release -q

model: setup ## Fetch the default model (SmolLM2-135M-Instruct Q4_1) if it is missing
	@$(PY) -c "from smolrt.models import find_default_model as f; import sys; sys.exit(0 if f() else 1)" \
		|| $(PY) -m smolrt pull

run: model ## Serve the default model: gRPC on HOST:PORT, the chat page and HTTP API on HOST:HTTP_PORT
	@echo "smolrt serve: gRPC on $(HOST):$(PORT) with the default model; Ctrl-C stops it."
	@echo "  Chat in a browser:  http://$(HOST):$(HTTP_PORT)/"
	@echo "  OpenAI-compatible:  curl http://$(HOST):$(HTTP_PORT)/v1/chat/completions -H 'Content-Type: application/json' \\"
	@echo "      -d '{\"messages\":[{\"role\":\"user\",\"content\":\"Hi!\"}]}'"
	@echo "Over gRPC:"
	@echo "  grpcurl -plaintext -d '{\"messages\":{\"messages\":[{\"role\":\"user\",\"content\":\"Hi!\"}]}}' \\"
	@echo "      $(HOST):$(PORT) smolrt.v1.Inference/Generate"
	@echo "  $(PY) -m smolrt generate --server $(HOST):$(PORT) \"$(PROMPT)\""
	@echo "  $(PY) -c 'import grpc; from smolrt.v1 import smolrt_pb2 as pb, smolrt_pb2_grpc as rpc; \\"
	@echo "      stub = rpc.InferenceStub(grpc.insecure_channel(\"$(HOST):$(PORT)\")); \\"
	@echo "      [print(e.delta.text, end=\"\", flush=True) for e in stub.Generate(pb.GenerateRequest(prompt=\"Once upon a time\"))]'"
	$(PY) -m smolrt serve --model "$(MODEL_PATH)" --host $(HOST) --grpc-port $(PORT) --http-port $(HTTP_PORT)

generate: model ## Generate a reply to PROMPT in-process (no server)
	$(PY) -m smolrt generate "$(PROMPT)"

proto: $(VENV)/.deps ## Regenerate the Python stubs (python/smolrt/v1) from proto/
	$(PROTOC) --python_out=python --pyi_out=python --grpc_python_out=python $(PROTOS)

proto-check: $(VENV)/.deps ## Fail when the committed stubs differ from what proto/ generates
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(PROTOC) --python_out=$$tmp --pyi_out=$$tmp --grpc_python_out=$$tmp $(PROTOS) && \
	for f in $$(cd $$tmp && find . -type f | sort); do \
		diff -u "python/$$f" "$$tmp/$$f" || { echo "$$f is stale: run make proto and commit"; exit 1; }; \
	done && echo "proto stubs are up to date"

MODEL_PATH = $$($(PY) -c "from smolrt.models import find_default_model as f; print(f() or '')")

browser: ## Install Debian's chromium and chromium-driver (the browser test's headless Chromium)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo="sudo -n"; \
	else echo "make browser: not root and no sudo: the browser test will be skipped"; exit 0; fi; \
	if ! command -v apt-get >/dev/null; then echo "make browser: no apt-get: the browser test will be skipped"; exit 0; fi; \
	$$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q chromium chromium-driver \
		|| { echo "make browser: could not install chromium"; [ -z "$$CI" ] || exit 1; }

test: model browser ## Set up and run every test (cargo, then pytest)
	SMOLRT_TEST_MODEL=$(MODEL_PATH) cargo test --release -p smolrt-core
	SMOLRT_TEST_MODEL=$(MODEL_PATH) $(PY) -m pytest

bench: model ## Prefill/decode tokens/s, beside llama.cpp when llama-cpp-python is installed
	$(PY) benches/bench_engine.py

bench-grpc: model ## Aggregate decode tokens/s over gRPC at 1/4/8/16 streams, and gRPC ÷ in-process
	$(PY) benches/bench_grpc.py --model "$(MODEL_PATH)"

bench-quants: model ## Decode/prefill per weight type beside llama.cpp (needs llama-cpp-python to requantize)
	$(PY) benches/bench_quants.py

lint: $(VENV)/.deps proto-check ## proto drift, rustfmt, clippy -D warnings, ruff, mypy
	cargo fmt --all --check
	cargo clippy --release --workspace -- -D warnings
	$(PIP) install -q "ruff>=0.6" "mypy>=1.11" types-grpcio types-grpcio-health-checking types-grpcio-reflection types-protobuf
	$(VENV)/bin/ruff check python tests benches tools
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest smolrt._core

clean: ## Remove the virtualenv and build outputs
	rm -rf $(VENV) target

.PHONY: help setup model run generate browser test bench bench-grpc bench-quants lint proto proto-check clean
