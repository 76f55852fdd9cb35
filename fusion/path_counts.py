"""Label-path counts by relation sequence: how a text's entities reach each class node.

For a text whose linked entities are E and whose classes have label nodes L_0..L_{C-1}, count
the walks ``e -r1- n1 -r2- ... -rk- L_j`` (``k <= hops``) from each e in E to each label node,
keyed by the relation sequence ``(r1, ..., rk)``. Relations are directed: ``r`` follows a triple
from subject to object, ``r + R`` (written ``^name``) against it. A walk's inner nodes are never
a label node, never a linked entity of the text, and never a hub (more than ``max_degree`` CSR
entries, both directions): a hub such as a colour or a generation joins nearly everything and
adds little but the class prior. Up to three hops these walks are the simple paths; a fourth hop
may step back.

``Wartortle -evolves_from-> Squirtle -has_primary_type-> water`` adds 1 to
``counts[(evolves_from, has_primary_type)][water]``: the sequence says *how* an entity relates
to a class, and it is the same sequence for every class, so a model that scores each class from
its own counts (`fusion.model.PerLabelCounts`) learns "an evolution's type is mine" once for all
classes.

The features of a text use a fixed vocabulary of sequences (`fit_sequences`: the ones that reach
a label node in the most training texts): ``log1p(counts)``, sequence-major, ``len(sequences) * C``
columns, column ``s * C + j`` belonging to sequence s and class j.

Masking: a training text must not read its own answer. With ``masked`` entities, every triple
between a masked entity and a label node is ignored, wherever it occurs on a walk.

`without(triples)` and `only(triples)` give the same counter on the KG minus those triples, or
on those triples alone: explanations remove a path (comprehensiveness) or keep only it
(sufficiency) and recount, since the model reads these counts as well as the subgraph.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from kg.csr import csr_entries
from kg.errors import EntityNotFoundError
from kg.graph import KnowledgeGraph, Triple

DEFAULT_MAX_DEGREE = (
    1000  # a colour or a generation (about 100 species each) still carries class evidence
)
MAX_HOPS = 4

RelationSequence = tuple[int, ...]  # directed relation ids: r, or r + R against the triple


class PathCounter:
    """Relation-sequence walk counts to label nodes over one compiled KG.

    Args:
        graph: the compiled KG.
        label_nodes: entity id of each class, in class order ([C], distinct).
        hops: longest walk counted (1 to 4).
        max_degree: inner nodes with more CSR entries are skipped (None: no cap).
        sequences: the feature vocabulary (see `fit_sequences`); empty until fitted.

    Raises:
        EntityNotFoundError: a label node is not an entity id.
        ValueError: no label nodes, repeated ones, or a setting out of range.
    """

    def __init__(
        self,
        graph: KnowledgeGraph,
        label_nodes: Sequence[int],
        hops: int = 3,
        max_degree: int | None = DEFAULT_MAX_DEGREE,
        sequences: Sequence[RelationSequence] = (),
    ):
        if not 1 <= hops <= MAX_HOPS:
            raise ValueError(f"hops must be between 1 and {MAX_HOPS} (got {hops})")
        if len(label_nodes) == 0 or len(set(label_nodes)) != len(label_nodes):
            raise ValueError("label_nodes must be a non-empty list of distinct entity ids")
        if max_degree is not None and max_degree < 1:
            raise ValueError(f"max_degree must be >= 1 or None (got {max_degree})")
        self.graph = graph
        self.label_nodes = _check_ids(graph, label_nodes, "label node")
        self.num_labels = len(self.label_nodes)
        self.hops = hops
        self.max_degree = max_degree
        self.sequences: list[RelationSequence] = [tuple(s) for s in sequences]
        self._is_label = np.zeros(graph.num_entities, dtype=bool)
        self._is_label[self.label_nodes] = True
        self._label_position = np.full(graph.num_entities, -1, dtype=np.int64)
        self._label_position[self.label_nodes] = np.arange(self.num_labels)
        self._indptr = np.asarray(graph.indptr, dtype=np.int64)
        self._neighbors = np.asarray(graph.neighbors, dtype=np.int64)
        self._relations = np.asarray(graph.edge_relations, dtype=np.int64)
        # hubs are judged on the whole KG, so removing a path never turns one into a passage
        self._passable = ~self._is_label
        if max_degree is not None:
            self._passable &= np.diff(self._indptr) <= max_degree
        # the CSR entries walks may use (None: all): `without` and `only` set it, sharing the
        # KG's arrays, where rebuilding the CSR per explanation variant cost milliseconds
        self._usable: np.ndarray | None = None

    # ----- the vocabulary -----
    @property
    def dims(self) -> int:
        """Feature columns: ``len(sequences) * num_labels``."""
        return len(self.sequences) * self.num_labels

    def name(self, sequence: RelationSequence) -> str:
        """``evolves_from/has_primary_type``; ``^r`` walks a triple against its direction."""
        R = self.graph.num_relations
        return "/".join(
            ("^" if r >= R else "") + self.graph.relation_label(r % R) for r in sequence
        )

    # ----- counting -----
    def walk_counts(
        self, linked: Sequence[int], masked: Iterable[int] | None = None
    ) -> dict[RelationSequence, np.ndarray]:
        """Raw counts of one text: relation sequence -> int64 [num_labels] (only sequences that
        reach some label node).

        All walks of one length advance together: the frontier is the distinct (relation
        sequence so far, node) pairs with their walk counts, so a hop costs a few array
        operations however many sequences are open (one pass per sequence cost ~50 small
        passes a text on pokedex at 3 hops)."""
        starts = np.unique(_check_ids(self.graph, linked, "linked entity"))
        hidden = np.zeros(self.graph.num_entities, dtype=bool)
        hidden[_check_ids(self.graph, list(masked or ()), "masked entity")] = True
        inner = self._passable.copy()
        inner[starts] = False
        C, directed = self.num_labels, 2 * self.graph.num_relations
        totals: dict[RelationSequence, np.ndarray] = {}
        prefixes: list[RelationSequence] = [()]  # the frontier's sequences, by id
        node, prefix = starts, np.zeros(len(starts), dtype=np.int64)
        count: np.ndarray = np.ones(len(starts), dtype=np.float64)
        for hop in range(1, self.hops + 1):
            src, nbr, rel, weight, owner = self._expand(node, count)
            if len(nbr) == 0:
                break
            grown = prefix[owner] * directed + rel  # the sequence each step extends to
            ends = self._is_label[nbr] & ~hidden[src]
            if ends.any():
                keys = grown[ends] * C + self._label_position[nbr[ends]]
                found, inverse = np.unique(keys, return_inverse=True)
                sums = np.bincount(inverse, weights=weight[ends])
                for key, total in zip(found.tolist(), sums.tolist(), strict=True):
                    if total:
                        step, j = divmod(key, C)
                        sequence = (*prefixes[step // directed], step % directed)
                        row = totals.setdefault(sequence, np.zeros(C, dtype=np.int64))
                        row[j] += int(total)
            if hop == self.hops:
                break
            go = inner[nbr]
            steps, step_ids = np.unique(grown[go], return_inverse=True)
            prefixes = [(*prefixes[g // directed], g % directed) for g in steps.tolist()]
            pairs, inverse = np.unique(
                step_ids * self.graph.num_entities + nbr[go], return_inverse=True
            )
            prefix, node = np.divmod(pairs, self.graph.num_entities)
            count = np.bincount(inverse, weights=weight[go])
        return totals

    def _expand(
        self, nodes: np.ndarray, counts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every usable CSR entry of ``nodes``: (source, neighbour, relation, walk count, the
        position in ``nodes`` it came from)."""
        owner, idx = csr_entries(self._indptr[nodes], self._indptr[nodes + 1])
        if self._usable is not None:
            usable = self._usable[idx]
            owner, idx = owner[usable], idx[usable]
        return (
            nodes[owner],
            self._neighbors[idx],
            self._relations[idx],
            counts[owner].astype(np.float64),
            owner,
        )

    def features(self, linked: Sequence[int], masked: Iterable[int] | None = None) -> np.ndarray:
        """float32 [dims]: ``log1p`` of the counts of every vocabulary sequence."""
        return self.encode(self.walk_counts(linked, masked) if self.sequences else {})

    def encode(self, walks: dict[RelationSequence, np.ndarray]) -> np.ndarray:
        """float32 [dims]: `features` from `walk_counts` already counted."""
        out = np.zeros((len(self.sequences), self.num_labels), dtype=np.float32)
        where = {s: i for i, s in enumerate(self.sequences)}
        for seq, row in walks.items():
            i = where.get(seq)
            if i is not None:
                out[i] = np.log1p(row)
        return out.reshape(-1)

    # ----- explanations: the KG without some triples, or with only them -----
    def without(self, triples: Iterable[Triple]) -> PathCounter:
        """This counter on the KG minus ``triples`` (both directions; unknown ones ignored)."""
        found = self._entries(triples)
        if not found:
            return self
        usable = (
            np.ones(len(self._neighbors), dtype=bool)
            if self._usable is None
            else self._usable.copy()
        )
        usable[found] = False
        return self._restricted(usable)

    def only(self, triples: Iterable[Triple]) -> PathCounter:
        """This counter on a KG that holds nothing but ``triples`` (those the KG has)."""
        usable = np.zeros(len(self._neighbors), dtype=bool)
        usable[self._entries(triples)] = True
        if self._usable is not None:
            usable &= self._usable  # a triple this counter was without stays out
        return self._restricted(usable)

    def _entries(self, triples: Iterable[Triple]) -> list[int]:
        """The CSR entries of ``triples``, each read from both ends."""
        R = self.graph.num_relations
        found: list[int] = []
        for t in triples:
            for row, other, rel in (
                (t.subject, t.object, t.relation),
                (t.object, t.subject, t.relation + R),
            ):
                lo, hi = int(self._indptr[row]), int(self._indptr[row + 1])
                hits = np.flatnonzero(
                    (self._neighbors[lo:hi] == other) & (self._relations[lo:hi] == rel)
                )
                found.extend((lo + hits).tolist())
        return found

    def _restricted(self, usable: np.ndarray) -> PathCounter:
        out = copy.copy(self)  # shares the KG's arrays; only the usable entries differ
        out._usable = usable
        return out


def fit_sequences(
    walks: Iterable[dict[RelationSequence, np.ndarray]],
    max_sequences: int = 64,
    min_texts: int = 2,
) -> list[RelationSequence]:
    """The feature vocabulary: the relation sequences that reach a label node in the most texts
    (at least ``min_texts``), at most ``max_sequences``, shortest first on ties, then by id."""
    seen: Counter[RelationSequence] = Counter()
    for counts in walks:
        seen.update(seq for seq, row in counts.items() if row.any())
    ranked = sorted(
        (s for s, n in seen.items() if n >= min_texts), key=lambda s: (-seen[s], len(s), s)
    )
    return ranked[:max_sequences]


def _check_ids(graph: KnowledgeGraph, ids: Sequence[int], what: str) -> np.ndarray:
    arr = np.asarray(list(ids), dtype=np.int64).reshape(-1)
    bad = arr[(arr < 0) | (arr >= graph.num_entities)]
    if len(bad):
        raise EntityNotFoundError(
            f"{what} {int(bad[0])} is not an entity id (the KG has {graph.num_entities})"
        )
    return arr
