"""Every bad field of a request body, not just the first: msgspec stops at the first error, and
a person filling the intake form wants to fix them all at once."""

from __future__ import annotations

import re
from typing import Any, Union, get_args, get_origin

import msgspec

__all__ = ["FieldError", "field_errors"]

# msgspec appends " - at `$.a.b`" to its messages; the path is reported separately.
_AT = re.compile(r" - at `\$[^`]*`$")


class FieldError(msgspec.Struct, frozen=True):
    """One bad field: its dotted path (``customer.address.region``) and what is wrong."""

    field: str
    message: str


def _struct_of(tp: Any) -> type[msgspec.Struct] | None:
    """The Struct type inside ``tp`` (``S``, ``S | None``, ``Annotated[S, ...]``), if any."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp
    origin = get_origin(tp)
    if origin is Union or str(origin) in {"types.UnionType", "<class 'types.UnionType'>"}:
        for arg in get_args(tp):
            found = _struct_of(arg)
            if found is not None:
                return found
    return None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def field_errors(tp: type[msgspec.Struct], raw: Any, path: str = "") -> list[FieldError]:
    """The errors of converting ``raw`` (decoded JSON) to ``tp``, one per bad field."""
    if not isinstance(raw, dict):
        return [FieldError(path or "body", "expected a JSON object")]
    errors: list[FieldError] = []
    info = msgspec.structs.fields(tp)
    known = {f.encode_name for f in info}
    for f in info:
        where = _join(path, f.encode_name)
        if f.encode_name not in raw:
            if f.required:
                errors.append(FieldError(where, "required"))
            continue
        value = raw[f.encode_name]
        try:
            msgspec.convert(value, f.type)
        except msgspec.ValidationError as e:
            inner = _struct_of(f.type)
            if inner is not None and isinstance(value, dict):
                errors.extend(field_errors(inner, value, where))
            else:
                message = _AT.sub("", str(e))
                suffix = str(e)[len(message) :]
                sub = suffix[len(" - at `$") : -1] if suffix else ""
                errors.append(FieldError(where + sub, message))
    if tp.__struct_config__.forbid_unknown_fields:
        errors.extend(FieldError(_join(path, k), "unknown field") for k in raw if k not in known)
    return errors
