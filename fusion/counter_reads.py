"""How `fusion.counter.LabelCounter` reads a graph: three batched questions, answered by the
`Graph` protocol, by a graph's in-memory arrays (the same answers, vectorised), or as if some
triples were gone.

Every reader answers, for an int64 array of entity ids (repeats allowed, answered in order):

- ``edges(entities)``: each entity's adjacency entries ``(relation, neighbour)`` as
  `Graph.edge_entries` gives them (an incoming edge has relation ``r + num_relations``), as
  ``lengths [k], neighbours [total], relations [total]``;
- ``degrees(entities)``: int64 [k], what `Graph.degrees_of` gives (entries per row);
- ``labels(entities)``: the positions (in ``label_nodes``) of the label nodes each entity has a
  triple with, sorted, as ``lengths [k], positions [total]``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from kg.graph import csr_entries
from kg.protocol import Graph

LABEL_MEMO = 200_000  # entities whose label-node links a `ProtocolReader` keeps

Rows = tuple[np.ndarray, np.ndarray]  # lengths [k], values [total]


class EdgeReader(Protocol):
    def edges(self, entities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
    def neighbours(self, entities: np.ndarray) -> Rows: ...
    def degrees(self, entities: np.ndarray) -> np.ndarray: ...
    def labels(self, entities: np.ndarray) -> Rows: ...


class ArrayReader:
    """Slices of a whole adjacency held in memory (a `Graph.compiled`'s CSR, or the few
    triples of `LabelCounter.only`); the entity -> label-node links are precomputed as a CSR.

    Shapes: indptr [N + 1]; neighbors, relations [nnz]; label_nodes [C].
    """

    def __init__(
        self,
        indptr: np.ndarray,
        neighbors: np.ndarray,
        relations: np.ndarray,
        label_nodes: np.ndarray,
    ):
        self.indptr, self.neighbors, self.relations = indptr, neighbors, relations
        self.label_indptr, self.label_positions = _entity_label_csr(indptr, neighbors, label_nodes)

    def edges(self, entities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lengths, idx = _slices(self.indptr, entities)
        return lengths, self.neighbors[idx].astype(np.int64), self.relations[idx].astype(np.int64)

    def neighbours(self, entities: np.ndarray) -> Rows:
        """`edges` without the relations (the two-hop counts do not read them)."""
        lengths, idx = _slices(self.indptr, entities)
        return lengths, self.neighbors[idx].astype(np.int64)

    def degrees(self, entities: np.ndarray) -> np.ndarray:
        return (self.indptr[entities + 1] - self.indptr[entities]).astype(np.int64)

    def labels(self, entities: np.ndarray) -> Rows:
        lengths, idx = _slices(self.label_indptr, entities)
        return lengths, self.label_positions[idx]


class ProtocolReader:
    """The `Graph` protocol's batched calls: one request each over a triple store. The label
    links (`Graph.links_to`) of up to ``LABEL_MEMO`` entities are kept."""

    def __init__(self, graph: Graph, label_nodes: np.ndarray):
        self.graph = graph
        self.label_nodes = label_nodes.tolist()
        self.position = {e: j for j, e in enumerate(self.label_nodes)}
        self._labels_of: dict[int, tuple[int, ...]] = {}

    def edges(self, entities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        wanted = entities.tolist()
        rows = self.graph.edge_entries(list(dict.fromkeys(wanted))) if wanted else {}
        flat = [entry for e in wanted for entry in rows[e]]
        lengths = np.fromiter((len(rows[e]) for e in wanted), dtype=np.int64, count=len(wanted))
        pairs = np.asarray(flat, dtype=np.int64).reshape(-1, 2)
        return lengths, pairs[:, 1].copy(), pairs[:, 0].copy()

    def neighbours(self, entities: np.ndarray) -> Rows:
        lengths, nodes, _ = self.edges(entities)
        return lengths, nodes

    def degrees(self, entities: np.ndarray) -> np.ndarray:
        if not len(entities):
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self.graph.degrees_of(entities.tolist()), dtype=np.int64)

    def labels(self, entities: np.ndarray) -> Rows:
        wanted = entities.tolist()
        # read into a local dict: another thread (the API serves several) may clear the memo
        found = {e: self._labels_of.get(e) for e in dict.fromkeys(wanted)}
        missing = [e for e, positions in found.items() if positions is None]
        if missing:
            links = self.graph.links_to(missing, self.label_nodes)
            if len(self._labels_of) + len(missing) > LABEL_MEMO:
                self._labels_of.clear()
            for e in missing:
                found[e] = self._labels_of[e] = tuple(sorted(self.position[t] for t in links[e]))
        return _flatten([found[e] or () for e in wanted])


class Without:
    """Another reader's answers without some adjacency entries (`LabelCounter.without`).

    Args:
        base: the reader whose answers are filtered.
        removed: ``{entity: {(relation, neighbour)}}``, both entries of each removed triple;
            entries the base lacks are ignored.
        label_nodes: [C], to recount the label links of the entities that lost an edge.
    """

    def __init__(
        self, base: EdgeReader, removed: dict[int, set[tuple[int, int]]], label_nodes: np.ndarray
    ):
        self.base = base
        self.removed = removed
        touched = np.fromiter(removed, dtype=np.int64, count=len(removed))
        self._touched = np.zeros(int(touched.max()) + 1, dtype=bool)
        self._touched[touched] = True
        self.position = {int(e): j for j, e in enumerate(label_nodes.tolist())}
        self._kept: dict[int, np.ndarray] = {}  # touched entity -> which base entries stay
        self._labels_left: dict[int, tuple[int, ...]] = {}  # touched entity -> label positions

    def edges(self, entities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lengths, nodes, relations = self.base.edges(entities)
        hit = self._hits(entities)
        if not len(hit):
            return lengths, nodes, relations
        keep = np.ones(len(nodes), dtype=bool)
        starts = np.cumsum(lengths) - lengths
        for i in hit.tolist():
            lo = int(starts[i])
            keep[lo : lo + int(lengths[i])] = self._kept_of(int(entities[i]))
        owner = np.repeat(np.arange(len(entities)), lengths)
        return np.bincount(owner[keep], minlength=len(entities)), nodes[keep], relations[keep]

    def neighbours(self, entities: np.ndarray) -> Rows:
        lengths, nodes, _ = self.edges(entities)
        return lengths, nodes

    def degrees(self, entities: np.ndarray) -> np.ndarray:
        out = self.base.degrees(entities).copy()
        for i in self._hits(entities).tolist():
            out[i] -= int((~self._kept_of(int(entities[i]))).sum())
        return out

    def labels(self, entities: np.ndarray) -> Rows:
        lengths, positions = self.base.labels(entities)
        hit = self._hits(entities)
        if not len(hit):
            return lengths, positions
        owner = np.repeat(np.arange(len(entities)), lengths)
        is_hit = np.zeros(len(entities), dtype=bool)
        is_hit[hit] = True
        stays = ~is_hit[owner]
        new = [self._labels_of(int(e)) for e in entities[hit].tolist()]
        lengths = lengths.copy()
        lengths[hit] = [len(p) for p in new]
        owner = np.concatenate([owner[stays], np.repeat(hit, lengths[hit])])
        values = np.concatenate(
            [positions[stays], np.fromiter((j for p in new for j in p), np.int64)]
        )
        return lengths, values[np.argsort(owner, kind="stable")]

    def _hits(self, entities: np.ndarray) -> np.ndarray:
        """Positions in ``entities`` of those that lost an entry."""
        inside = entities < len(self._touched)
        return np.flatnonzero(inside & self._touched[np.where(inside, entities, 0)])

    def _kept_of(self, entity: int) -> np.ndarray:
        """bool [the base's entries of ``entity``]: those not removed."""
        kept = self._kept.get(entity)
        if kept is None:
            _, nodes, relations = self.base.edges(np.array([entity], dtype=np.int64))
            gone = self.removed[entity]
            pairs = zip(relations.tolist(), nodes.tolist(), strict=True)
            kept = self._kept[entity] = np.array([p not in gone for p in pairs], dtype=bool)
        return kept

    def _labels_of(self, entity: int) -> tuple[int, ...]:
        """The label positions of ``entity``, from the edges it has left."""
        found = self._labels_left.get(entity)
        if found is None:
            _, nodes, _ = self.base.edges(np.array([entity], dtype=np.int64))
            left = nodes[self._kept_of(entity)].tolist()
            found = tuple(sorted({self.position[n] for n in left if n in self.position}))
            self._labels_left[entity] = found
        return found


def _slices(indptr: np.ndarray, rows: np.ndarray) -> Rows:
    """The lengths of CSR ``rows`` and the positions of their entries, concatenated."""
    starts, ends = indptr[rows], indptr[rows + 1]
    return ends - starts, csr_entries(starts, ends)[1]


def _flatten(rows: list[tuple[int, ...]]) -> Rows:
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    values = np.fromiter((v for r in rows for v in r), dtype=np.int64, count=int(lengths.sum()))
    return lengths, values


def _entity_label_csr(
    indptr: np.ndarray, neighbors: np.ndarray, label_nodes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Which label nodes each entity has a triple with (either direction), as a CSR.

    Shapes:
        indptr, neighbors: an adjacency; label_nodes: [C];
        return: indptr int64 [num_entities + 1], label positions int64 [nnz].
    """
    num_entities = len(indptr) - 1
    lens, idx = _slices(indptr, label_nodes)
    owner = np.repeat(np.arange(len(label_nodes), dtype=np.int64), lens)
    entity = neighbors[idx].astype(np.int64)
    pairs = np.unique(entity * len(label_nodes) + owner)  # sorted by entity, one per pair
    entity, position = np.divmod(pairs, len(label_nodes))
    out = np.zeros(num_entities + 1, dtype=np.int64)
    np.cumsum(np.bincount(entity, minlength=num_entities), out=out[1:])
    return out, position
