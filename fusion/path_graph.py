"""The walk subgraph of one text: every step of every walk of at most ``hops`` steps from the
text's linked entities to a label node, which is what the paths encoder (fusion/path_encoder.py)
reads.

A step ``u -r-> v`` (a CSR entry of the compiled KG: ``r`` follows a triple, ``r + R`` walks it
backwards) is kept when some walk of at most ``hops`` steps from a linked entity to a label node
uses it, that is when ``d_source(u) + 1 + d_label(v) <= hops``, where the distances are the
shortest ones through allowed inner nodes. Message passing for ``hops`` rounds over the kept
steps gives every label node exactly the state it would get on the whole KG, because a step on
no such walk cannot reach a label node in time. So there is no node cap: the subgraph holds
what the walks reach, however wide, and nothing they do not.

The walks are those `fusion.path_counts.PathCounter` counts: inner nodes are never a label node,
a linked entity or a hub (more than ``max_degree`` CSR entries); label facts of ``masked``
entities (a step between one of them and a label node) are left out, wherever they sit.

Steps are directed (along the walk), so a class's state is built from the walks that reach it.
Nodes are numbered linked entities first, then label nodes, then the rest by entity id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from fusion.examples import MAX_DISTANCE, LinkedSubgraph
from kg.csr import csr_entries
from kg.graph import KnowledgeGraph

MIN_ROUNDS = 3  # the shortest walk the paths encoder reads, whatever subgraph.hops says
DEFAULT_MAX_DEGREE = 1000  # as the label counts (fusion/path_counts.py)
DEFAULT_MAX_STEPS = 200_000  # per text; beyond it, the steps of the longest walks are dropped


def walk_length(hops: int) -> int:
    """The walk length (and Bellman-Ford rounds) of the paths encoder for ``subgraph.hops``:
    at least `MIN_ROUNDS`, so a class two relations beyond an entity's neighbour is in reach."""
    return max(hops, MIN_ROUNDS)


