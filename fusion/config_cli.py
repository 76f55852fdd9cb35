"""`kgfuse config`: what a training config may hold, from the models that validate it.

kgfuse config keys                      # key, type, default, meaning
kgfuse config keys --readme README.md   # rewrite the README's table between its markers
kgfuse config schema -o config.schema.json
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fusion.config_keys import key_rows, keys_markdown, schema
from kg.files import marked_block, rewrite_marked_block, write_text

BEGIN, END = "<!-- config:begin -->", "<!-- config:end -->"

app = typer.Typer(
    help="Training configs: every key with its type, default and meaning.", no_args_is_help=True
)


def readme_with_table(text: str) -> str:
    """``text`` (a README) with the block between `BEGIN` and `END` replaced by the key table."""
    return marked_block(text, BEGIN, END, keys_markdown(), "the README")


@app.command("keys")
def keys_command(
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table."),
    readme: Path = typer.Option(
        None, "--readme", help="Rewrite this README's table between its config markers."
    ),
) -> None:
    """Every key of a training config (as `key=value` overrides name it)."""
    if readme is not None:
        rewrite_marked_block(readme, BEGIN, END, keys_markdown())
        return
    if markdown:
        typer.echo(keys_markdown(), nl=False)
        return
    table = Table("key", "type", "default", "meaning", show_lines=False)
    for row in key_rows():
        table.add_row(*(escape(cell) for cell in row))
    Console(soft_wrap=False).print(table)


@app.command("schema")
def schema_command(
    output: Path = typer.Option(None, "--output", "-o", help="Write it here, not to stdout."),
) -> None:
    """The JSON Schema of a training config (for editors and other tools)."""
    text = json.dumps(schema(), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text(output, text)
