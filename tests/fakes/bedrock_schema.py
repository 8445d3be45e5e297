"""The Bedrock Runtime service model (``../shared/specs/bedrock-runtime-2023-09-30.service-2.json``)
as a validator of JSON wire bodies, so the fake refuses what real Bedrock would refuse, and
tests can check the bodies our adapter sends and the fake returns against the vendor's model.

botocore's own ``ParamValidator`` checks Python parameters (bytes for blobs), not wire JSON
(base64 strings for blobs), so this walks the shapes itself: structures (no unknown members,
required members present, unions with exactly one member), lists, maps, enums, lengths, ranges,
patterns, blobs as base64.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from functools import lru_cache
from typing import Any

from ..shared import spec_path

SPEC = "bedrock-runtime-2023-09-30.service-2.json"


@lru_cache(maxsize=1)
def service_model() -> dict[str, Any]:
    with open(spec_path(SPEC), encoding="utf-8") as fh:
        model: dict[str, Any] = json.load(fh)
    return model


def shape(name: str) -> dict[str, Any]:
    result: dict[str, Any] = service_model()["shapes"][name]
    return result


def errors(value: Any, shape_name: str, path: str = "", *, skip_uri: bool = True) -> list[str]:
    """Every way ``value`` (decoded wire JSON) breaks shape ``shape_name``."""
    out: list[str] = []
    _check(value, shape_name, path or "body", out, skip_uri)
    return out


def _check(value: Any, name: str, path: str, out: list[str], skip_uri: bool) -> None:
    s = shape(name)
    kind = s["type"]
    if kind == "structure":
        if s.get("document"):
            return
        if not isinstance(value, dict):
            out.append(f"{path}: expected an object ({name})")
            return
        members = s["members"]
        for key in value:
            if key not in members:
                out.append(f"{path}: unknown member {key!r} in {name}")
        for req in s.get("required", ()):
            if skip_uri and members[req].get("location") == "uri":
                continue
            if req not in value:
                out.append(f"{path}: missing required member {req!r} of {name}")
        if s.get("union") and len(value) != 1:
            out.append(f"{path}: union {name} needs exactly one member, got {sorted(value)}")
        for key, item in value.items():
            if key in members and item is not None:
                _check(item, members[key]["shape"], f"{path}.{key}", out, skip_uri)
    elif kind == "list":
        if not isinstance(value, list):
            out.append(f"{path}: expected a list ({name})")
            return
        _bounds(len(value), s, path, "length", out)
        for i, item in enumerate(value):
            _check(item, s["member"]["shape"], f"{path}[{i}]", out, skip_uri)
    elif kind == "map":
        if not isinstance(value, dict):
            out.append(f"{path}: expected an object ({name})")
            return
        for key, item in value.items():
            _check(key, s["key"]["shape"], f"{path}<key>", out, skip_uri)
            _check(item, s["value"]["shape"], f"{path}.{key}", out, skip_uri)
    elif kind == "string":
        if not isinstance(value, str):
            out.append(f"{path}: expected a string ({name})")
            return
        if "enum" in s and value not in s["enum"]:
            out.append(f"{path}: {value!r} is not one of {s['enum']}")
        _bounds(len(value), s, path, "length", out)
        if "pattern" in s and not re.search(s["pattern"], value):
            out.append(f"{path}: {value!r} does not match {s['pattern']}")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            out.append(f"{path}: expected an integer ({name})")
            return
        _bounds(value, s, path, "value", out)
    elif kind in ("float", "double"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            out.append(f"{path}: expected a number ({name})")
            return
        _bounds(value, s, path, "value", out)
    elif kind == "boolean":
        if not isinstance(value, bool):
            out.append(f"{path}: expected a boolean ({name})")
    elif kind == "blob":
        if not isinstance(value, str):
            out.append(f"{path}: expected base64 text ({name})")
            return
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            out.append(f"{path}: not valid base64 ({name})")
            return
        _bounds(len(data), s, path, "length", out)
    elif kind == "timestamp" and not isinstance(value, int | float | str):
        out.append(f"{path}: expected a timestamp ({name})")


def _bounds(n: float, s: dict[str, Any], path: str, what: str, out: list[str]) -> None:
    if "min" in s and n < s["min"]:
        out.append(f"{path}: {what} {n} is below the minimum {s['min']}")
    if "max" in s and n > s["max"]:
        out.append(f"{path}: {what} {n} is above the maximum {s['max']}")
