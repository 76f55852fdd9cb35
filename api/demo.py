"""`kgfuse demo` / `make demo`: the embedded demo on data/demo.

Today it compiles the demo product KG and shows what the KG layer answers: its stats, a fuzzy
search, and the paths that join a product model held out of training to its support team's
category node. Training and serving join it as those layers land.
"""

from __future__ import annotations

import csv
from pathlib import Path

from rich.console import Console
from rich.table import Table

import kg
from kg.errors import KGFuseError

DEMO_DATA = Path(__file__).resolve().parents[1] / "data" / "demo"
console = Console()


def _label_map(path: Path) -> dict[str, str]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    return {label: entity for label, entity in rows[1:]}


def _first_row(path: Path) -> dict[str, str]:
    with path.open(encoding="utf-8", newline="") as f:
        return next(csv.DictReader(f))


def run_demo(workdir: str | Path, data: Path = DEMO_DATA) -> None:
    if not (data / "kg.ttl").is_file():
        raise KGFuseError(f"the demo data is missing: {data / 'kg.ttl'} not found")
    out = Path(workdir) / "kg"
    console.rule("[bold]1. compile the demo KG")
    graph = kg.load(data / "kg.ttl")
    graph.save(out)
    graph = kg.open(out)
    table = Table(title=f"{data / 'kg.ttl'} -> {out}", show_header=False)
    for key, value in graph.stats().items():
        table.add_row(key, str(value))
    console.print(table)

    example = _first_row(data / "test_unseen.csv")
    model = graph.entity_id(example["model"])
    name = graph.label(model)
    typo = name[:-2] + name[-1] if len(name) > 3 else name  # drop a letter: fuzzy search copes
    console.rule(f"[bold]2. search {typo!r}")
    hits = Table("score", "label", "IRI")
    for m in graph.search(typo, limit=5):
        hits.add_row(f"{m.score:.3f}", m.label, m.iri)
    console.print(hits)

    category = graph.entity_id(_label_map(data / "label_map.tsv")[example["label"]])
    console.rule(
        f"[bold]3. paths from {name!r} (never seen in training) to {graph.label(category)!r}"
    )
    console.print(f"message: [italic]{example['text']}[/]")
    paths = graph.paths(model, category, k=3, max_hops=3)
    for n, p in enumerate(paths, 1):
        console.print(f"  {n}. {p.text(graph)}   (score {p.score:.3f})")
    if not paths:
        console.print("  no path of at most 3 hops")
    console.print(f"\nnext: [bold]kgfuse kg path {name!r} {graph.label(category)!r} --kg {out}[/]")
