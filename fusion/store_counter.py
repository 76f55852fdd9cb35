"""The counter features of fusion/counter.py, counted over a triple store.

`LabelCounter` counts on the CSR arrays of a compiled KG; `StoreLabelCounter` gives the same
numbers for a `StoreGraph` by asking the store for the edges it needs: the linked entities',
their neighbours' (within the degree caps) and which label nodes the entities reached touch.
Layout, masking and caps are those of fusion/counter.py; its docstring is the definition.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import numpy as np

from fusion.counter import DEFAULT_MAX_DEGREE, DEFAULT_PATH_MAX_DEGREE, check_settings
from kg.graph import Triple
from kg.store_graph import StoreGraph

LABEL_CACHE = 200_000  # entities whose label-node links stay cached


class StoreLabelCounter:
    """`LabelCounter` for a graph read from a triple store (same arguments, same features)."""

    def __init__(
        self,
        graph: StoreGraph,
        label_nodes: Sequence[int],
        max_degree: int | None = DEFAULT_MAX_DEGREE,
        by_relation: bool = False,
        path_max_degree: int | None = DEFAULT_PATH_MAX_DEGREE,
    ):
        self.label_nodes = [int(e) for e in label_nodes]
        check_settings(self.label_nodes, max_degree)
        self.graph = graph
        self._is_label = set(self.label_nodes)
        self._position = {e: j for j, e in enumerate(self.label_nodes)}  # label node -> class
        self.num_labels = len(self.label_nodes)
        self.max_degree = max_degree
        self.by_relation = by_relation
        self.path_max_degree = path_max_degree
        self._labels_of: dict[int, tuple[int, ...]] = {}  # as the store has them
        # `without`: the CSR entries ((relation, neighbour) per entity) counted as absent
        self._removed: dict[int, set[tuple[int, int]]] = {}

    @property
    def dims(self) -> int:
        extra = self.graph.num_relations * self.num_labels if self.by_relation else 0
        return 2 * self.num_labels + extra

    def without(self, triples: Iterable[Triple]) -> StoreLabelCounter:
        """This counter as if the store lacked ``triples`` (`LabelCounter.without`); the store
        is not changed."""
        R = self.graph.num_relations
        removed: dict[int, set[tuple[int, int]]] = {}
        for t in triples:
            removed.setdefault(t.subject, set()).add((t.relation, t.object))
            removed.setdefault(t.object, set()).add((t.relation + R, t.subject))
        if not removed:
            return self
        out = copy.copy(self)
        out._removed = removed
        return out

    def _rows(self, entities: Sequence[int]) -> dict[int, list[tuple[int, int]]]:
        rows = self.graph.edge_entries(entities)
        for e in set(rows) & set(self._removed):
            rows[e] = [x for x in rows[e] if x not in self._removed[e]]
        return rows

    def _label_positions(self, entities: Iterable[int]) -> dict[int, tuple[int, ...]]:
        """Positions of the label nodes each entity shares a triple with."""
        out = self._stored_label_positions(entities)
        touched = sorted(set(out) & set(self._removed))
        if touched:  # recount those from their remaining edges
            for e, row in self._rows(touched).items():
                out[e] = tuple(sorted({self._position[n] for _, n in row if n in self._position}))
        return out

    def _stored_label_positions(self, entities: Iterable[int]) -> dict[int, tuple[int, ...]]:
        wanted = list(dict.fromkeys(entities))
        missing = [e for e in wanted if e not in self._labels_of]
        if missing:
            if len(self._labels_of) + len(missing) > LABEL_CACHE:
                self._labels_of.clear()
            links = self.graph.links_to(missing, self.label_nodes)
            for e in missing:
                self._labels_of[e] = tuple(sorted(self._position[t] for t in links[e]))
        return {e: self._labels_of[e] for e in wanted}

    def _capped(self, nodes: Iterable[int], cap: int | None) -> list[int]:
        nodes = list(nodes)
        if cap is None or not nodes:
            return nodes
        degrees = self.graph.degrees_of(nodes).tolist()
        gone = [len(self._removed.get(n, ())) for n in nodes]
        return [n for n, d, g in zip(nodes, degrees, gone, strict=True) if d - g <= cap]

    def counts(self, linked: Sequence[int], masked: Iterable[int] | None = None) -> np.ndarray:
        """int64 [2, num_labels]: direct and two-hop counts (fusion/counter.py)."""
        ids = sorted({int(e) for e in linked})
        hidden = {int(e) for e in masked or ()}
        out = np.zeros((2, self.num_labels), dtype=np.int64)
        direct = [e for e in ids if e not in hidden]
        for positions in self._label_positions(direct).values():
            for j in positions:
                out[0, j] += 1
        rows = self._rows(ids)
        shared = {n for e in ids for _, n in rows[e]} - self._is_label
        shared_rows = self._rows(self._capped(sorted(shared), self.max_degree))
        far = {k for entries in shared_rows.values() for _, k in entries}
        far -= self._is_label | set(ids) | hidden
        for positions in self._label_positions(sorted(far)).values():
            for j in positions:
                out[1, j] += 1
        return out

    def paths_by_relation(self, linked: Sequence[int], hidden: set[int]) -> np.ndarray:
        """int64 [num_relations, num_labels]: label-node paths by first-hop relation."""
        out = np.zeros((self.graph.num_relations, self.num_labels), dtype=np.int64)
        ids = sorted({int(e) for e in linked})
        rows = self._rows(ids)
        R = self.graph.num_relations
        for e in ids:
            first = [(r % R, n) for r, n in rows[e] if n not in self._is_label and n != e]
            keep = set(self._capped(sorted({n for _, n in first}), self.path_max_degree))
            first = [(r, n) for r, n in first if n in keep]
            beyond = self._rows(sorted(keep))
            ends = [(r, n) for r, n in first] + [(r, k) for r, n in first for _, k in beyond[n]]
            ends = [
                (r, k) for r, k in ends if k not in self._is_label and k != e and k not in hidden
            ]
            positions = self._label_positions(k for _, k in ends)
            for r, k in ends:
                for j in positions[k]:
                    out[r, j] += 1
        return out

    def features(self, linked: Sequence[int], masked: Iterable[int] | None = None) -> np.ndarray:
        """float32 [dims]: ``log1p`` of the counts, laid out as `LabelCounter.features`."""
        hidden = {int(e) for e in masked or ()}
        parts = [self.counts(linked, hidden).reshape(-1)]
        if self.by_relation:
            parts.append(self.paths_by_relation(linked, hidden).reshape(-1))
        return np.log1p(np.concatenate(parts)).astype(np.float32)
