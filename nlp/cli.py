"""`kgfuse link`: link the entities of texts to a KG, from the shell.

spaCy (and through it torch) is imported only when a command links, so `kgfuse --help` and the
`kgfuse kg` commands start fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

from nlp.errors import LinkingError
from nlp.texts import read_records

if TYPE_CHECKING:  # spaCy pulls in torch: import it only when a command links
    from spacy.tokens import Doc

console = Console()


def link_command(
    text: str | None = typer.Argument(None, help="A text to link (or use --input)."),
    kg_path: Path = typer.Option(
        ..., "--kg", envvar="KGFUSE_KG", help="Compiled KG folder or triples file."
    ),
    input: Path | None = typer.Option(
        None, "--input", "-i", help="CSV, TSV, JSONL or TXT file of texts."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="JSONL file to write (with --input)."
    ),
    text_column: str = typer.Option("text", "--text-column", help="Column holding the texts."),
    threshold: float = typer.Option(
        0.55, "--threshold", min=0.0, max=1.0, help="Minimum link score."
    ),
    types: list[str] = typer.Option(
        [], "--type", help="Link only entities of this rdf:type IRI (repeat)."
    ),
    head_match: bool = typer.Option(
        False, "--head-match", help="Also link head words ('rash' -> 'skin rash')."
    ),
    pipeline: str | None = typer.Option(
        None, "--pipeline", help="A spaCy pipeline to use instead of blank English."
    ),
) -> None:
    """Link the KG entities a text mentions: one text as a table, or a file as JSONL."""
    if (text is None) == (input is None):
        raise LinkingError("give either a TEXT argument or --input FILE (not both)")
    if input is not None and output is None:
        raise LinkingError("--input needs --output FILE.jsonl for the linked records")
    import kg
    from nlp.linker import from_kg, linked_entities

    graph = kg.open_or_load(kg_path)
    base = None
    if pipeline is not None:
        import spacy

        try:
            base = spacy.load(pipeline)
        except OSError as e:
            raise LinkingError(
                f"cannot load the spaCy pipeline {pipeline!r}: it is not installed or not a folder"
            ) from e
    nlp = from_kg(graph, nlp=base, threshold=threshold, types=types, head_match=head_match)
    if text is not None:
        doc = nlp(text)
        table = Table(
            "text",
            "start",
            "end",
            "label",
            "IRI",
            "score",
            title=f"{len(doc._.kg_entities)} linked",
        )
        for span in doc._.kg_entities:
            label = graph.label(graph.entity_id(span.kb_id_))
            table.add_row(
                span.text,
                str(span.start_char),
                str(span.end_char),
                label,
                span.kb_id_,
                f"{span._.kg_candidates[0][1]:.3f}",
            )
        console.print(table)
        return
    assert input is not None and output is not None
    rows = read_records(input, required=(text_column,))
    texts = [r[text_column] for r in rows]
    docs: Iterable[Doc] = nlp.pipe(texts, batch_size=256)
    if sys.stderr.isatty():
        docs = track(
            docs,
            total=len(texts),
            description="linking",
            console=Console(stderr=True),
            transient=True,
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    linked = 0
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for row, doc in zip(rows, docs, strict=True):
                entities = linked_entities(doc)
                linked += bool(entities)
                f.write(json.dumps({**row, "entities": entities}, ensure_ascii=False) + "\n")
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    console.print(
        f"linked {linked:,} of {len(rows):,} texts ({linked / len(rows):.1%}) -> {output}"
    )
