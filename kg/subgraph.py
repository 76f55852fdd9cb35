"""k-hop subgraphs around seed entities, capped in size, and their export to networkx and PyG.

Relevance rule (what survives the node cap), applied hop by hop:
1. every seed is kept, even beyond the cap; the cap limits what is added around them;
2. nodes one hop closer to the seeds come before nodes further away;
3. within a hop, a node joined to more nodes of the previous hop comes first (it connects
   them: a symptom shared by two linked diseases beats one that touches only one);
4. then the node with the lower degree (a specific neighbour says more than a hub);
5. then the lower IRI, so the result is deterministic and the same on every backend (a
   compiled graph's ids follow its IRIs, so there it is the lower id).

`k_hop_subgraph` is the rule over any `Graph` (one batched `edge_entries` and one
`degrees_of` request per hop, then one `triples_among` the nodes kept: what a triple store
needs); `compiled_k_hop_subgraph` is the same rule vectorised over a compiled
graph's CSR arrays, `KnowledgeGraph.subgraph`'s fast path (tests/test_graph_parity.py shows the
two equal).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kg.csr import csr_entries
from kg.errors import EntityNotFoundError
from kg.protocol import Graph, check_count
from kg.values import Triple

if TYPE_CHECKING:
    import networkx as nx
    from torch_geometric.data import Data

    from kg.graph import KnowledgeGraph


@dataclass(eq=False)
class Subgraph:
    """Nodes and triples extracted from a graph around some seeds.

    Attributes:
        nodes: global entity ids [num_nodes]; the seeds first, in the order given.
        hop: distance of each node to the nearest seed [num_nodes].
        num_seeds: how many leading entries of ``nodes`` are seeds.
        edge_index: local (subject, object) positions of each triple [2, num_edges].
        edge_type: relation id of each triple [num_edges] (forward relations only).
    """

    kg: Graph
    nodes: np.ndarray
    hop: np.ndarray
    num_seeds: int
    edge_index: np.ndarray
    edge_type: np.ndarray

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    @property
    def num_edges(self) -> int:
        return self.edge_index.shape[1]

    def triples(self) -> list[Triple]:
        """The subgraph's triples with global entity ids."""
        s, o = self.nodes[self.edge_index[0]], self.nodes[self.edge_index[1]]
        return [
            Triple(*t) for t in zip(s.tolist(), self.edge_type.tolist(), o.tolist(), strict=True)
        ]

    def to_networkx(self) -> nx.MultiDiGraph:
        """A MultiDiGraph on global ids; nodes carry iri/label/hop/seed, edges relation/label."""
        import networkx as nx

        g = nx.MultiDiGraph()
        for pos, (e, h) in enumerate(zip(self.nodes.tolist(), self.hop.tolist(), strict=True)):
            g.add_node(
                e, iri=self.kg.iri(e), label=self.kg.label(e), hop=h, seed=pos < self.num_seeds
            )
        for s, r, o in self.triples():
            g.add_edge(
                s,
                o,
                key=r,
                relation=r,
                iri=self.kg.relation_iri(r),
                label=self.kg.relation_label(r),
            )
        return g

    def to_pyg(self, add_inverse: bool = True) -> Data:
        """A `torch_geometric.data.Data` with local ``edge_index`` and ``edge_type``.

        With ``add_inverse`` every triple also appears reversed with relation ``r + num_relations``,
        so a relational GNN passes messages both ways; ``data.num_relations`` is then ``2 R``.
        ``data.n_id`` maps local nodes back to global entity ids.
        """
        import torch
        from torch_geometric.data import Data

        edge_index = torch.as_tensor(self.edge_index, dtype=torch.long)
        edge_type = torch.as_tensor(self.edge_type, dtype=torch.long)
        R = self.kg.num_relations
        if add_inverse:
            edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)
            edge_type = torch.cat([edge_type, edge_type + R])
        data = Data(edge_index=edge_index, edge_type=edge_type, num_nodes=self.num_nodes)
        data.n_id = torch.as_tensor(self.nodes, dtype=torch.long)
        data.hop = torch.as_tensor(self.hop, dtype=torch.long)
        data.seed_mask = data.hop == 0
        data.num_relations = 2 * R if add_inverse else R
        return data

    def __repr__(self) -> str:
        return f"Subgraph(nodes={self.num_nodes}, edges={self.num_edges}, seeds={self.num_seeds})"


