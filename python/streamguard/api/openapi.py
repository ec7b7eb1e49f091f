"""The OpenAPI document states exactly what the API enforces.

Litestar 2's schemas for msgspec Structs leave out two things msgspec checks on every request
body: ``forbid_unknown_fields`` (an unknown field is a 422, so the object is
``additionalProperties: false``) and the constraints of list items (``list[Sha256]`` is a list
of 64-hex strings, not of any strings). :class:`StrictStructSchemaPlugin` adds them, so a client
(or a schema-driven test) reading the document sends what the API accepts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.spec import Schema

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.typing import FieldDefinition

__all__ = ["StrictStructSchemaPlugin"]

_SEQUENCES = (msgspec.inspect.ListType, msgspec.inspect.SetType, msgspec.inspect.FrozenSetType)


def _string_constraints(info: msgspec.inspect.Type) -> dict[str, Any]:
    if not isinstance(info, msgspec.inspect.StrType):
        return {}
    found = {
        "pattern": info.pattern,
        "min_length": info.min_length,
        "max_length": info.max_length,
    }
    return {k: v for k, v in found.items() if v is not None}


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's Struct schemas, plus ``additionalProperties: false`` for Structs that forbid
    unknown fields and the string constraints of sequence items."""

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if not isinstance(info, msgspec.inspect.StructType):  # pragma: no cover
            return schema
        if info.forbid_unknown_fields:
            schema.additional_properties = False
        for field in info.fields:
            prop = (schema.properties or {}).get(field.encode_name)
            if not isinstance(field.type, _SEQUENCES) or not isinstance(prop, Schema):
                continue
            items = prop.items
            if isinstance(items, Schema):
                for key, value in _string_constraints(field.type.item_type).items():
                    setattr(items, key, value)
        return schema
