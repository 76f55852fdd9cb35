"""`kgfuse split`: write a held-out-entity split of a labelled data set."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def split_command(
    data: Path = typer.Argument(..., help="Labelled texts: CSV, TSV or JSONL."),
    kg_path: Path = typer.Option(
        ..., "--kg", envvar="KGFUSE_KG", help="Compiled KG folder or triples file."
    ),
    output: Path = typer.Option(
        ...,
        "-o",
        "--output",
        help="Folder for train.csv, val.csv, test.csv, held_out.tsv, split.json.",
    ),
    fraction: float = typer.Option(
        0.25, "--fraction", min=0.0, max=1.0, help="Share of the linked entities to hold out."
    ),
    seed: int = typer.Option(0, "--seed"),
    val_fraction: float = typer.Option(0.1, "--val-fraction", min=0.0, max=1.0),
    types: list[str] = typer.Option(
        [], "--type", help="Hold out only entities of this rdf:type IRI (repeat)."
    ),
    text_column: str = typer.Option("text", "--text-column"),
    label_column: str = typer.Option("label", "--label-column"),
) -> None:
    """Hold out a seeded fraction of the linked entities: test texts mention them, train and
    val texts never do."""
    import kg
    from fusion.data import read_examples
    from fusion.split import held_out_entity_split, labels_only_in_test, write_split
    from nlp.linker import from_kg

    graph = kg.open(kg_path) if kg_path.is_dir() else kg.load(kg_path)
    examples = read_examples(data, text_column, label_column)
    nlp = from_kg(graph)
    mentions = [
        [e.kb_id_ for e in doc._.kg_entities]
        for doc in nlp.pipe([e.text for e in examples], batch_size=256)
    ]
    candidates = None
    if types:
        wanted = {graph.resolve(t) for t in types}
        candidates = {
            graph.iri(e) for e in range(graph.num_entities) if wanted & set(graph.types_of(e))
        }
    split = held_out_entity_split(examples, mentions, fraction, seed, val_fraction, candidates)
    settings = {
        "data": str(data),
        "kg": str(kg_path),
        "fraction": fraction,
        "seed": seed,
        "val_fraction": val_fraction,
        "types": types,
    }
    write_split(split, graph, output, text_column, label_column, settings)
    table = Table("split", "texts", title=f"held out {len(split.held_out)} entities -> {output}")
    for name, part in (("train", split.train), ("val", split.val), ("test", split.test)):
        table.add_row(name, f"{len(part):,}")
    console.print(table)
    missing = labels_only_in_test(split)
    if missing:
        console.print(
            f"[yellow]warning:[/] labels {missing} occur only in test; try another --seed"
        )
