"""Serve an open model with vLLM on a Modal GPU, behind an OpenAI-compatible endpoint that a
Turnout deployment reaches through its ``modal`` host row.

    pip install modal && modal setup
    modal secret create turnout-vllm VLLM_API_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')
    modal deploy deploy/modal/serve_vllm.py

``modal deploy`` prints the URL (``https://<workspace>--turnout-vllm-serve.modal.run``); the
OpenAI API is under ``/v1``. See README.md beside this file for the Turnout side.
"""

import subprocess

import modal

MODEL = "Qwen/Qwen3-8B"  # any vLLM-supported chat model; it is also the served model name
MODEL_REVISION = "main"  # pin a commit hash in production
GPU = "L40S"  # 48 GB: an 8B model in bf16 with room for the KV cache
PORT = 8000
MINUTES = 60

image = (
    modal.Image.debian_slim(python_version="3.12")
    .uv_pip_install("vllm==0.11.2", "huggingface_hub[hf_transfer]")
    .env({"HF_HUB_ENABLE_HF_TRANSFER": "1"})
)
# Weights and vLLM's compile cache survive cold starts in volumes.
hf_cache = modal.Volume.from_name("huggingface-cache", create_if_missing=True)
vllm_cache = modal.Volume.from_name("vllm-cache", create_if_missing=True)

app = modal.App("turnout-vllm")


@app.function(
    image=image,
    gpu=GPU,
    volumes={"/root/.cache/huggingface": hf_cache, "/root/.cache/vllm": vllm_cache},
    secrets=[modal.Secret.from_name("turnout-vllm", required_keys=["VLLM_API_KEY"])],
    scaledown_window=10 * MINUTES,  # stay warm this long after the last request
    timeout=20 * MINUTES,  # longest request, and the first model download
)
@modal.concurrent(max_inputs=64)  # vLLM batches concurrent requests on one GPU
@modal.web_server(port=PORT, startup_timeout=15 * MINUTES)
def serve() -> None:
    # vLLM reads VLLM_API_KEY from the secret and then requires "Authorization: Bearer <key>".
    cmd = [
        "vllm",
        "serve",
        MODEL,
        "--revision",
        MODEL_REVISION,
        "--served-model-name",
        MODEL,
        "--host",
        "0.0.0.0",
        "--port",
        str(PORT),
        "--enable-auto-tool-choice",  # OpenAI tool calling ...
        "--tool-call-parser",
        "hermes",  # ... in the format Qwen models emit
    ]
    subprocess.Popen(cmd)
