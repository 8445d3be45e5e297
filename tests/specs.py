"""JSON Schema validators for components of the vendor specs in ``../shared/specs`` (Gemini's
OpenAPI 3.1 JSON, Ollama's OpenAPI 3.1 YAML), used as oracles for what adapters send and
what fakes answer."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from .shared import spec_path


@lru_cache(maxsize=4)
def _spec(name: str) -> Any:
    path = spec_path(name)
    if name.endswith(".json"):
        return json.loads(path.read_text(encoding="utf-8"))
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=loader)  # noqa: S506 - safe loader


def validator(spec_file: str, schema_name: str) -> Any:
    """A Draft 2020-12 validator for ``#/components/schemas/<schema_name>`` of a spec."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resource = Resource.from_contents(_spec(spec_file), default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:spec", resource)
    return Draft202012Validator(
        {"$ref": f"urn:spec#/components/schemas/{schema_name}"}, registry=registry
    )


def errors_of(spec_file: str, schema_name: str, instance: Any) -> list[str]:
    """Every violation, as readable strings (empty when the instance is valid)."""
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(spec_file, schema_name).iter_errors(instance)
    ]
