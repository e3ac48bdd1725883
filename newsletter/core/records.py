"""Typed records read off database rows, and the plain JSON data the CLI prints of them."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    R = TypeVar("R", bound=DataclassInstance)
else:
    R = TypeVar("R")


def record_from(cls: type[R], row: object, **values: object) -> R:
    """A `cls` (a dataclass) whose fields are read off `row`'s attributes of the same name,
    except those given in `values`; a list meets a tuple field as a tuple."""
    data: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        value = values[field.name] if field.name in values else getattr(row, field.name)
        if isinstance(value, list) and str(field.type).startswith("tuple"):
            value = tuple(value)
        data[field.name] = value
    return cls(**data)


def json_ready(value: Any) -> Any:
    """`value` as JSON data: a record as a dict of its fields in their order, datetimes as
    ISO 8601 text, tuples as lists, the rest as it is."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: json_ready(getattr(value, field.name))
            for field in dataclasses.fields(value)
        }
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    return value
