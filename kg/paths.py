"""Top-k simple paths between two entities, each hop a real triple of the graph.

The search runs on a small extracted subgraph (every path of at most ``max_hops`` hops lies
within ``ceil(max_hops / 2)`` hops of one of its ends) with networkx's Yen enumeration of simple
paths on its undirected projection. Paths rank by their number of hops, then by how specific
their intermediate nodes are: ``cost = hops + 0.1 * sum(log(1 + degree))`` over intermediate
nodes, so "A -> rare X -> B" beats "A -> hub -> B". ``score = exp(-cost)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from kg.graph_path import GraphPath
from kg.protocol import check_count

if TYPE_CHECKING:
    from kg.protocol import Graph
    from kg.subgraph import Subgraph

HUB_WEIGHT = 0.1


def top_k_paths(
    graph: Graph,
    source: int,
    target: int,
    k: int = 5,
    max_hops: int = 3,
    max_nodes: int = 2000,
) -> list[GraphPath]:
    """Up to ``k`` best simple paths from ``source`` to ``target``, of at most ``max_hops``
    hops, on any backend (ties broken by IRI, so both backends list the same paths)."""
    check_path_query(k, max_hops)
    if source == target:
        return []
    sub = graph.subgraph([source, target], hops=math.ceil(max_hops / 2), max_nodes=max_nodes)

    def degrees_of(nodes: list[int]) -> dict[int, int]:
        return dict(zip(nodes, graph.degrees_of(nodes).tolist(), strict=True))

    return rank_paths(sub, source, target, k, max_hops, degrees_of, graph.iri)


def check_path_query(k: int, max_hops: int) -> None:
    """Refuse ``k`` or ``max_hops`` below 1 (`ValueError`) or not an int (`TypeError`)."""
    check_count("k", k, 1)
    check_count("max_hops", max_hops, 1)


def rank_paths(
    sub: Subgraph,
    source: int,
    target: int,
    k: int,
    max_hops: int,
    degrees_of: Callable[[list[int]], Mapping[int, int] | np.ndarray],
    iri: Callable[[int], str] | None = None,
) -> list[GraphPath]:
    """The ``k`` best simple paths between two distinct nodes of ``sub`` (ids as in its
    triples). ``degrees_of(nodes)`` gives the whole graph's degree of each node, indexable by
    node id; it is asked once, for the nodes the paths may cross. Equal scores are ordered by
    the entities' ``iri`` (default: by id, for a graph whose ids follow its IRIs)."""
    import networkx as nx

    g = nx.Graph()
    for t in sub.triples():
        if t.subject == t.object:
            continue
        edge = g.get_edge_data(t.subject, t.object)
        if edge is None:
            g.add_edge(t.subject, t.object, triples=[t])
        else:
            edge["triples"].append(t)
    if source not in g or target not in g:
        return []
    degrees = degrees_of(list(g.nodes))
    found: list[GraphPath] = []
    try:
        for node_path in nx.shortest_simple_paths(g, source, target):
            if len(node_path) - 1 > max_hops or len(found) >= 4 * k:
                break
            hub = sum(math.log1p(int(degrees[n])) for n in node_path[1:-1])
            cost = len(node_path) - 1 + HUB_WEIGHT * hub
            choices = [g.edges[a, b]["triples"] for a, b in itertools.pairwise(node_path)]
            for combo in itertools.islice(itertools.product(*choices), k):
                found.append(GraphPath(tuple(node_path), tuple(combo), math.exp(-cost)))
    except nx.NetworkXNoPath:
        return []
    name: Callable[[int], Any] = iri if iri is not None else int
    found.sort(
        key=lambda p: (
            -p.score,
            [name(e) for e in p.entities],
            [(name(t.subject), t.relation, name(t.object)) for t in p.triples],
        )
    )
    return found[:k]
