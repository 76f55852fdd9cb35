"""`kgfuse kg ...`: compile triples, and query a KG (compiled, or a triple store) from the shell."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from kg.config import KGConfig
from kg.errors import KGFuseError
from kg.graph import KnowledgeGraph
from kg.guards import ReadLimits
from kg.load import load, open_or_load
from kg.parse import PARSERS
from kg.protocol import Graph

app = typer.Typer(
    help="Compile triples files and query the compiled knowledge graph.", no_args_is_help=True
)
console = Console()

KG_OPTION = typer.Option(
    ...,
    "--kg",
    envvar="KGFUSE_KG",
    help="Compiled KG folder (or a triples file, compiled on the fly).",
)
STORE_KG_OPTION = typer.Option(
    None,
    "--kg",
    envvar="KGFUSE_KG",
    help="Compiled KG folder or triples file (or --endpoint/--store).",
)
ENDPOINT_OPTION = typer.Option(None, "--endpoint", help="Query this SPARQL endpoint instead.")
STORE_OPTION = typer.Option(None, "--store", help="Query this on-disk Oxigraph store instead.")
T = TypeVar("T")
PROGRESS_MIN_BYTES = 8 << 20  # below this a load is too quick for a bar to help


def open_kg(path: Path) -> KnowledgeGraph:
    """A compiled folder, or a triples file compiled in memory (handy for small KGs)."""
    return open_or_load(path)


def _load_with_progress(files: list[Path], **kwargs: object) -> KnowledgeGraph:
    total = sum(p.stat().st_size for p in files if p.is_file())
    if total < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        return load(files, **kwargs)  # type: ignore[arg-type]
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("parsing", total=total)
        return load(files, progress=lambda n: bar.advance(task, n), **kwargs)  # type: ignore[arg-type]


def _stats_table(kg: KnowledgeGraph, title: str) -> Table:
    table = Table(title=title, show_header=False)
    for key, value in kg.stats().items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    return table


@app.command("load")
def load_command(
    files: list[Path] = typer.Argument(
        None, help="Triples files: .ttl .nt .nq .trig .n3 .jsonld .rdf/.xml .tsv .csv (.gz too)."
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Folder to write the compiled KG to."
    ),
    backend: str = typer.Option(
        "memory",
        "--backend",
        help="memory: compile FILES to -o; oxigraph: bulk-load FILES into the on-disk --store; "
        "sparql: page every triple out of --endpoint and compile it to -o.",
    ),
    store: Path | None = typer.Option(None, "--store", help="On-disk Oxigraph store folder."),
    endpoint: str | None = typer.Option(None, "--endpoint", help="SPARQL endpoint URL."),
    page_size: int = typer.Option(
        100_000, "--page-size", min=1, help="Triples per query (sparql)."
    ),
    format: str | None = typer.Option(
        None, "--format", help="Force one format for every file (e.g. turtle, tsv)."
    ),
    parser: str = typer.Option("oxigraph", "--parser", help=f"RDF parser: {', '.join(PARSERS)}."),
    base_iri: str = typer.Option(
        KGConfig.base_iri, "--base-iri", help="Namespace for plain names in TSV/CSV files."
    ),
    label_predicate: list[str] = typer.Option(
        list(KGConfig.label_predicates),
        "--label-predicate",
        help="Predicate naming an entity (repeat; best first).",
    ),
    description_predicate: list[str] = typer.Option(
        list(KGConfig.description_predicates),
        "--description-predicate",
        help="Predicate describing an entity (repeat).",
    ),
    type_edges: bool = typer.Option(
        False, "--type-edges", help="Also keep rdf:type facts as graph edges."
    ),
    max_literal_chars: int = typer.Option(
        ReadLimits.max_literal_chars,
        "--max-literal-chars",
        min=1,
        help="Refuse a file holding a longer literal.",
    ),
    max_label_chars: int = typer.Option(
        ReadLimits.max_label_chars,
        "--max-label-chars",
        min=1,
        help="Refuse a file holding a longer label, alias or TSV/CSV name.",
    ),
) -> None:
    """Parse triples files and compile them into a KG folder (--backend memory), bulk-load them
    into an on-disk Oxigraph store (oxigraph), or compile every triple of an endpoint (sparql)."""
    config = KGConfig(
        label_predicates=tuple(label_predicate),
        description_predicates=tuple(description_predicate),
        base_iri=base_iri,
        type_edges=type_edges,
    )
    if backend == "oxigraph":
        from kg.triplestore_load import bulk_load

        count = bulk_load(_need(files, "FILES"), _need(store, "--store"), format=format)
        console.print(f"bulk-loaded {len(files)} file(s) into {store}: {count:,} quads")
        return
    if backend == "sparql":
        from kg.triplestore_load import load_endpoint

        kg = load_endpoint(_need(endpoint, "--endpoint"), config=config, page_size=page_size)
        output = _need(output, "-o")
        kg.save(output)
        console.print(_stats_table(kg, f"compiled {endpoint} -> {output}"))
        return
    if backend != "memory":
        raise typer.BadParameter(f"expected memory, oxigraph or sparql (got {backend!r})")
    files, output = _need(files, "FILES"), _need(output, "-o")
    limits = ReadLimits(max_literal_chars, max_label_chars)
    kg = _load_with_progress(files, format=format, config=config, parser=parser, limits=limits)
    kg.save(output)
    if kg.num_entities == 0:
        console.print(
            f"the KG is empty (0 triples): {', '.join(map(str, files))} hold(s) no triple; "
            f"saved the empty KG to {output}"
        )
        return
    console.print(_stats_table(kg, f"compiled {len(files)} file(s) -> {output}"))


def _open_graph(kg_path: Path | None, endpoint: str | None, store: Path | None) -> Graph:
    """The KG to query: a triple store (--endpoint, --store) or a compiled KG (--kg)."""
    if endpoint or store:
        from kg.store_graph import StoreGraph

        return StoreGraph.connect(endpoint or str(store))
    if kg_path is None:
        raise typer.BadParameter("pass --kg, --endpoint or --store")
    return open_kg(kg_path)


def _need(value: T | None, name: str) -> T:
    if not value:
        raise typer.BadParameter(f"this backend needs {name}")
    return value


@app.command("stats")
def stats_command(
    kg_path: Path = typer.Argument(..., help="Compiled KG folder or triples file."),
) -> None:
    """Counts, degrees and the fingerprint of a KG."""
    console.print(_stats_table(open_kg(kg_path), str(kg_path)))


@app.command("search")
def search_command(
    text: str = typer.Argument(..., help="A name to look for."),
    kg_path: Path = KG_OPTION,
    limit: int = typer.Option(10, "--limit", "-n", min=1, max=1000),
) -> None:
    """Find entities by label or alias (exact, case-insensitive, then fuzzy)."""
    kg = open_kg(kg_path)
    matches = kg.search(text, limit=limit)
    if not matches:
        console.print(f"no entity matches {text!r}")
        raise typer.Exit(1)
    table = Table("score", "label", "matched alias", "IRI", title=f"entities matching {text!r}")
    for m in matches:
        table.add_row(f"{m.score:.3f}", m.label, m.alias, m.iri)
    console.print(table)


@app.command("path")
def path_command(
    source: str = typer.Argument(..., help="Start entity: IRI or label."),
    target: str = typer.Argument(..., help="End entity: IRI or label."),
    kg_path: Path | None = STORE_KG_OPTION,
    k: int = typer.Option(5, "-k", "--top", min=1, max=100, help="How many paths."),
    max_hops: int = typer.Option(3, "--max-hops", min=1, max=6),
    endpoint: str | None = ENDPOINT_OPTION,
    store: Path | None = STORE_OPTION,
    json_lines: bool = typer.Option(
        False,
        "--json",
        help="Print the paths on stdout as JSON Lines, one object per path, best first, with "
        "full IRIs (for scripts).",
    ),
) -> None:
    """The top-k simple paths between two entities, each hop a triple of the KG."""
    kg = _open_graph(kg_path, endpoint, store)
    a, b = kg.resolve(source), kg.resolve(target)
    if a == b:  # else: "no path joins 'X' and 'X'", as if the KG lacked one
        raise KGFuseError(
            f"{source!r} and {target!r} are the same entity, {kg.label(a)!r} <{kg.iri(a)}>; "
            "a path joins two different entities: give another TARGET"
        )
    paths = kg.paths(a, b, k=k, max_hops=max_hops)
    if not paths:
        message = f"no path of at most {max_hops} hops joins {kg.label(a)!r} and {kg.label(b)!r}"
        (Console(stderr=True) if json_lines else console).print(message)
        raise typer.Exit(1)
    if json_lines:
        for p in paths:
            record = p.describe(kg).model_dump(exclude_none=True)
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    table = Table("#", "score", "hops", "path", title=f"{kg.label(a)} -> {kg.label(b)}")
    for n, p in enumerate(paths, 1):
        table.add_row(str(n), f"{p.score:.4f}", str(p.hops), p.text(kg))
    console.print(table)


@app.command("neighbors")
def neighbors_command(
    entity: str = typer.Argument(..., help="IRI or label."),
    kg_path: Path | None = STORE_KG_OPTION,
    limit: int = typer.Option(50, "--limit", "-n", min=1),
    endpoint: str | None = ENDPOINT_OPTION,
    store: Path | None = STORE_OPTION,
) -> None:
    """The triples that touch one entity, in both directions: with more than --limit
    neighbours, those to its --limit most relevant ones (the subgraph's rule: the less
    connected first)."""
    kg = _open_graph(kg_path, endpoint, store)
    e = kg.resolve(entity)
    # a 1-hop subgraph picks the neighbours (and fetches a store's names in one request)
    kept = set(kg.subgraph([e], hops=1, max_nodes=limit + 1).nodes.tolist())
    table = Table("subject", "relation", "object", title=f"{kg.label(e)} <{kg.iri(e)}>")
    for nb in [nb for nb in kg.neighbors_of(e) if nb.node in kept][:limit]:
        s, o = (e, nb.node) if nb.outgoing else (nb.node, e)
        table.add_row(kg.label(s), kg.relation_label(nb.relation), kg.label(o))
    console.print(table)
