"""The parameter-free "GNN is a Counter?" baseline (Wang et al., ICLR 2022) as features.

That paper found that much of what a GNN adds to a language model on KG-augmented QA can be
matched by *counting* edges around the linked entities. Here the counts are per label node:
a KG-augmented classifier should beat a text model plus these counts before it claims that its
graph encoder reasons.

For a text whose linked entities are E and label nodes L_0..L_{C-1}, two counts per label:

- direct[j]: linked entities e (not masked) with a triple to or from L_j, any relation.
- two_hop[j]: DISTINCT entities k, not linked and not a label node, joined to some linked e
  through one shared neighbour n (``e - n - k``, any relations, any directions; n not a label
  node) and having a triple with L_j: "known entities that reach L_j through one shared
  neighbour". Several paths to one k count once; a k linked to two labels counts for both.

Feature layout (float32, ``2 * C`` columns, column j and C + j belong to ``label_nodes[j]``)::

    [log1p(direct[0..C-1]), log1p(two_hop[0..C-1])]

Masking (``masked``): training examples must not read their own answer. The label facts of a
masked entity are ignored everywhere: it adds nothing to ``direct`` and, should it appear as
some k (linked under another name, or not linked at all), nothing to ``two_hop`` either.

Hub cap (``max_degree``): a shared neighbour n with more than ``max_degree`` CSR entries (its
degree, both directions) is skipped. A hub such as a class node or a generation joins nearly
everything in two hops, costs time proportional to its degree and mostly adds the class prior.
``None`` disables the cap.

Paths by relation (``by_relation=True``): also ``paths[r, j]``, the number of PATHS
``e -r- n - k`` from a linked entity e through a shared neighbour n (first hop of relation r,
either direction) to an entity k with a triple to L_j; k != e, n and k not label nodes; a
relative n itself having a triple with L_j counts as a path too. Unlike ``two_hop`` this counts
every path (an entity reached through three shared nodes counts three times: it is a closer
relative) and keeps the relation that leads there (an evolution says more than a colour).
Shared neighbours above ``path_max_degree`` are skipped. These come after the layout above:
``log1p(paths)`` flattened relation-major, ``R * C`` more columns (R: relations, not inverses).
On pokedex, logistic regression on these counts alone reaches 0.86 accuracy on unseen species,
against 0.65 for the two blocks above (see the README).

Cost: a few numpy ops on CSR slices, proportional to the edges within two hops of the linked
entities (capped by ``max_degree``): well under a millisecond per text on a 10k-entity graph.

Removing triples (`LabelCounter.without`): the counts are read from the KG just as the
subgraph is, so an explanation that removes a path's triples to measure what they contribute
recounts on the KG without them (fusion/explain.py).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import numpy as np

from kg.errors import EntityNotFoundError
from kg.graph import KnowledgeGraph, Triple, csr_entries

DEFAULT_MAX_DEGREE = 1000
DEFAULT_PATH_MAX_DEGREE = 10_000  # paths through bigger hubs are skipped (cost grows with degree)


class LabelCounter:
    """Counter features for one graph and one set of label nodes; reuse it across texts.

    Args:
        graph: the compiled KG.
        label_nodes: entity id of each class, in class order ([C], distinct).
        max_degree: shared neighbours with a larger degree are skipped (None: no cap).

    Raises:
        EntityNotFoundError: a label node is not an entity id.
        ValueError: no label nodes, repeated ones, or ``max_degree < 1``.
    """

    def __init__(
        self,
        graph: KnowledgeGraph,
        label_nodes: Sequence[int],
        max_degree: int | None = DEFAULT_MAX_DEGREE,
        by_relation: bool = False,
        path_max_degree: int | None = DEFAULT_PATH_MAX_DEGREE,
    ):
        self.graph = graph
        self.label_nodes = _check_ids(graph, label_nodes, "label node")
        check_settings(self.label_nodes.tolist(), max_degree)
        self.max_degree = max_degree
        self.num_labels = len(self.label_nodes)
        self._is_label = np.zeros(graph.num_entities, dtype=bool)
        self._is_label[self.label_nodes] = True
        self._label_position = np.full(graph.num_entities, -1, dtype=np.int64)
        self._label_position[self.label_nodes] = np.arange(self.num_labels)
        # the CSR the counts read: the graph's own, or a copy without some triples (`without`)
        self._indptr, self._neighbors = graph.indptr, graph.neighbors
        self._edge_relations = graph.edge_relations
        self._degree = np.diff(self._indptr)
        self._label_indptr, self._label_ids = _entity_label_csr(
            self._indptr, self._neighbors, self.label_nodes
        )
        self.by_relation = by_relation
        self.path_max_degree = path_max_degree

    @property
    def dims(self) -> int:
        """Feature columns: ``2 * num_labels`` (``+ relations * num_labels`` by relation)."""
        extra = self.graph.num_relations * self.num_labels if self.by_relation else 0
        return 2 * self.num_labels + extra

    def without(self, triples: Iterable[Triple]) -> LabelCounter:
        """This counter on the KG minus ``triples`` (both CSR entries of each; triples the KG
        lacks are ignored). The arrays are copied (O(edges)); the graph is not changed."""
        R = self.graph.num_relations
        indptr, neighbors, relations = self._indptr, self._neighbors, self._edge_relations
        drop: list[int] = []
        touched: set[int] = set()
        for t in triples:
            for row, other, rel in ((t.subject, t.object, t.relation), (t.object, t.subject, t.relation + R)):  # fmt: skip
                lo, hi = int(indptr[row]), int(indptr[row + 1])
                hits = np.flatnonzero((neighbors[lo:hi] == other) & (relations[lo:hi] == rel))
                drop.extend((lo + hits).tolist())
                touched.add(row)
        if not drop:
            return self
        gone = np.unique(np.asarray(drop, dtype=np.int64))
        out = copy.copy(self)
        keep = np.ones(len(neighbors), dtype=bool)
        keep[gone] = False
        out._neighbors, out._edge_relations = neighbors[keep], relations[keep]
        rows = np.searchsorted(indptr, gone, side="right") - 1
        removed = np.bincount(rows, minlength=len(indptr) - 1)
        out._indptr = indptr - np.concatenate([[0], np.cumsum(removed)])
        out._degree = np.diff(out._indptr)
        if self._is_label[sorted(touched)].any():  # a label fact is gone: redo those rows
            for e in sorted(t for t in touched if not self._is_label[t]):
                ends = out._neighbors[out._indptr[e] : out._indptr[e + 1]]
                out._set_label_row(e, np.unique(self._label_position[ends[self._is_label[ends]]]))
        return out

    def only(self, triples: Iterable[Triple]) -> LabelCounter:
        """This counter on a KG holding nothing but ``triples`` (those the KG has): what an
        explanation's paths alone say (sufficiency, fusion/explain.py)."""
        R = self.graph.num_relations
        indptr, neighbors, relations = self._indptr, self._neighbors, self._edge_relations
        keep = np.zeros(len(neighbors), dtype=bool)
        for t in triples:
            for row, other, rel in ((t.subject, t.object, t.relation), (t.object, t.subject, t.relation + R)):  # fmt: skip
                lo, hi = int(indptr[row]), int(indptr[row + 1])
                hits = np.flatnonzero((neighbors[lo:hi] == other) & (relations[lo:hi] == rel))
                keep[lo + hits] = True
        out = copy.copy(self)
        rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))[keep]
        out._indptr = np.zeros_like(indptr)
        np.cumsum(np.bincount(rows, minlength=len(indptr) - 1), out=out._indptr[1:])
        out._neighbors, out._edge_relations = neighbors[keep], relations[keep]
        out._degree = np.diff(out._indptr)
        out._label_indptr, out._label_ids = _entity_label_csr(
            out._indptr, out._neighbors, self.label_nodes
        )
        return out

    def _set_label_row(self, entity: int, positions: np.ndarray) -> None:
        """Replace ``entity``'s row of the entity -> label-node CSR (copies, never in place)."""
        lo, hi = int(self._label_indptr[entity]), int(self._label_indptr[entity + 1])
        self._label_ids = np.concatenate([self._label_ids[:lo], positions, self._label_ids[hi:]])
        self._label_indptr = self._label_indptr.copy()
        self._label_indptr[entity + 1 :] += len(positions) - (hi - lo)

    def paths_by_relation(self, linked: Sequence[int], hidden: np.ndarray) -> np.ndarray:
        """int64 [num_relations, num_labels]: label-node paths by first-hop relation."""
        R, C = self.graph.num_relations, self.num_labels
        indptr, neighbors = self._indptr, self._neighbors
        out = np.zeros(R * C, dtype=np.int64)
        for e in np.unique(np.asarray(linked, dtype=np.int64)).tolist():
            lo, hi = int(indptr[e]), int(indptr[e + 1])
            shared = neighbors[lo:hi].astype(np.int64)
            rel = self._edge_relations[lo:hi] % R
            keep = ~self._is_label[shared] & (shared != e)
            if self.path_max_degree is not None:
                keep &= self._degree[shared] <= self.path_max_degree
            shared, rel = shared[keep], rel[keep].astype(np.int64)
            # the relative n itself, then every k beyond it
            ends = [shared, _gather(indptr, neighbors, shared)]
            via = [rel, np.repeat(rel, self._degree[shared])]
            for k, r in zip(ends, via, strict=True):
                ok = ~self._is_label[k] & (k != e) & ~np.isin(k, hidden)
                k, r = k[ok], r[ok]
                starts = self._label_indptr[k]
                counts = self._label_indptr[k + 1] - starts
                labels = _gather(self._label_indptr, self._label_ids, k)
                np.add.at(out, np.repeat(r, counts) * C + labels, 1)
        return out.reshape(R, C)

    def counts(self, linked: Sequence[int], masked: Iterable[int] | None = None) -> np.ndarray:
        """Raw counts of one text.

        Shapes:
            linked: [num_linked] entity ids (repeats ignored); may be empty.
            return: int64 [2, num_labels]; row 0 direct, row 1 two-hop.
        """
        ids = np.unique(_check_ids(self.graph, linked, "linked entity"))
        hidden = np.unique(_check_ids(self.graph, list(masked or ()), "masked entity"))
        out = np.zeros((2, self.num_labels), dtype=np.int64)
        out[0] = self._label_counts(np.setdiff1d(ids, hidden, assume_unique=True))
        reached = self._two_hop_entities(ids)
        out[1] = self._label_counts(np.setdiff1d(reached, hidden, assume_unique=True))
        return out

    def features(self, linked: Sequence[int], masked: Iterable[int] | None = None) -> np.ndarray:
        """float32 [dims]: ``log1p`` of `counts`, direct then two-hop (then paths by relation)."""
        parts = [self.counts(linked, masked).reshape(-1)]
        if self.by_relation:
            hidden = np.unique(_check_ids(self.graph, list(masked or ()), "masked entity"))
            parts.append(self.paths_by_relation(linked, hidden).reshape(-1))
        return np.log1p(np.concatenate(parts)).astype(np.float32)

    def matrix(
        self,
        linked_lists: Sequence[Sequence[int]],
        masked_lists: Sequence[Iterable[int] | None] | None = None,
    ) -> np.ndarray:
        """float32 [num_texts, 2 * num_labels]: `features` of every text, row by row."""
        if masked_lists is not None and len(masked_lists) != len(linked_lists):
            raise ValueError(
                f"masked_lists has {len(masked_lists)} entries for {len(linked_lists)} texts"
            )
        out = np.zeros((len(linked_lists), self.dims), dtype=np.float32)
        for row, linked in enumerate(linked_lists):
            masked = masked_lists[row] if masked_lists is not None else None
            out[row] = self.features(linked, masked)
        return out

    def _two_hop_entities(self, linked: np.ndarray) -> np.ndarray:
        """Distinct k (not linked, not a label node) sharing a neighbour with ``linked``."""
        shared = np.unique(_gather(self._indptr, self._neighbors, linked))
        shared = shared[~self._is_label[shared]]
        if self.max_degree is not None:
            shared = shared[self._degree[shared] <= self.max_degree]
        far = np.unique(_gather(self._indptr, self._neighbors, shared))
        far = far[~self._is_label[far]]
        return np.setdiff1d(far, linked, assume_unique=True)

    def _label_counts(self, entities: np.ndarray) -> np.ndarray:
        """int64 [num_labels]: how many of ``entities`` (distinct) touch each label node."""
        labels = _gather(self._label_indptr, self._label_ids, entities)
        return np.bincount(labels, minlength=self.num_labels)


