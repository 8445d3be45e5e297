"""deploy/modal/serve_vllm.py, loaded the way ``modal deploy`` loads it (Modal's own import
path, no network, no Modal account): the app, its GPU web endpoint and the image layers it
would ask Modal to build."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modal.cli.import_refs import import_app_from_ref, parse_import_ref

SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "modal" / "serve_vllm.py"


def _layers(image: Any) -> Iterator[list[str]]:
    """The Dockerfile commands of each layer of a Modal image, base first (what Modal's
    builder receives; computed locally from the image's definition)."""
    load = image._load
    cells = {
        name: cell.cell_contents
        for name, cell in zip(load.__code__.co_freevars, load.__closure__, strict=True)
    }
    for base in (cells.get("base_images") or {}).values():
        yield from _layers(base)
    build = cells.get("dockerfile_function")
    if build is not None:
        yield build("2025.06").commands


def test_modal_app_builds_offline() -> None:
    ref = parse_import_ref(str(SCRIPT), command="modal deploy")
    app = import_app_from_ref(ref, base_cmd="modal deploy")
    module = next(m for name, m in sys.modules.items() if name.endswith("serve_vllm"))
    try:
        assert app.name == "turnout-vllm"
        serve = module.serve
        assert serve.app is app
        assert serve._is_web_endpoint()
        spec = serve._spec_
        assert spec.gpus == module.GPU
        assert set(spec.volumes) == {"/root/.cache/huggingface", "/root/.cache/vllm"}
        commands = [c for layer in _layers(spec.image) for c in layer]
        assert commands[0].startswith("FROM python:3.12")
        assert any("vllm==" in c and "install" in c for c in commands)
        assert "ENV HF_HUB_ENABLE_HF_TRANSFER=1" in commands
    finally:
        sys.modules.pop(module.__name__, None)
