"""What each key of a training config is: its JSON Schema, its type in words, its default and
its description, all read from the pydantic sections of fusion/settings.py.

``kgfuse config keys`` prints them, the README's config table is `keys_markdown`, and
fusion/config.py words its errors with `describe` (``must be a number in [0, 1)``).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from functools import cache
from typing import Any

import yaml
from pydantic import TypeAdapter

from fusion.settings import AUTO, RunConfig


@cache
def _schema() -> dict[str, Any]:
    return _one_line(TypeAdapter(RunConfig).json_schema())


def _one_line(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with each field's description on one line (a field's docstring may wrap);
    a section's own description, a class docstring, keeps its paragraphs."""
    for model in [schema, *schema.get("$defs", {}).values()]:
        for prop in model.get("properties", {}).values():
            if isinstance(prop.get("description"), str):
                prop["description"] = " ".join(prop["description"].split())
    return schema


def schema() -> dict[str, Any]:
    """The JSON Schema of a training config (``kgfuse config schema``)."""
    return _schema()


def sections() -> dict[str, type]:
    hints = typing.get_type_hints(RunConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(RunConfig) if f.name != "output"}


def field_schema(key: str) -> dict[str, Any] | None:
    """The JSON Schema of the field ``key`` (dotted), or None when there is no such field."""
    root = _schema()
    section, _, name = key.rpartition(".")
    if not section:
        prop = root["properties"].get(name)
        return None if prop is None or "$ref" in prop else prop
    ref = root["properties"].get(section, {}).get("$ref", "")
    props: dict[str, Any] = root["$defs"].get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
    return props.get(name)


def keys() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every dotted key of a training config with its JSON Schema, in file order."""
    root = _schema()
    for name, prop in root["properties"].items():
        if "$ref" not in prop:
            yield name, prop
            continue
        section = root["$defs"][prop["$ref"].rsplit("/", 1)[-1]]
        for field, sub in section["properties"].items():
            yield f"{name}.{field}", sub


def describe(prop: dict[str, Any]) -> str:
    """What a field accepts, in words: ``a number in [0, 1)``, ``one of ['mean', 'cls']``."""
    options = [p for p in prop.get("anyOf", []) if p.get("type") != "null"]
    if options:
        return f"{describe(options[0])} or {AUTO!r}"
    if "enum" in prop:
        return f"one of {prop['enum']}"
    kind = {
        "boolean": "true or false",
        "integer": "an integer",
        "number": "a number",
        "string": "a string",
        "array": "a list of strings",
        "object": "a mapping of names to strings",
    }.get(prop.get("type", ""), "a value")
    return f"{kind}{_bounds(prop)}"


def _bounds(prop: dict[str, Any]) -> str:
    low, high = prop.get("minimum"), prop.get("maximum")
    low_x, high_x = prop.get("exclusiveMinimum"), prop.get("exclusiveMaximum")
    if prop.get("type") == "integer" and low is not None and high is not None:
        return f" from {low:g} to {high:g}"
    if (low is not None or low_x is not None) and (high is not None or high_x is not None):
        left = f"[{low:g}" if low is not None else f"({low_x:g}"
        right = f"{high:g}]" if high is not None else f"{high_x:g})"
        return f" in {left}, {right}"
    for bound, words in ((low, "of {} or more"), (low_x, "above {}"), (high, "of {} or less")):
        if bound is not None:
            return " " + words.format(f"{bound:g}")
    return f" below {high_x:g}" if high_x is not None else ""


def default_text(prop: dict[str, Any]) -> str:
    """A field's default as it would be written in YAML."""
    value = prop.get("default", {"array": [], "object": {}}.get(prop.get("type", "")))
    if value is None:
        return AUTO
    if value == "":
        return '""'
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def key_rows() -> list[tuple[str, str, str, str]]:
    """``(key, type, default, description)`` of every key, from the models' fields."""
    return [(k, describe(p), default_text(p), p.get("description", "")) for k, p in keys()]


def keys_markdown() -> str:
    """The README's config table (between its ``<!-- config:begin -->`` markers)."""
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for key, kind, default, meaning in key_rows():
        cells = (f"`{key}`", kind, f"`{default}`", meaning)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