def build_path_subgraph(
    graph: KnowledgeGraph,
    linked: Sequence[int],
    label_nodes: Sequence[int],
    hops: int,
    masked: Iterable[int] = (),
    use_kg: bool = True,
    max_degree: int | None = DEFAULT_MAX_DEGREE,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> LinkedSubgraph:
    """The walk subgraph (module docstring) as a `LinkedSubgraph`: ``edge_index`` [2, steps]
    (from, to), ``edge_type`` the directed relation of each step (0..2R-1), ``distance`` the
    steps from the nearest linked entity (capped as in fusion/examples.py). ``use_kg=False``
    keeps the linked entities and label nodes and no step (the no-KG control)."""
    linked = list(dict.fromkeys(int(e) for e in linked))
    labels = [int(e) for e in label_nodes]
    n = graph.num_entities
    is_start = np.zeros(n, dtype=bool)
    is_start[linked] = True
    is_label = np.zeros(n, dtype=bool)
    is_label[labels] = True
    is_masked = np.zeros(n, dtype=bool)
    is_masked[list(masked)] = True
    indptr = np.asarray(graph.indptr, dtype=np.int64)
    inner = ~is_label & ~is_start
    if max_degree is not None:
        inner &= np.diff(indptr) <= max_degree
    src = dst = rel = np.empty(0, dtype=np.int64)
    if use_kg and linked and labels:
        from_source = _distances(graph, np.flatnonzero(is_start), hops, inner, is_masked, is_label)
        to_label = _distances(graph, np.flatnonzero(is_label), hops, inner, is_masked, is_label)
        # a walk leaves a linked entity or an inner node, short of the last step
        leaving = (from_source >= 0) & (from_source < hops) & (to_label >= 1) & (inner | is_start)
        src, dst, rel = _entries(graph, np.flatnonzero(leaving))
        src, dst, rel = _steps_on_walks(
            src, dst, rel, inner, is_label, is_masked, from_source, to_label, hops, max_steps
        )
    seed_ids = np.asarray(linked + [e for e in labels if e not in set(linked)], dtype=np.int64)
    others = np.setdiff1d(np.union1d(src, dst), seed_ids)
    nodes = np.concatenate([seed_ids, others])
    edge_index = np.stack([_positions(src, seed_ids, others), _positions(dst, seed_ids, others)])
    distance = np.full(len(nodes), MAX_DISTANCE + 1, dtype=np.int64)
    if use_kg and linked and labels:
        reached = np.minimum(from_source[nodes], MAX_DISTANCE + 1)
        distance = np.where(reached >= 0, reached, MAX_DISTANCE + 1)
    linked_mask = torch.zeros(len(nodes), dtype=torch.bool)
    linked_mask[: len(linked)] = True
    label_pos = torch.as_tensor(_positions(np.asarray(labels, np.int64), seed_ids, others))
    return LinkedSubgraph(
        n_id=torch.as_tensor(nodes, dtype=torch.long),
        edge_index=torch.as_tensor(edge_index, dtype=torch.long),
        edge_type=torch.as_tensor(rel, dtype=torch.long),
        linked=linked_mask,
        label_pos=label_pos,
        distance=torch.as_tensor(distance, dtype=torch.long),
        num_nodes=len(nodes),
    )


def _distances(
    graph: KnowledgeGraph,
    origins: np.ndarray,
    hops: int,
    inner: np.ndarray,
    is_masked: np.ndarray,
    is_label: np.ndarray,
) -> np.ndarray:
    """Shortest step counts (up to ``hops``; -1 when farther) from ``origins``, passing only
    through ``inner`` nodes and never over a masked label fact (a step between a masked
    entity and a label node, either way)."""
    distance = np.full(graph.num_entities, -1, dtype=np.int64)
    distance[origins] = 0
    frontier = origins
    for hop in range(1, hops + 1):
        if len(frontier) == 0:
            break
        src, nbr, _ = _entries(graph, frontier)
        fact = (is_masked[src] & is_label[nbr]) | (is_label[src] & is_masked[nbr])
        nbr = np.unique(nbr[~fact])
        nbr = nbr[distance[nbr] < 0]
        distance[nbr] = hop
        frontier = nbr[inner[nbr]]
    return distance


def _entries(graph: KnowledgeGraph, nodes: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every CSR entry of ``nodes``: (from, to, directed relation)."""
    owner, idx = csr_entries(graph.indptr[nodes], graph.indptr[nodes + 1])
    return (
        nodes[owner].astype(np.int64),
        graph.neighbors[idx].astype(np.int64),
        graph.edge_relations[idx].astype(np.int64),
    )


def _positions(ids: np.ndarray, seeds: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Local node numbers: ``seeds`` first, in their order, then ``others`` (sorted)."""
    out = len(seeds) + np.searchsorted(others, ids)
    is_seed = np.isin(ids, seeds)
    if is_seed.any():
        order = np.argsort(seeds)
        out[is_seed] = order[np.searchsorted(seeds[order], ids[is_seed])]
    return out.astype(np.int64)


def _steps_on_walks(
    src: np.ndarray,
    dst: np.ndarray,
    rel: np.ndarray,
    inner: np.ndarray,
    is_label: np.ndarray,
    is_masked: np.ndarray,
    from_source: np.ndarray,
    to_label: np.ndarray,
    hops: int,
    max_steps: int,
) -> tuple[np.ndarray, ...]:
    """Keep the steps on some short enough walk; past ``max_steps``, those of the shortest."""
    fact = is_masked[src] & is_label[dst]
    length = from_source[src] + 1 + to_label[dst]
    keep = (inner[dst] | is_label[dst]) & ~fact & (to_label[dst] >= 0) & (length <= hops)
    src, dst, rel, length = src[keep], dst[keep], rel[keep], length[keep]
    if len(src) > max_steps:
        order = np.argsort(length, kind="stable")[:max_steps]
        order.sort()
        src, dst, rel = src[order], dst[order], rel[order]
    return src, dst, rel