def _gather_rows(kg: KnowledgeGraph, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR entries of ``rows``: (owner position in ``rows``, relation, neighbour)."""
    owner, idx = csr_entries(kg.indptr[rows], kg.indptr[rows + 1])
    return owner, kg.edge_relations[idx].astype(np.int64), kg.neighbors[idx].astype(np.int64)


def _sorted_unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values ascending, how often each occurs) of a non-empty int array, by one sort:
    numpy 2's hashing ``np.unique`` took 19 ms on a 16k-edge hub's row where this takes 2."""
    ordered = np.sort(values)
    first = np.empty(len(ordered), dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    return ordered[starts], np.diff(np.append(starts, len(ordered)))


def seed_ids(seeds: Iterable[int]) -> list[int]:
    """``seeds`` as ints; a name given where an entity id belongs is a `TypeError` with the fix.

    Raises:
        TypeError: ``seeds`` is a string, or holds something that is not an integer id.
    """
    if isinstance(seeds, str | bytes):
        raise TypeError(f"seeds are entity ids, not a string: pass [graph.resolve({seeds!r})]")
    if not isinstance(seeds, Iterable):
        raise TypeError(f"seeds are a list of entity ids, not one {seeds!r}: pass [{seeds!r}]")
    out = []
    for s in seeds:
        try:
            out.append(operator.index(s))  # an int, numpy or 0-d torch integer
        except TypeError:
            raise TypeError(
                f"seed {s!r} is not an entity id (an int); turn an IRI or label into one with "
                "graph.resolve(name)"
            ) from None
    return out


def _unique_seeds(kg: Graph, seeds: Iterable[int]) -> np.ndarray:
    out: list[int] = []
    for s in seed_ids(seeds):
        if not 0 <= s < kg.num_entities:
            raise EntityNotFoundError(
                f"seed {s} is not an entity id (the KG has {kg.num_entities})"
            )
        if s not in out:
            out.append(s)
    return np.asarray(out, dtype=np.int64)


def _check_size(hops: int, max_nodes: int) -> None:
    """Refuse a hop count below 0 or a node cap below 1 (`ValueError`), or one that is not an
    int (`TypeError`)."""
    check_count("hops", hops, 0)
    check_count("max_nodes", max_nodes, 1)


def k_hop_subgraph(
    graph: Graph, seeds: Iterable[int], hops: int = 2, max_nodes: int = 128
) -> Subgraph:
    """The nodes within ``hops`` of ``seeds`` (at most ``max_nodes`` besides the seeds' own
    count, chosen by the module's relevance rule) and every triple among them."""
    _check_size(hops, max_nodes)
    nodes: list[int] = _unique_seeds(graph, seeds).tolist()
    hop_of = [0] * len(nodes)
    chosen = set(nodes)
    frontier, room = nodes, max(max_nodes - len(nodes), 0)
    for h in range(1, hops + 1):
        if room == 0 or not frontier:
            break
        rows = graph.edge_entries(frontier)
        votes: dict[int, int] = {}  # one vote per (frontier node, neighbour) pair
        for e in frontier:
            for n in {n for _, n in rows[e]} - chosen:
                votes[n] = votes.get(n, 0) + 1
        if not votes:
            break
        degree = dict(zip(votes, graph.degrees_of(list(votes)).tolist(), strict=True))
        ranked = sorted(votes, key=lambda n: (-votes[n], degree[n], graph.iri(n)))
        frontier = ranked[:room]
        nodes += frontier
        hop_of += [h] * len(frontier)
        chosen.update(frontier)
        room -= len(frontier)
    position = {n: i for i, n in enumerate(nodes)}
    triples = [(position[s], position[o], r) for s, r, o in graph.triples_among(nodes)]
    edges = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
    return Subgraph(
        graph,
        np.asarray(nodes, dtype=np.int64),
        np.asarray(hop_of, dtype=np.int64),
        hop_of.count(0),
        np.ascontiguousarray(edges[:, :2].T),
        np.ascontiguousarray(edges[:, 2]),
    )


def compiled_k_hop_subgraph(
    kg: KnowledgeGraph, seeds: Iterable[int], hops: int = 2, max_nodes: int = 128
) -> Subgraph:
    """`k_hop_subgraph` vectorised over a compiled graph's CSR arrays (its ids follow its
    IRIs, so the last tie-break is the id)."""
    _check_size(hops, max_nodes)
    nodes = _unique_seeds(kg, seeds)
    hop_of = [np.zeros(len(nodes), dtype=np.int64)]
    chosen = [nodes]
    frontier = nodes
    room = max(max_nodes - len(nodes), 0)
    for h in range(1, hops + 1):
        if room == 0 or len(frontier) == 0:
            break
        owner, _, nbr = _gather_rows(kg, frontier)
        if len(nbr) == 0:
            break
        # one vote per (frontier node, neighbour) pair, however many relations join them
        pairs, _ = _sorted_unique(owner * kg.num_entities + nbr)
        cand, votes = _sorted_unique(pairs % kg.num_entities)
        fresh = ~np.isin(cand, np.concatenate(chosen))
        cand, votes = cand[fresh], votes[fresh]
        if len(cand) == 0:
            break
        degrees = kg.indptr[cand + 1] - kg.indptr[cand]
        if len(cand) > room:  # keep the candidates that can rank in the top ``room`` (ties too)
            key = -votes * (1 << 34) + np.minimum(degrees, (1 << 34) - 1)
            keep = key <= np.partition(key, room - 1)[room - 1]
            cand, votes, degrees = cand[keep], votes[keep], degrees[keep]
        order = np.lexsort((cand, degrees, -votes))[:room]
        frontier = cand[order]
        chosen.append(frontier)
        hop_of.append(np.full(len(frontier), h, dtype=np.int64))
        room -= len(frontier)
    nodes = np.concatenate(chosen)
    hop = np.concatenate(hop_of)
    edge_index, edge_type = induced_triples(kg, nodes)
    return Subgraph(kg, nodes, hop, int((hop == 0).sum()), edge_index, edge_type)


def induced_triples(kg: KnowledgeGraph, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triples among ``nodes``: scan each node's outgoing entries (the front of its CSR row)
    and keep those whose object is chosen, found through a dense position table."""
    owner, idx = csr_entries(kg.indptr[nodes], kg.out_end[nodes])
    if len(idx) == 0:
        return np.empty((2, 0), dtype=np.int64), np.empty(0, dtype=np.int64)
    with kg.position_table() as position:
        position[nodes] = np.arange(len(nodes))
        local = position[kg.neighbors[idx]]
        position[nodes] = -1
    inside = local >= 0
    edge_index = np.stack([owner[inside], local[inside]]).astype(np.int64)
    return edge_index, kg.edge_relations[idx[inside]].astype(np.int64)
