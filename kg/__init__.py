"""kg: load domain triples, compile them to an integer index, and query it.

import kg
graph = kg.load(["triples.ttl", "more.tsv"])       # parse + compile
graph.save("out/kg"); graph = kg.open("out/kg")    # reload without parsing
psoriasis = graph.resolve("Psoriasis")             # IRI or label
sub = graph.subgraph([psoriasis], hops=2, max_nodes=128)
paths = graph.paths(psoriasis, graph.resolve("joint pain"), k=3)
"""

from typing import TYPE_CHECKING

from kg.config import KGConfig
from kg.errors import (
    AmbiguousEntityError,
    EntityNotFoundError,
    KGFuseError,
    KGLoadError,
    KGStoreError,
)
from kg.extend import extend, extend_triples, id_map
from kg.graph import KnowledgeGraph, Neighbor, Triple
from kg.graph import load_graph as open
from kg.graph_path import GraphPath
from kg.load import load, open_or_load
from kg.protocol import Graph
from kg.subgraph import Subgraph

if TYPE_CHECKING:
    from kg.described_path import DescribedPath


def __getattr__(name: str) -> object:
    """``kg.DescribedPath``, imported on first use (pydantic: see kg/graph_path.py)."""
    if name == "DescribedPath":
        from kg.described_path import DescribedPath

        return DescribedPath
    raise AttributeError(f"module 'kg' has no attribute {name!r}")


__all__ = [
    "AmbiguousEntityError",
    "DescribedPath",
    "EntityNotFoundError",
    "Graph",
    "GraphPath",
    "KGConfig",
    "KGFuseError",
    "KGLoadError",
    "KGStoreError",
    "KnowledgeGraph",
    "Neighbor",
    "Subgraph",
    "Triple",
    "extend",
    "extend_triples",
    "id_map",
    "load",
    "open",
    "open_or_load",
]