def check_settings(label_nodes: Sequence[int], max_degree: int | None) -> None:
    """What every counter refuses: no label nodes, repeated ones, or ``max_degree < 1``."""
    if len(label_nodes) == 0 or len(set(label_nodes)) != len(label_nodes):
        raise ValueError("label_nodes must be a non-empty list of distinct entity ids")
    if max_degree is not None and max_degree < 1:
        raise ValueError(f"max_degree must be >= 1 or None (got {max_degree})")


def counter_features(
    graph: KnowledgeGraph,
    linked: Sequence[int],
    label_nodes: Sequence[int],
    masked: set[int] | None = None,
    max_degree: int | None = DEFAULT_MAX_DEGREE,
) -> np.ndarray:
    """Counter features of one text (layout in the module docstring).

    Builds a `LabelCounter` each call (O(edges of the label nodes)); for many texts use
    `counter_matrix` or keep a `LabelCounter`.

    Shapes:
        linked: [num_linked]; label_nodes: [C]; return: float32 [2 * C].
    """
    return LabelCounter(graph, label_nodes, max_degree).features(linked, masked)


def counter_matrix(
    graph: KnowledgeGraph,
    linked_lists: Sequence[Sequence[int]],
    label_nodes: Sequence[int],
    masked_lists: Sequence[Iterable[int] | None] | None = None,
    max_degree: int | None = DEFAULT_MAX_DEGREE,
) -> np.ndarray:
    """Counter features of many texts, one row each.

    Shapes:
        linked_lists: [num_texts][num_linked]; masked_lists: None or [num_texts][...];
        return: float32 [num_texts, 2 * C].
    """
    return LabelCounter(graph, label_nodes, max_degree).matrix(linked_lists, masked_lists)


