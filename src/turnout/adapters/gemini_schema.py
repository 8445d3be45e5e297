"""JSON Schema (as OpenAI clients write tool parameters and ``json_schema`` formats) to
Gemini's ``Schema`` message (google.ai.generativelanguage.v1beta.Schema): upper-case types,
``nullable`` instead of a ``null`` type, ``$ref`` inlined, keywords Gemini lacks dropped.

Hand-written because no maintained library does this conversion outside an SDK's private
helpers, and it is one small recursive function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import BadRequestError

__all__ = ["to_gemini_schema"]

_KEEP = (
    "format",
    "title",
    "description",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "default",
    "propertyOrdering",
)
_MAX_DEPTH = 32


def to_gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Convert one JSON Schema; ``$defs`` / ``definitions`` references are resolved
    against it. A recursive schema (which Gemini cannot express) is a ``BadRequestError``."""
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _convert(schema, defs, 0)


def _resolve(ref: str, defs: Mapping[str, Any]) -> Mapping[str, Any]:
    for prefix in ("#/$defs/", "#/definitions/"):
        if ref.startswith(prefix) and ref[len(prefix) :] in defs:
            return defs[ref[len(prefix) :]]
    raise BadRequestError(f"schema reference '{ref}' cannot be resolved", param="tools")


def _convert(node: Mapping[str, Any], defs: Mapping[str, Any], depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise BadRequestError(
            "schema is recursive or nested too deeply for Gemini", param="response_format"
        )
    if "$ref" in node:
        node = {**_resolve(node["$ref"], defs), **{k: v for k, v in node.items() if k != "$ref"}}
    out: dict[str, Any] = {k: node[k] for k in _KEEP if k in node}
    nullable = False

    variants = node.get("anyOf") or node.get("oneOf")
    if variants:
        kept = [v for v in variants if v.get("type") != "null"]
        nullable = len(kept) < len(variants)
        if len(kept) == 1:
            merged = _convert(kept[0], defs, depth + 1)
            out = {**merged, **out}
        else:
            out["anyOf"] = [_convert(v, defs, depth + 1) for v in kept]

    kind = node.get("type")
    if isinstance(kind, list):
        types = [t for t in kind if t != "null"]
        nullable = nullable or len(types) < len(kind)
        if len(types) == 1:
            kind = types[0]
        elif types:
            out["anyOf"] = [_convert({**node, "type": t}, defs, depth + 1) for t in types]
            kind = None
        else:
            kind = None
    if isinstance(kind, str):
        out["type"] = kind.upper()
    if "const" in node:
        out["enum"] = [str(node["const"])]
        out.setdefault("type", "STRING")
    elif "enum" in node:
        values = [v for v in node["enum"] if v is not None]
        nullable = nullable or len(values) < len(node["enum"])
        if all(isinstance(v, str) for v in values):
            out["enum"] = values
    if nullable:
        out["nullable"] = True

    if isinstance(node.get("properties"), dict):
        out["properties"] = {
            name: _convert(sub, defs, depth + 1) for name, sub in node["properties"].items()
        }
        out.setdefault("type", "OBJECT")
    if node.get("required"):
        out["required"] = list(node["required"])
    if isinstance(node.get("items"), dict):
        out["items"] = _convert(node["items"], defs, depth + 1)
        out.setdefault("type", "ARRAY")
    return out
