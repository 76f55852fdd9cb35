"""The "shuffled KG" control: a degree-preserving rewiring of a compiled graph.

Why: a KG-augmented model has more parameters and more inputs than its text-only baseline, so
a gain alone does not prove that the *facts* help. Train the same model on a rewired graph:
every entity keeps its label, aliases, description, types, attributes and, per relation, its
out-degree and in-degree, but who connects to whom is destroyed. Same parameters, same
input shapes, same graph statistics, no knowledge. A shuffled KG must lose the gain; if it
does not, the gain came from capacity or degree signals, not from the graph.

How: for each relation separately, the objects of its triples are randomly permuted (seeded
numpy Generator), so each subject keeps its number of triples of that relation and each
object is used as many times as before. A permutation can create self-loops ``(a, r, a)`` and
duplicates (``(a, r, b)`` twice, which the compiled graph cannot hold). Each such bad triple
is repaired by swapping its object with that of a random triple of the same relation, at most
``max_attempts`` tries per bad triple, accepting only swaps that leave both triples valid;
whatever is still bad is dropped (self-loops removed, duplicates kept once). `RewireStats`
reports how many were dropped; a dropped triple lowers one out- and one in-degree by one.

``protect``: triples that touch a protected entity (as subject or object) keep their place,
so a protected entity's neighbourhood is exactly the original one.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from kg.compile import _csr_with_inverse
from kg.errors import EntityNotFoundError
from kg.graph import KnowledgeGraph

DEFAULT_MAX_ATTEMPTS = 50


@dataclass(frozen=True)
class RewireStats:
    """What a rewiring did.

    Attributes:
        seed: seed of the numpy Generator.
        triples: triples of the input graph.
        protected: triples kept in place because they touch a protected entity.
        repaired: self-loops and duplicates fixed by a swap.
        dropped: self-loops and duplicates left after the swap attempts, removed.
        unchanged: triples of the output that the input also holds (kept by chance or
            protected); ``triples - dropped - unchanged`` triples are new.
    """

    seed: int
    triples: int
    protected: int
    repaired: int
    dropped: int
    unchanged: int


def rewire(
    graph: KnowledgeGraph,
    seed: int = 0,
    protect: set[int] | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> KnowledgeGraph:
    """A copy of ``graph`` whose triples are shuffled per relation, degrees kept.

    See the module docstring; `rewire_with_stats` also returns what was dropped. The copy's
    ``sources`` ends with ``"rewired(seed=S, dropped=D)"``.

    Args:
        graph: the compiled graph; it is not modified.
        seed: seed of the permutation; equal seeds give equal graphs.
        protect: entity ids whose triples (in either direction) are not rewired.
        max_attempts: swap attempts per self-loop or duplicate before it is dropped.

    Raises:
        EntityNotFoundError: a protected id is not an entity of ``graph``.
    """
    return rewire_with_stats(graph, seed, protect, max_attempts)[0]


def rewire_with_stats(
    graph: KnowledgeGraph,
    seed: int = 0,
    protect: set[int] | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> tuple[KnowledgeGraph, RewireStats]:
    """`rewire`, plus a `RewireStats` of what it kept, repaired and dropped."""
    src, rel, dst = forward_triples(graph)
    fixed = _protected_mask(graph, src, dst, protect or set())
    rng = np.random.default_rng(seed)
    new_dst = _permute_objects(rel, dst, fixed, rng)
    repaired = _repair(src, rel, new_dst, fixed, rng, max_attempts)
    keep = (src != new_dst) | fixed  # a protected self-loop was in the input: it stays
    n, r_count = graph.num_entities, graph.num_relations
    indptr, neighbors, edge_relations = _csr_with_inverse(
        src[keep], rel[keep], new_dst[keep], n, r_count
    )
    dropped = len(src) - len(neighbors) // 2
    rewired = dataclasses.replace(
        graph,
        indptr=indptr,
        neighbors=neighbors,
        edge_relations=edge_relations,
        sources=[*graph.sources, f"rewired(seed={seed}, dropped={dropped})"],
        _fingerprint=None,
        _label_index=None,
        _out_end=None,
        _scratch=threading.local(),
    )
    stats = RewireStats(
        seed=seed,
        triples=len(src),
        protected=int(fixed.sum()),
        repaired=repaired,
        dropped=dropped,
        unchanged=_count_shared(graph, rewired),
    )
    return rewired, stats


def forward_triples(graph: KnowledgeGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every triple once, as int64 arrays (subject, relation, object), sorted like the CSR.

    Shapes:
        each of the three: [num_triples]
    """
    rows = np.repeat(np.arange(graph.num_entities, dtype=np.int64), np.diff(graph.indptr))
    forward = graph.edge_relations < graph.num_relations
    return (
        rows[forward],
        graph.edge_relations[forward].astype(np.int64),
        graph.neighbors[forward].astype(np.int64),
    )