def _check_ids(graph: KnowledgeGraph, ids: Sequence[int], what: str) -> np.ndarray:
    """int64 [len(ids)], after checking that each is an entity id."""
    arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    bad = arr[(arr < 0) | (arr >= graph.num_entities)]
    if len(bad):
        raise EntityNotFoundError(
            f"{what} {int(bad[0])} is not an entity id (the KG has {graph.num_entities})"
        )
    return arr


def _gather(indptr: np.ndarray, data: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """int64: the CSR entries of ``rows``, concatenated.

    Shapes:
        indptr: [num_rows + 1]; data: [nnz]; rows: [k]; return: [sum of the rows' lengths].
    """
    _, idx = csr_entries(indptr[rows], indptr[rows + 1])
    return data[idx].astype(np.int64)


def _entity_label_csr(
    indptr: np.ndarray, neighbors: np.ndarray, label_nodes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Which label nodes each entity has a triple with (either direction), as a CSR.

    Shapes:
        indptr, neighbors: a KG's CSR; label_nodes: [C];
        return: indptr int64 [num_entities + 1], label positions int64 [nnz].
    """
    num_entities = len(indptr) - 1
    lens = indptr[label_nodes + 1] - indptr[label_nodes]
    owner = np.repeat(np.arange(len(label_nodes), dtype=np.int64), lens)
    entity = _gather(indptr, neighbors, label_nodes)
    pairs = np.unique(entity * len(label_nodes) + owner)  # sorted by entity, one per pair
    entity, position = np.divmod(pairs, len(label_nodes))
    out = np.zeros(num_entities + 1, dtype=np.int64)
    np.cumsum(np.bincount(entity, minlength=num_entities), out=out[1:])
    return out, position
