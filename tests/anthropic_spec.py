"""JSON Schema validators for the Anthropic spec in ``../shared/specs`` (OpenAPI 3.0, curated
by langchain_dart), the oracle for what our adapter sends and what the fake answers.

OpenAPI is not quite JSON Schema, so the spec is adapted once, on load:
- ``nullable: true`` becomes "or null";
- a ``oneOf`` with a ``discriminator`` selects its branch by the discriminator value (a plain
  ``oneOf`` would fail wherever two branches both match, e.g. a text block that is also a
  valid ``ToolTextEditor`` with all-optional fields);
and five slips of the curated file are mended, each checked against the official SDK types:
``InputJsonBlockDelta`` requires ``partial_json`` (the file says ``text``), ``system`` may be
a list of blocks (the file also says ``type: string``), ``stop_sequence`` is null unless a stop
sequence matched (``Optional[str]`` in ``anthropic.types.Message``), and ``tool_choice`` may be
``{"type": "none"}`` (``anthropic.types.ToolChoiceNoneParam``; the file predates it), and a
cache breakpoint's ``ttl`` is ``"5m"`` or ``"1h"`` (``CacheControlEphemeralParam``; the file
says seconds).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .shared import spec_path

SPEC_FILE = "anthropic-openapi-curated.langchain_dart.yaml"


def _adapt(node: Any) -> Any:
    if isinstance(node, list):
        return [_adapt(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _adapt(v) for k, v in node.items() if k not in ("nullable", "discriminator")}
    disc = node.get("discriminator")
    if disc and "oneOf" in node:
        prop, mapping = disc["propertyName"], disc.get("mapping") or {}
        branches = out.pop("oneOf")
        out["anyOf"] = branches
        out["allOf"] = [
            {
                "if": {"required": [prop], "properties": {prop: {"const": key}}},
                "then": {"$ref": ref},
            }
            for key, ref in mapping.items()
        ] + [
            {
                "if": {"required": [prop]},
                "then": {"properties": {prop: {"enum": sorted(mapping)}}},
            }
        ]
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@lru_cache(maxsize=1)
def _spec() -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(spec_path(SPEC_FILE), encoding="utf-8") as fh:
        spec = yaml.load(fh, Loader=loader)  # noqa: S506 - safe loader
    schemas = spec["components"]["schemas"]
    schemas["InputJsonBlockDelta"]["required"] = ["partial_json", "type"]
    del schemas["CreateMessageRequest"]["properties"]["system"]["type"]
    schemas["ToolChoiceType"]["enum"].append("none")
    schemas["CacheControlEphemeral"]["properties"]["ttl"] = {"enum": ["5m", "1h"]}
    for name in ("Message", "MessageDelta"):
        schemas[name]["properties"]["stop_sequence"]["nullable"] = True
    return _adapt(spec)


def anthropic_validator(schema_name: str) -> Any:
    """A Draft 2020-12 validator for ``#/components/schemas/<schema_name>``."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resource = Resource.from_contents(_spec(), default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:anthropic", resource)
    schema = {"$ref": f"urn:anthropic#/components/schemas/{schema_name}"}
    return Draft202012Validator(schema, registry=registry)


def spec_errors(schema_name: str, instance: Any) -> list[str]:
    """Every violation as a readable string; empty when the instance is valid."""
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in anthropic_validator(schema_name).iter_errors(instance)
    ]
