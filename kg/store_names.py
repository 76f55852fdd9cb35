"""A triple store's names and facts as small compiled graphs, picked as `GraphBuilder` picks
them from triples files: `names_graph` (every named entity, what the linker indexes:
`StoreGraph.names_graph`) and `describe` (a few entities' names, descriptions and types, what a
model reads of the nodes of a subgraph)."""

from __future__ import annotations

from collections.abc import Sequence

from kg import vocab
from kg.compile import GraphBuilder
from kg.errors import KGStoreError
from kg.graph import KnowledgeGraph
from kg.triplestore import TripleStore


def names_graph(store: TripleStore, page_size: int = 10_000) -> KnowledgeGraph:
    """A compiled KG of the store's names: each entity's display label (as the label), its
    other names (as aliases) and its types. Nothing else: no edges, no descriptions."""
    config = store.config
    builder = GraphBuilder(config)
    label_p = config.label_predicates[0]
    alias_p = config.alias_predicates[0] if config.alias_predicates else label_p
    for iri, label, aliases in store.labels(page_size):
        builder.add_literal(iri, label_p, label, None, vocab.XSD_STRING)
        for alias in aliases[1:]:
            builder.add_literal(iri, alias_p, alias, None, vocab.XSD_STRING)
    typed = list(store.types(page_size))
    if typed and config.type_predicates:
        p = config.type_predicates[0]
        builder.add_edges([s for s, _ in typed], [p] * len(typed), [t for _, t in typed])
    if builder.statements == 0:
        raise KGStoreError(
            f"the store {store.source} holds no labelled entity (predicates "
            f"{', '.join(config.label_predicates)}); a linker needs names to link to"
        )
    return builder.build(sources=[store.source])


def describe(store: TripleStore, iris: Sequence[str]) -> KnowledgeGraph:
    """A compiled KG of ``iris`` alone: their labels, aliases, descriptions and types, no
    edges, from one `TripleStore.facts` request (per batch; none for what is cached)."""
    builder = GraphBuilder(store.config)
    nodes = list(dict.fromkeys(iris))
    types: list[tuple[str, str, str]] = []
    for iri, found in store.facts(nodes).items():
        builder.entity(iri)
        for f in found:
            if f.datatype:
                builder.add_literal(iri, f.predicate, f.value, f.lang, f.datatype)
            else:
                types.append((iri, f.predicate, f.value))
    if types:
        builder.add_edges(*map(list, zip(*types, strict=True)))
    return builder.build(sources=[store.source])
