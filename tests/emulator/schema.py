"""Validate emulator responses against Microsoft's OpenAPI descriptions in tests/emulator/openapi/ (see SOURCE.md).

Two adjustments, both documented here because they are the only ones:
- a `$ref` to a schema the slice does not contain (user-schema.yml is an excerpt) resolves to "any
  value", except `microsoft.graph.entity`, which is `{id: string}` as in the full description;
- `additionalProperties: {type: object}` is dropped from every schema: the generator puts it on each
  branch of an `allOf`, so the base type's branch would reject every property of the derived type
  (a user's `businessPhones` is not a property of directoryObject). Declared properties keep their types.
- OData annotations (`@odata.etag`, `@removed`, ...) are removed before validation.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource

OPENAPI_DIR = Path(__file__).resolve().parent / "openapi"
_ENTITY = {"type": "object", "properties": {"id": {"type": "string"}}}


@functools.cache
def _document(file_name: str) -> dict[str, Any]:
    with open(OPENAPI_DIR / file_name, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    text = (OPENAPI_DIR / file_name).read_text(encoding="utf-8")
    for name in set(re.findall(r"#/components/schemas/([\w.]+)", text)):
        if name not in schemas:
            schemas[name] = copy.deepcopy(_ENTITY) if name == "microsoft.graph.entity" else {}
    _drop_additional_properties(doc)
    return doc


def _drop_additional_properties(node: Any) -> None:
    if isinstance(node, dict):
        node.pop("additionalProperties", None)
        for v in node.values():
            _drop_additional_properties(v)
    elif isinstance(node, list):
        for v in node:
            _drop_additional_properties(v)


def strip_annotations(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_annotations(v) for k, v in value.items() if "@" not in k}
    if isinstance(value, list):
        return [strip_annotations(v) for v in value]
    return value


def validate(instance: Any, file_name: str, schema_name: str) -> None:
    """Raise jsonschema.ValidationError if `instance` does not match components/schemas/<schema_name>."""
    registry: Registry = Registry().with_resource("urn:graph", Resource.opaque(_document(file_name)))
    schema = {"$ref": f"urn:graph#/components/schemas/{schema_name}"}
    OAS30Validator(schema, registry=registry).validate(strip_annotations(instance))
