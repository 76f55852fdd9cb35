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


if __name__ == "__main__":  # python -m api.settings_docs README.md
    readme = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    rewrite_marked_block(readme, BEGIN, END, settings_markdown())
