"""The serve settings in words: ``kgfuse serve --help``'s text and the README's table, both read
from the fields of api/settings.py and api/ray_settings.py.

Rewrite the README's table after changing a field: ``python -m api.settings_docs README.md``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from api.ray_settings import RayOptions
from api.settings import ApiKeys, ServeSettings, option_of
from kg.errors import KGFuseError
from kg.files import marked_block, rewrite_marked_block
from nlp.linker_settings import field_help

BEGIN, END = "<!-- serve-settings:begin -->", "<!-- serve-settings:end -->"


def help_text(name: str, cls: type = ServeSettings) -> str:
    """The description of ``cls``'s field ``name`` as a sentence: ``kgfuse serve --help``."""
    return field_help(cls, name)


def _default_text(value: Any) -> str:
    if value is None or value == ():
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def settings_markdown() -> str:
    """The README's table of serve settings (between its `BEGIN` and `END` markers)."""
    lines = ["| `kgfuse serve` option | default | meaning |", "| --- | --- | --- |"]
    for defaults, after in ((ServeSettings(bundle=Path(".")), ""), (RayOptions(), " (`--ray`)")):
        cls = type(defaults)
        for f in dataclasses.fields(cls):
            option = option_of(cls, f.name)
            if option.startswith("--"):
                default = _default_text(getattr(defaults, f.name))
                lines.append(f"| `{option}`{after} | {default} | {help_text(f.name, cls)} |")
    for name in ("read", "admin"):
        lines.append(
            f"| `{option_of(ApiKeys, name)}` (environment) | none | {help_text(name, ApiKeys)} |"
        )
    return "\n".join(lines) + "\n"


def readme_with_settings(text: str) -> str:
    """``text`` (a README) with the block between `BEGIN` and `END` replaced by the table."""
    return marked_block(text, BEGIN, END, settings_markdown(), "the README")


def main(args: list[str]) -> int:
    """``python -m api.settings_docs [README]``: rewrite README's serve-settings table."""
    if args[:1] in (["-h"], ["--help"]) or len(args) > 1:
        print("usage: python -m api.settings_docs [README.md]: rewrites its serve-settings table")
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    try:
        rewrite_marked_block(
            Path(args[0] if args else "README.md"), BEGIN, END, settings_markdown()
        )
    except KGFuseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