def _protected_mask(
    graph: KnowledgeGraph, src: np.ndarray, dst: np.ndarray, protect: Iterable[int]
) -> np.ndarray:
    """bool [num_triples]: triples touching a protected entity."""
    ids = np.fromiter((int(p) for p in protect), dtype=np.int64)
    bad = ids[(ids < 0) | (ids >= graph.num_entities)]
    if len(bad):
        raise EntityNotFoundError(
            f"protected id {int(bad[0])} is not an entity id (the KG has {graph.num_entities})"
        )
    return np.isin(src, ids) | np.isin(dst, ids)


def _permute_objects(
    rel: np.ndarray, dst: np.ndarray, fixed: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Objects randomly permuted within each relation, ``fixed`` triples left in place.

    Both orderings below group the free triples by relation with equal group sizes, so
    assigning one to the other is a random permutation inside every relation.
    """
    free = np.flatnonzero(~fixed)
    by_relation = free[np.argsort(rel[free], kind="stable")]
    shuffled = free[np.lexsort((rng.random(len(free)), rel[free]))]
    new_dst = dst.copy()
    new_dst[by_relation] = dst[shuffled]
    return new_dst


def _repair(
    src: np.ndarray,
    rel: np.ndarray,
    dst: np.ndarray,
    fixed: np.ndarray,
    rng: np.random.Generator,
    max_attempts: int,
) -> int:
    """Swap away self-loops and duplicates in place; returns how many were fixed.

    Only relations that hold a bad triple are visited, one Python pass each: bad triples are
    rare, so a per-triple loop over them costs less than vectorizing the swap checks.
    """
    bad = _bad_mask(src, rel, dst) & ~fixed
    repaired = 0
    for r in np.unique(rel[bad]).tolist():
        members = np.flatnonzero(rel == r)
        free = members[~fixed[members]]
        repaired += _repair_relation(
            src, dst, members, free, members[bad[members]], rng, max_attempts
        )
    return repaired


def _bad_mask(src: np.ndarray, rel: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """bool [num_triples]: self-loops, and every copy of a duplicated triple."""
    order = np.lexsort((dst, rel, src))
    same = (
        (src[order][1:] == src[order][:-1])
        & (rel[order][1:] == rel[order][:-1])
        & (dst[order][1:] == dst[order][:-1])
    )
    dup = np.zeros(len(src), dtype=bool)
    dup[order[1:][same]] = True
    dup[order[:-1][same]] = True
    return dup | (src == dst)


def _repair_relation(
    src: np.ndarray,
    dst: np.ndarray,
    members: np.ndarray,
    free: np.ndarray,
    bad: np.ndarray,
    rng: np.random.Generator,
    max_attempts: int,
) -> int:
    """Repairs inside one relation: ``members`` are its triples, ``free`` those that may move,
    ``bad`` the free ones that were self-loops or duplicates (a valid swap creates no new ones;
    a bad triple may be fixed before its turn, when a swap moves its duplicate away)."""
    count = Counter(zip(src[members].tolist(), dst[members].tolist(), strict=True))
    repaired = 0
    for i in bad.tolist():
        if not _is_bad(src, dst, count, i):
            continue
        for j in rng.choice(free, size=min(max_attempts, len(free))).tolist():
            if _swap_is_valid(src, dst, count, i, j):
                _swap(src, dst, count, i, j)
                repaired += 1
                break
    return repaired


def _is_bad(src: np.ndarray, dst: np.ndarray, count: Counter[tuple[int, int]], i: int) -> bool:
    s, o = int(src[i]), int(dst[i])
    return s == o or count[(s, o)] > 1


def _swap_is_valid(
    src: np.ndarray, dst: np.ndarray, count: Counter[tuple[int, int]], i: int, j: int
) -> bool:
    """Would giving ``i`` the object of ``j`` and ``j`` that of ``i`` leave both valid?"""
    si, oi, sj, oj = int(src[i]), int(dst[i]), int(src[j]), int(dst[j])
    if sj in (si, oi) or oj in (si, oi):  # a no-op, or a self-loop after the swap
        return False
    return count[(si, oj)] == 0 and count[(sj, oi)] == 0


def _swap(
    src: np.ndarray, dst: np.ndarray, count: Counter[tuple[int, int]], i: int, j: int
) -> None:
    si, oi, sj, oj = int(src[i]), int(dst[i]), int(src[j]), int(dst[j])
    count[(si, oi)] -= 1
    count[(sj, oj)] -= 1
    count[(si, oj)] += 1
    count[(sj, oi)] += 1
    dst[i], dst[j] = oj, oi


def _count_shared(a: KnowledgeGraph, b: KnowledgeGraph) -> int:
    """Triples held by both graphs (same entity ids)."""
    n, r = a.num_entities, max(a.num_relations, 1)
    keys = [(s * r + rel) * n + o for s, rel, o in (forward_triples(a), forward_triples(b))]
    if n * n * r < 2**62:
        return int(np.isin(keys[1], keys[0]).sum())
    return len(set(a.triples()) & set(b.triples()))
